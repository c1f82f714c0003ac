"""The cohort step of calling: null scores of every sample at other patients' panels, the threshold they allow,
and the fragment-length model that each sample's own call starts from."""

from pathlib import Path

from mrdtrack.calling import (
    CallSettings,
    calibrate,
    cohort_sample_rates,
    libraries_in_cohort_rates,
    write_calibration,
)
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.settings import write_settings
from mrdtrack.tables import read_table, read_tables, write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    settings = CallSettings.from_config(snakemake.params.settings)
    samples = read_table("samples", snakemake.input.samples)
    counts = read_tables("counts", snakemake.input.counts)
    plasma = set(samples.loc[samples["sample_type"] == "plasma", "sample_id"])
    # The plasma samples' flank tables, read one at a time (memory stays flat): their own background rates.
    suffix = ".flanks.tsv"
    paths = [p for p in snakemake.input.flanks if Path(p).name.removesuffix(suffix) in plasma]
    flanks = ((Path(p).name.removesuffix(suffix), read_table("flanks", p)) for p in paths)
    calibration = calibrate(
        counts,
        samples,
        read_table("panel_loci", snakemake.input.panel),
        read_table("locus_rates", snakemake.input.locus_rates),
        read_table("excluded", snakemake.input.excluded),
        settings,
        fragment_lengths=read_tables("fraglen", snakemake.input.fragment_lengths),
        workers=snakemake.threads,
        fragments=read_tables("fragments", snakemake.input.fragments),
        sample_rates=cohort_sample_rates(
            flanks,
            settings,
            read_table("context_rates", snakemake.input.context_rates),
            libraries_in_cohort_rates(counts, samples),
        )
        if settings.sample_background
        else None,
    )
    write_tsv(calibration.length_model, snakemake.output.length_model)
    out = snakemake.output
    write_calibration(calibration, out.null_scores, out.threshold, out.length_state, out.sample_rates)
    write_settings(out.settings, settings)
