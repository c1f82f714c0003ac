"""Join MRD calls with the clinical sheet: joined samples, per-patient table, counting-process rows."""

from mrdtrack.logs import setup_logging

setup_logging(snakemake.log[0])

from mrdtrack.logs import user_errors_as_messages  # noqa: E402
from mrdtrack.outcomes import ClinicalSettings, run_clinical  # noqa: E402
from mrdtrack.settings import write_settings  # noqa: E402
from mrdtrack.tables import read_table, write_tsv  # noqa: E402

with user_errors_as_messages():
    settings = ClinicalSettings.from_config(snakemake.params.settings)
    calls = read_table("calls", snakemake.input.calls, required=())  # run_clinical names what is missing
    clinical = read_table("clinical_sheet", snakemake.input.clinical, required=())
    tables = run_clinical(calls, clinical, settings)
    write_tsv(tables.joined, snakemake.output.joined)
    write_tsv(tables.patients, snakemake.output.patients)
    write_tsv(tables.counting_process, snakemake.output.counting_process)
    write_settings(snakemake.output.settings, settings)
