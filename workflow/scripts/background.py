"""Fit the cohort background error model (context and locus rates) and list the excluded loci."""

from mrdtrack.calling import BackgroundSettings, build_background
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.settings import write_settings
from mrdtrack.tables import read_table, read_tables, write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    settings = BackgroundSettings.from_config(snakemake.params.settings)
    model = build_background(
        read_tables("counts", snakemake.input.counts),
        read_table("samples", snakemake.input.samples),
        settings,
        read_table("panel_loci", snakemake.input.panel),
    )
    write_tsv(model.context_rates, snakemake.output.context_rates)
    write_tsv(model.locus_rates, snakemake.output.locus_rates)
    write_tsv(model.excluded, snakemake.output.excluded)
    write_settings(snakemake.output.settings, settings)
