"""Write the validated clinical sheet for the clinical join."""

from mrdtrack.inputs import load_table
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.tables import write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    clinical, _problems = load_table(snakemake.input[0], "clinical")
    write_tsv(clinical.drop(columns=["sheet", "sheet_row"]), snakemake.output[0])
