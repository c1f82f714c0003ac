"""PFS by MRD status: KM, Cox (baseline, landmark, time-varying), trial endpoints, Simon design, prediction."""

from mrdtrack.logs import setup_logging

setup_logging(snakemake.log[0])

from mrdtrack.logs import user_errors_as_messages  # noqa: E402
from mrdtrack.outcomes.survival import OUTPUT_TABLES, SurvivalSettings, run_survival  # noqa: E402
from mrdtrack.tables import read_tsv, write_json, write_tsv  # noqa: E402

with user_errors_as_messages():
    settings = SurvivalSettings.from_config(snakemake.params.settings)
    patients = read_tsv(snakemake.input.patients, dtype={"patient_id": str, "cohort": str})
    counting = read_tsv(snakemake.input.counting_process, dtype={"patient_id": str, "cohort": str})
    results = run_survival(patients, counting, settings)
    for name in OUTPUT_TABLES:
        write_tsv(getattr(results, name), getattr(snakemake.output, name))
    write_json(results.summary, snakemake.output.summary)
