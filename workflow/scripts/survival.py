"""PFS by MRD status: KM, Cox (baseline, landmark, time-varying), trial endpoints, Simon design, prediction."""

from mrdtrack.logs import setup_logging

setup_logging(snakemake.log[0])

from mrdtrack.logs import user_errors_as_messages  # noqa: E402
from mrdtrack.outcomes import SURVIVAL_TABLES, SurvivalSettings, run_survival  # noqa: E402
from mrdtrack.settings import write_settings  # noqa: E402
from mrdtrack.tables import read_table, write_json, write_tsv  # noqa: E402

with user_errors_as_messages():
    settings = SurvivalSettings.from_config(snakemake.params.settings)
    patients = read_table("patients", snakemake.input.patients, required=())
    counting = read_table("counting_process", snakemake.input.counting_process, required=())
    results = run_survival(patients, counting, settings)
    for name in SURVIVAL_TABLES:
        write_tsv(getattr(results, name), getattr(snakemake.output, name))
    write_json(results.summary, snakemake.output.summary)
    write_settings(snakemake.output.settings, settings)
