"""One plasma sample's MRD call: tumor fraction, interval, p-value, LOD95 and status, from its own tables and the
cohort step's calibration, with the settings that calibration used."""

import pandas as pd

from mrdtrack.calling.background import read_counts, read_panel, read_samples
from mrdtrack.calling.caller import (
    CALL_COLUMNS,
    CallSettings,
    call_plasma_sample,
    read_calibration,
    read_excluded,
    read_locus_rates,
)
from mrdtrack.calling.fraglen import read_fragment_lengths
from mrdtrack.counting.sample import read_fragments
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.settings import read_settings
from mrdtrack.tables import write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    call, loci = call_plasma_sample(
        snakemake.wildcards.sample,
        read_counts([snakemake.input.counts]),
        read_samples(snakemake.input.samples),
        read_panel(snakemake.input.panel),
        read_locus_rates(snakemake.input.locus_rates),
        read_excluded(snakemake.input.excluded),
        read_calibration(*snakemake.input.calibration),
        CallSettings.from_recorded(read_settings(snakemake.input.settings)["calling"]),
        read_fragment_lengths([snakemake.input.fragment_lengths]),
        read_fragments([snakemake.input.fragments]),
    )
    write_tsv(loci, snakemake.output.loci)
    write_tsv(pd.DataFrame([call], columns=CALL_COLUMNS), snakemake.output.call)
