"""Count molecules at every cohort panel locus in each of the job's samples' BAM/CRAM, and at the flank positions
around its own patient's panel loci."""

from mrdtrack.counting import CountSettings, count_sample, settings_for_job
from mrdtrack.inputs.panel import compact_panel
from mrdtrack.jobs import per_sample
from mrdtrack.logs import setup_logging, user_errors_as_messages
from mrdtrack.settings import settings_record
from mrdtrack.tables import read_table, write_json, write_tsv

setup_logging(snakemake.log[0])
with user_errors_as_messages():
    settings = CountSettings.from_config(snakemake.params.settings)
    # a genome-wide cohort panel's 100,000s of rows, held throughout: its text as categories
    panel = compact_panel(read_table("panel_loci", snakemake.input.panel))
    patient_of = dict(zip(snakemake.params.samples, snakemake.params.patients, strict=True))
    output = snakemake.output
    jobs = per_sample(
        snakemake.params.samples,
        alignment=snakemake.input.alignments,
        counts=output.counts,
        fraglen=output.fraglen,
        fragments=output.fragments,
        qc=output.qc,
        flanks=output.flanks,
    )
    job_settings = settings_for_job([job.alignment for job in jobs], settings)
    for job in jobs:
        result = count_sample(
            sample_id=job.sample,
            alignment_path=job.alignment,
            reference=snakemake.input.reference[0],
            panel=panel,
            settings=job_settings,
            threads=snakemake.threads,
            check_reference=True,  # another build's reads would enter every patient's background
            patient_id=patient_of.get(job.sample) or None,
            counts_path=job.counts,  # written as it is counted: a genome-wide panel's table is not held whole
        )
        write_tsv(result.fragment_lengths, job.fraglen)
        write_tsv(result.fragments, job.fragments)
        write_tsv(result.flanks, job.flanks)
        write_json(result.qc | {"settings": settings_record(settings)}, job.qc)  # what counting used
