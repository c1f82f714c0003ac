"""Write the validated, concatenated sample sheets (paths resolved) for the cohort steps."""

from mrdtrack.inputs import load_samples
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.tables import write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    samples, _problems = load_samples(list(snakemake.input))
    write_tsv(samples, snakemake.output[0])
