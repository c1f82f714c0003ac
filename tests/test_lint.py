"""Code style is part of the build: ruff, snakefmt and snakemake's own linter must be clean."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True)


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(REPO / ".venv" / "bin"))
    if path is None:
        pytest.skip(f"{name} not installed (pip install -e '.[test]')")
    return path


def test_ruff_lint_is_clean():
    result = _run([_tool("ruff"), "check", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _run([_tool("ruff"), "format", "--check", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = _run([_tool("snakefmt"), "--check", "workflow"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_is_clean():
    result = _run([sys.executable, "-m", "snakemake", "--lint", "--cores", "1"])
    assert result.returncode == 0, result.stdout + result.stderr
