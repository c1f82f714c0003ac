"""Build the cohort panel (every patient's SNVs with reference context)."""

from mrdtrack.inputs import PanelSettings, build_panel, load_table
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.tables import write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    patients, _problems = load_table(snakemake.input.patients, "patients")
    settings = PanelSettings.from_config(snakemake.params.settings)
    panel = build_panel(patients, snakemake.input.reference[0], settings)
    write_tsv(panel, snakemake.output[0])
