"""Call MRD per plasma sample: calibrate the threshold on null scores, then test each sample's own panel."""

from mrdtrack.background import read_counts, read_panel, read_samples
from mrdtrack.caller import CallSettings, call_cohort, read_excluded, read_locus_rates
from mrdtrack.counting import read_fragments
from mrdtrack.fraglen import read_fragment_lengths
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.tables import write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    result = call_cohort(
        read_counts(list(snakemake.input.counts)),
        read_samples(snakemake.input.samples),
        read_panel(snakemake.input.panel),
        read_locus_rates(snakemake.input.locus_rates),
        read_excluded(snakemake.input.excluded),
        CallSettings.from_config(snakemake.params.settings),
        read_fragment_lengths(snakemake.input.fragment_lengths),
        workers=snakemake.threads,
        fragments=read_fragments(snakemake.input.fragments),
    )
    write_tsv(result.length_model, snakemake.output.length_model)
    write_tsv(result.null_scores, snakemake.output.null_scores)
    write_tsv(result.loci, snakemake.output.loci)
    write_tsv(result.calls, snakemake.output.calls)
