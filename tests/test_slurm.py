"""mrdtrack runs on a real (single-node) Slurm cluster through Snakemake's SLURM executor plugin."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, prepare_workdir, run_snakemake
from slurm_cluster import local_slurm, why_slurm_cannot_start

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


def test_bundled_data_through_slurm_gives_the_local_calls(slurm, bundled_run, tmp_path):
    workdir = prepare_workdir(tmp_path)
    profile = str(REPO / "workflow" / "profiles" / "slurm")
    result = run_snakemake(
        workdir, "--workflow-profile", profile, "--slurm-keep-successful-logs", timeout=600
    )
    assert result.returncode == 0, result.stderr[-5000:]
    local = (bundled_run / "results/mrd/calls.tsv").read_bytes()
    assert (workdir / "results/mrd/calls.tsv").read_bytes() == local
    slurm_logs = list(Path(workdir, ".snakemake", "slurm_logs").rglob("*.log"))
    assert {p.parent.name for p in slurm_logs} >= {"rule_call_mrd", "rule_report", "rule_count_molecules"}
    jobs = subprocess.run(["scontrol", "show", "jobs", "-o"], capture_output=True, text=True).stdout
    assert "JobState=COMPLETED" in jobs
