# Sheets are read and checked once, before any job runs. Only the sheets are read here (never an alignment),
# because cluster executors re-run this file inside every job.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The mrdtrack package of this source tree (jobs' scripts find it through the link workflow/scripts/mrdtrack).
sys.path.insert(0, os.path.normpath(os.path.join(workflow.basedir, "..", "src")))

from mrdtrack.inputs.config import config_problems, with_dates_as_text
from mrdtrack.inputs.problems import format_problems
from mrdtrack.inputs.sheets import InputError, index_path, load_inputs

# Checked here in people's terms (an unknown key with the valid names), then by Snakemake, which fills defaults.
CONFIG_PROBLEMS = config_problems(
    with_dates_as_text(config),
    ", ".join(map(str, workflow.configfiles)) or "the config",
)
if CONFIG_PROBLEMS:
    raise WorkflowError(format_problems(CONFIG_PROBLEMS))
validate(config, schema="../schemas/config.schema.yaml")

try:
    INPUTS = load_inputs(config)
except InputError as error:
    raise WorkflowError(str(error)) from None
for warning in INPUTS.warnings:
    logger.warning(f"mrdtrack: {warning}")

validate(INPUTS.samples, schema="../schemas/samples.schema.yaml")
SAMPLES = INPUTS.samples
SAMPLE_SHEETS = (
    [config["samples"]] if isinstance(config["samples"], str) else config["samples"]
)


wildcard_constraints:
    sample="[A-Za-z0-9][A-Za-z0-9._-]*",


# Looked up once here: input functions run for every job while the DAG is built (5,000+ samples on a cluster).
ALIGNMENTS = dict(zip(SAMPLES.index, SAMPLES["bam"]))
INDEXES = {sample: index_path(path) for sample, path in ALIGNMENTS.items()}
# A parameter, not the sheet as an input: a new batch must not make every sample's counts out of date.
PATIENT_OF = {
    sample: patient if isinstance(patient, str) else ""
    for sample, patient in zip(SAMPLES.index, SAMPLES["patient_id"])
}


def alignment(wildcards):
    return ALIGNMENTS[wildcards.sample]


def alignment_index(wildcards):
    return INDEXES[wildcards.sample]


class SampleJobs:
    """The jobs of a per-sample step: one per sample (a wildcard rule, which a cluster spreads), or, with
    `samples_per_job` > 1, one rule per run of that many samples in sheet order, so a laptop pays each job's start-up
    (a fresh Python with pysam, numpy and pandas: ~1 s) once per run instead of once per sample. Every sample's
    files and results are the same in both layouts."""

    def __init__(self, step, chunk=None, number=None):
        self.step = step
        self.chunk = chunk  # None: the wildcard rule
        self.name = step if chunk is None else f"{step}_{number:04d}"
        self.samples = (
            (lambda wildcards: [wildcards.sample]) if chunk is None else list(chunk)
        )
        self.log = self.one(
            f"logs/{step}/{{sample}}.log", f"logs/{step}/{self.name}.log"
        )
        self.benchmark = self.one(
            f"results/benchmarks/{step}/{{sample}}.tsv",
            f"results/benchmarks/{step}/{self.name}.tsv",
        )

    def one(self, per_sample, per_chunk):
        return per_sample if self.chunk is None else per_chunk

    def files(self, pattern):
        """The job's files of `pattern` (with `{sample}`), in the order of `samples`."""
        if self.chunk is None:
            return pattern
        return [pattern.format(sample=sample) for sample in self.chunk]

    def each(self, path_of):
        """The job's inputs looked up per sample in `path_of` (sample -> path)."""
        if self.chunk is None:
            return lambda wildcards: path_of[wildcards.sample]
        return [path_of[sample] for sample in self.chunk]

    def values(self, value_of):
        """The job's values per sample from `value_of` (sample -> value), a list in the order of `samples`."""
        if self.chunk is None:
            return lambda wildcards: [value_of[wildcards.sample]]
        return [value_of[sample] for sample in self.chunk]


def sample_jobs(step, samples):
    size = config.get("samples_per_job", 1)
    samples = list(samples)
    if size == 1:
        return [SampleJobs(step)]
    chunks = [samples[i : i + size] for i in range(0, len(samples), size)]
    return [SampleJobs(step, chunk, n) for n, chunk in enumerate(chunks, 1)]


PLASMA = SAMPLES.index[SAMPLES["sample_type"] == "plasma"]


def reference_files():
    suffixes = [".fai", ".gzi"] if config["reference"].endswith(".gz") else [".fai"]
    return [config["reference"]] + [config["reference"] + s for s in suffixes]


def panel_vcfs():
    return [vcf for vcf in INPUTS.patients["panel_vcf"] if vcf]


def all_counts():
    return expand("results/counts/{sample}.tsv", sample=SAMPLES.index)


def all_count_files(suffix):
    return expand(
        "results/counts/{sample}.{suffix}", sample=SAMPLES.index, suffix=suffix
    )


def megabytes(paths):
    # os.stat, not Snakemake's input.size_mb: that costs ~2 ms a file, which a 5,000-sample dry run pays for
    # every job's resources (tens of seconds).
    return sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) / 1e6


def counting_runtime(wildcards, input):
    # Minutes; counting streams the alignments, so its time grows with the file's size.
    alignments = input.alignments
    paths = [alignments] if isinstance(alignments, str) else list(alignments)
    return 10 + int(megabytes(paths) / 200)


def cohort_mem_mb(wildcards, input):
    # The cohort steps hold every sample's count table in memory: about 13x their size on disk in pandas (280 MB
    # peak for the 12 MB of tables, 176,000 rows, of benchmarks/detection.py's 20-patient cohort), 20x with room
    # to spare.
    return 1000 + int(20 * megabytes(input))


def plasma_call_files():
    return [
        f"results/mrd/samples/{sample}.{part}.tsv"
        for sample in PLASMA
        for part in ("call", "loci")
    ]


def calibration_runtime(wildcards, threads):
    # Minutes; every plasma and control sample is scored against at most calling.max_null_panels other
    # patients' panels, so the work is linear in the samples. benchmarks/call_speed.py measured ~0.025 s per
    # score on one core; 0.06 s allows a slower core, three times that a busy node, shared by the threads.
    # Imported here, not at the top: only the calibrate job's resources need it, and every job reads this file.
    from mrdtrack.calling import CallSettings

    scored = SAMPLES["sample_type"].isin(["plasma", "control"]).sum()
    patients = SAMPLES["patient_id"].nunique()
    settings = CallSettings.from_config(config.get("calling"))
    panels = settings.max_null_panels or patients
    seconds = 0.06 * scored * min(panels, patients)
    return 10 + int(3 * seconds / threads / 60)


def final_outputs():
    return all_counts() + [
        "results/mrd/calls.tsv",
        "results/survival/summary.json",
        "results/report/mrd_report.html",
    ]
