"""Reruns redo only what changed, and a run killed half-way finishes with the same bytes as an uninterrupted one.

- Adding a batch sheet counts only the new samples; the cohort steps (background, calls, clinical, survival,
  report) are redone. A batch of new controls alone also reruns background and calls, and no old sample's counts.
- A run killed with SIGKILL (whole process group) while counting, then rerun (`rerun-incomplete: true` in the
  default profile), gives byte-identical counts, background, calls and survival tables to the uninterrupted
  `bundled_run`. The rerun uses `--cores 1` and `bundled_run` `--cores 2`, and the killed run groups 4 samples
  per job (`samples_per_job: 4`, so the kill can leave a job's outputs half written) where `bundled_run` has one
  job per sample: the same comparison proves the results depend on neither the cores nor the jobs' layout.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE_HEADER, TEST_DATA, prepare_workdir, run_snakemake

pytestmark = pytest.mark.slow

COHORT_RULES = {
    "sample_sheet",
    "background",
    "calibrate",
    "calling_model",
    "gather_calls",
    "clinical",
    "survival",
    "report",
    "all",
}
JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n?)*)", re.MULTILINE)


def planned_jobs(output: str) -> list[dict[str, str]]:
    """The jobs of a dry run: rule, sample wildcard (if any) and Snakemake's reason."""
    jobs = []
    for rule, body in JOB.findall(output):
        fields = dict(re.findall(r"^\s+(\w+): (.*)$", body, re.MULTILINE))
        sample = re.search(r"sample=([^,\s]+)", fields.get("wildcards", ""))
        jobs.append(
            {"rule": rule, "sample": sample.group(1) if sample else "", "reason": fields.get("reason", "")}
        )
    return jobs


