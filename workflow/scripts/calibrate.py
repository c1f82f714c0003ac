"""The cohort step of calling: null scores of every sample at other patients' panels, the threshold they allow,
and the fragment-length model that each sample's own call starts from."""

from mrdtrack.calling.background import read_counts, read_panel, read_samples
from mrdtrack.calling.caller import (
    CallSettings,
    calibrate,
    read_excluded,
    read_locus_rates,
    write_calibration,
)
from mrdtrack.calling.fraglen import read_fragment_lengths
from mrdtrack.counting.sample import read_fragments
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.settings import write_settings
from mrdtrack.tables import write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    settings = CallSettings.from_config(snakemake.params.settings)
    calibration = calibrate(
        read_counts(list(snakemake.input.counts)),
        read_samples(snakemake.input.samples),
        read_panel(snakemake.input.panel),
        read_locus_rates(snakemake.input.locus_rates),
        read_excluded(snakemake.input.excluded),
        settings,
        read_fragment_lengths(snakemake.input.fragment_lengths),
        workers=snakemake.threads,
        fragments=read_fragments(snakemake.input.fragments),
    )
    write_tsv(calibration.length_model, snakemake.output.length_model)
    out = snakemake.output
    write_calibration(calibration, out.null_scores, out.threshold, out.length_state)
    write_settings(out.settings, settings)
