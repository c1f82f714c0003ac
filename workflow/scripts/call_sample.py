"""The MRD call of each of the job's plasma samples: tumor fraction, interval, p-value, LOD95 and status, from the
sample's own tables and the cohort step's calibration (read once per job), with the settings it used."""

import pandas as pd

from mrdtrack.calling import CALL_COLUMNS, CallSettings, SampleCaller, read_calibration
from mrdtrack.jobs import per_sample
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.settings import read_settings
from mrdtrack.tables import read_table, read_tables, write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    caller = SampleCaller(
        samples=read_table("samples", snakemake.input.samples),
        panel=read_table("panel_loci", snakemake.input.panel),
        locus_rates=read_table("locus_rates", snakemake.input.locus_rates),
        excluded=read_table("excluded", snakemake.input.excluded),
        calibration=read_calibration(*snakemake.input.calibration),
        settings=CallSettings.from_recorded(read_settings(snakemake.input.settings)["calling"]),
    )
    inputs, outputs = snakemake.input, snakemake.output
    jobs = per_sample(
        snakemake.params.samples,
        counts=inputs.counts,
        fragment_lengths=inputs.fragment_lengths,
        fragments=inputs.fragments,
        flanks=inputs.flanks,
        call=outputs.call,
        loci=outputs.loci,
    )
    for job in jobs:
        call, loci = caller.call(
            job.sample,
            read_tables("counts", [job.counts]),
            read_tables("fraglen", [job.fragment_lengths]),
            read_tables("fragments", [job.fragments]),
            read_table("flanks", job.flanks),
        )
        write_tsv(loci, job.loci)
        write_tsv(pd.DataFrame([call], columns=CALL_COLUMNS), job.call)
