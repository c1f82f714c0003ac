"""Write the validated, concatenated sample sheets (paths resolved) for the cohort steps."""

from mrdtrack.inputs import load_samples
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.tables import columns_of, write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    samples, _problems = load_samples(list(snakemake.input))
    # Optional columns absent from every sheet are written empty: later steps read the table by its contract.
    for column in columns_of("samples"):
        if column not in samples:
            samples[column] = ""
    write_tsv(samples, snakemake.output[0])
