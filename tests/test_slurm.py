"""mrdtrack runs on a real (single-node) Slurm cluster through Snakemake's SLURM executor plugin."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, TEST_DATA, run_snakemake
from slurm_cluster import cancel_all_jobs, local_slurm, why_slurm_cannot_start

pytestmark = [pytest.mark.slow, pytest.mark.external]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = why_slurm_cannot_start()
    if reason:
        pytest.skip(f"no local Slurm: {reason}")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
    with local_slurm(tmp_path_factory.mktemp("slurm_daemons")):
        yield


PROFILE = str(REPO / "workflow" / "profiles" / "slurm")
# A one-node test cluster answers at once: poll it more often than a real cluster should be polled. Its node has
# two CPUs: no job may ask for more (a job asking for more stays pending), and one thread per counting job lets two
# samples count at once (a job is mostly Snakemake starting up).
TEST_CLUSTER = ["--seconds-between-status-checks", "2", "--slurm-init-seconds-before-status-checks", "2",
                "--max-threads", "2", "--set-threads", "count_molecules=1"]  # fmt: skip


def slurm_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return run_snakemake(workdir, "--workflow-profile", PROFILE, *TEST_CLUSTER, *args, timeout=900)
    finally:
        cancel_all_jobs()  # nothing left queued after a timeout to slow the next test


def test_a_failed_cluster_job_is_named_and_the_rerun_finishes_with_the_local_calls(
    slurm, bundled_run, tmp_path
):
    # One cluster run that fails and one that resumes cover both stories (a job per sample on the cluster giving
    # the local results, and a failure that costs no other sample its work) in half the time of two full runs.
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", workdir / "config" / "config.yaml")
    shutil.copytree(TEST_DATA, workdir / "test_data")
    bam = workdir / "test_data" / "batch1" / "bams" / "CTRL02.bam"
    original = bam.read_bytes()
    middle = len(original) // 2
    bam.write_bytes(original[:middle] + bytes(20_000) + original[middle + 20_000 :])

    failed = slurm_run(workdir)
    assert failed.returncode != 0
    assert "rule count_molecules" in failed.stderr
    assert "sample=CTRL02" in failed.stderr
    assert "logs/count_molecules/CTRL02.log" in failed.stderr
    assert "truncated or corrupt" in (workdir / "logs/count_molecules/CTRL02.log").read_text()
    assert not (workdir / "results/counts/CTRL02.tsv").exists()
    finished = {p: p.stat().st_mtime_ns for p in (workdir / "results/counts").glob("*.qc.json")}
    every_other = {p.name for p in (bundled_run / "results/counts").glob("*.qc.json")} - {"CTRL02.qc.json"}
    assert {p.name for p in finished} == every_other, "keep-going: every other sample is counted, and kept"

    bam.write_bytes(original)
    resumed = slurm_run(workdir, "--slurm-keep-successful-logs")
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished, "finished samples were not redone"
    local = (bundled_run / "results/mrd/calls.tsv").read_bytes()
    assert (workdir / "results/mrd/calls.tsv").read_bytes() == local

    slurm_logs = workdir / ".snakemake" / "slurm_logs"
    rules = {log.relative_to(slurm_logs).parts[0] for log in slurm_logs.rglob("*.log")}
    expected = {"rule_calibrate", "rule_call_sample", "rule_report", "rule_count_molecules"}
    assert rules >= expected, "each job ran as its own sbatch"
    jobs = subprocess.run(["scontrol", "show", "jobs", "-o"], capture_output=True, text=True).stdout
    assert "JobState=COMPLETED" in jobs
