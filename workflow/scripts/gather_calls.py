"""calls.tsv and loci.tsv from the per-sample call jobs."""

from mrdtrack.calling import gather_calls, read_call_rows
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.tables import write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    calls, loci = gather_calls(read_call_rows(list(snakemake.input)))
    write_tsv(loci, snakemake.output.loci)
    write_tsv(calls, snakemake.output.calls)