def copy_of_run(run: Path, target: Path) -> Path:
    """A copy of a finished run (outputs, logs and Snakemake's metadata, with their modification times)."""
    prepare_workdir(target)
    for folder in ("results", "logs", ".snakemake"):
        shutil.copytree(run / folder, target / folder, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    return target


def add_batch(workdir: Path, rows: dict[str, tuple[str, str, str]]) -> str:
    """A new batch folder in `workdir`: sample_id -> (patient_id, sample_type, bundled BAM to copy). A copy of
    a file is marked as a technical replicate of its sample (a copy under another sample_id is an error)."""
    folder = workdir / "batch3"
    (folder / "bams").mkdir(parents=True, exist_ok=True)
    lines = []
    for sample_id, (patient, kind, source) in rows.items():
        for suffix in ("", ".bai"):
            shutil.copy2(TEST_DATA / f"{source}{suffix}", folder / "bams" / f"{sample_id}.bam{suffix}")
        replicated = Path(source).name.removesuffix(".bam")
        lines.append(f"{sample_id}\t{patient}\t{kind}\t2024-10-01\tbams/{sample_id}.bam\t{replicated}\n")
    (folder / "samples.tsv").write_text(SAMPLE_HEADER.replace("\n", "\treplicate_of\n") + "".join(lines))
    config = workdir / "config" / "config.yaml"
    text = config.read_text()
    if "batch3/samples.tsv" not in text:
        text = text.replace(
            "  - test_data/batch2/samples.tsv\n", "  - test_data/batch2/samples.tsv\n  - batch3/samples.tsv\n"
        )
        config.write_text(text)
    return str(folder / "samples.tsv")


def dry_run(workdir: Path) -> list[dict[str, str]]:
    result = run_snakemake(workdir, "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return planned_jobs(result.stdout + result.stderr)


def test_a_new_batch_recounts_only_its_samples_and_redoes_the_cohort_steps(bundled_run, tmp_path):
    workdir = copy_of_run(bundled_run, tmp_path / "run")
    assert dry_run(workdir) == [], "the copied run should be complete"

    add_batch(workdir, {"P01_T4": ("P01", "plasma", "batch2/bams/P01_T3.bam"),
                        "CTRL07": ("", "control", "batch2/bams/CTRL06.bam")})  # fmt: skip
    jobs = dry_run(workdir)
    assert sorted(j["sample"] for j in jobs if j["rule"] == "count_molecules") == ["CTRL07", "P01_T4"]
    assert {j["rule"] for j in jobs} == COHORT_RULES | {"count_molecules", "call_sample"}
    assert all("Missing output files" in j["reason"] for j in jobs if j["rule"] == "count_molecules")
    sheet_job = next(j for j in jobs if j["rule"] == "sample_sheet")
    assert "batch3/samples.tsv" in sheet_job["reason"]

    # New healthy controls alone: they change the background model, so background and calls are redone.
    add_batch(workdir, {"CTRL07": ("", "control", "batch2/bams/CTRL06.bam")})
    jobs = dry_run(workdir)
    assert [j["sample"] for j in jobs if j["rule"] == "count_molecules"] == ["CTRL07"]
    assert {"background", "calibrate", "call_sample", "clinical", "survival", "report"} <= {
        j["rule"] for j in jobs
    }
    background = next(j for j in jobs if j["rule"] == "background")
    assert "results/counts/CTRL07.tsv" in background["reason"]


SAMPLES_PER_JOB = ("--config", "samples_per_job=4")


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    snakefile = str(REPO / "workflow" / "Snakefile")
    return [sys.executable, "-m", "snakemake", "--snakefile", snakefile, "--directory", str(workdir), *args]


def run_on_one_core(workdir: Path) -> subprocess.CompletedProcess:
    # conftest.run_snakemake always adds --cores 2.
    command = snakemake_command(workdir, "--cores", "1", *SAMPLES_PER_JOB)
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir, timeout=900)


def _compared_files(workdir: Path) -> list[str]:
    steps = ["results/counts", "results/background", "results/mrd", "results/survival"]
    files = [p for step in steps for p in (workdir / step).rglob("*") if p.is_file()]
    return sorted(
        str(p.relative_to(workdir)) for p in files if not p.name.startswith(".")
    )  # .tmp: checked apart


def test_a_killed_run_reruns_to_byte_identical_results_on_one_core_and_other_jobs(bundled_run, tmp_path):
    workdir = prepare_workdir(tmp_path / "killed")
    log = (tmp_path / "killed_run.log").open("w")
    command = snakemake_command(workdir, "--cores", "2", *SAMPLES_PER_JOB)
    process = subprocess.Popen(
        command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    counts = workdir / "results" / "counts"
    deadline = time.monotonic() + 300
    try:
        while len(list(counts.glob("*.qc.json"))) < 6:
            if process.poll() is not None:
                pytest.fail(
                    f"the run ended before it could be killed:\n{(tmp_path / 'killed_run.log').read_text()}"
                )
            assert time.monotonic() < deadline, "no count tables after 5 minutes"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
    time.sleep(0.5)
    assert not (workdir / "results/mrd/calls.tsv").exists(), "killed before the cohort steps"
    killed_at = len(list(counts.glob("*.qc.json")))

    # A SIGKILLed Snakemake cannot remove its lock (.snakemake/locks): the next run stops at once, saying the lock
    # was likely left by a kill signal and how to remove it. The user runs --unlock, then the same command again.
    locked = run_on_one_core(workdir)
    assert locked.returncode != 0
    assert "likely caused by a kill signal" in locked.stdout + locked.stderr
    assert "--unlock" in locked.stdout + locked.stderr
    assert run_snakemake(workdir, "--unlock").returncode == 0
    rerun = run_on_one_core(workdir)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Traceback (most recent call last)" not in rerun.stdout + rerun.stderr

    expected = _compared_files(bundled_run)
    assert _compared_files(workdir) == expected
    assert len([f for f in expected if f.startswith("results/counts/")]) > killed_at
    differing = [f for f in expected if (workdir / f).read_bytes() != (bundled_run / f).read_bytes()]
    assert differing == [], differing
    leftovers = [str(p) for p in (workdir / "results").rglob(".*.tmp")]
    assert leftovers == [], f"temporary files of killed jobs were left behind: {leftovers}"
