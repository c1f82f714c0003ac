"""Render the investigator report (results/report/mrd_report.html and one HTML per figure)."""

from mrdtrack.logs import setup_logging, user_errors_as_messages

setup_logging(snakemake.log[0])

from mrdtrack.report import ReportInputs, ReportSettings, write_report  # noqa: E402  (logging first)

with user_errors_as_messages():
    settings = ReportSettings.from_config(snakemake.params.settings, snakemake.params.config)
    write_report(
        ReportInputs.from_mapping(dict(snakemake.input.items())),
        snakemake.output.html,
        snakemake.output.figures,
        settings,
        config=snakemake.params.config,
    )
