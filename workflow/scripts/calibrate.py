"""The cohort step of calling: null scores of every sample at other patients' panels, the threshold they allow,
and the fragment-length model that each sample's own call starts from."""

from mrdtrack.calling import CallSettings, calibrate, write_calibration
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.settings import write_settings
from mrdtrack.tables import read_table, read_tables, write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    settings = CallSettings.from_config(snakemake.params.settings)
    calibration = calibrate(
        read_tables("counts", snakemake.input.counts),
        read_table("samples", snakemake.input.samples),
        read_table("panel_loci", snakemake.input.panel),
        read_table("locus_rates", snakemake.input.locus_rates),
        read_table("excluded", snakemake.input.excluded),
        settings,
        fragment_lengths=read_tables("fraglen", snakemake.input.fragment_lengths),
        workers=snakemake.threads,
        fragments=read_tables("fragments", snakemake.input.fragments),
    )
    write_tsv(calibration.length_model, snakemake.output.length_model)
    out = snakemake.output
    write_calibration(calibration, out.null_scores, out.threshold, out.length_state)
    write_settings(out.settings, settings)
