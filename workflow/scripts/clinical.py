"""Join MRD calls with the clinical sheet: joined samples, per-patient table, counting-process rows."""

from mrdtrack.logs import setup_logging

setup_logging(snakemake.log[0])

from mrdtrack.logs import user_errors_as_messages  # noqa: E402
from mrdtrack.outcomes.clinical import ClinicalSettings, run_clinical  # noqa: E402
from mrdtrack.tables import read_tsv, write_tsv  # noqa: E402

with user_errors_as_messages():
    settings = ClinicalSettings.from_config(snakemake.params.settings)
    # Identifiers stay text even when they look like numbers.
    calls = read_tsv(snakemake.input.calls, dtype={"sample_id": str, "patient_id": str})
    clinical = read_tsv(snakemake.input.clinical, dtype={"patient_id": str})
    tables = run_clinical(calls, clinical, settings)
    write_tsv(tables.joined, snakemake.output.joined)
    write_tsv(tables.patients, snakemake.output.patients)
    write_tsv(tables.counting_process, snakemake.output.counting_process)
