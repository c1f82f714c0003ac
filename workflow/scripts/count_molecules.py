"""Count molecules at every cohort panel locus in one sample's BAM/CRAM."""

from mrdtrack.counting.molecules import CountSettings
from mrdtrack.counting.sample import count_sample
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.settings import settings_record
from mrdtrack.tables import read_table, write_json, write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    settings = CountSettings.from_config(snakemake.params.settings)
    result = count_sample(
        sample_id=snakemake.wildcards.sample,
        alignment_path=snakemake.input.alignments,
        reference=snakemake.input.reference[0],
        panel=read_table("panel_loci", snakemake.input.panel),
        settings=settings,
        threads=snakemake.threads,
    )
    write_tsv(result.fragment_lengths, snakemake.output.fraglen)
    write_tsv(result.fragments, snakemake.output.fragments)
    write_json(result.qc | {"settings": settings_record(settings)}, snakemake.output.qc)  # what counting used
    write_tsv(result.counts, snakemake.output.counts)
