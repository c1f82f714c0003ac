"""The package installs what it says, and the conda environment lists the same dependencies."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml

from conftest import REPO


def _requirement(text: str) -> tuple[str, str]:
    name, version = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", text.strip()).groups()
    return name.lower().replace("_", "-"), version.replace(" ", "")


def _conda_requirements(path: str) -> dict[str, str]:
    """A conda environment's packages, those it installs with pip from PyPI included (not pip itself, nor
    pip's options)."""
    requirements = {}
    for entry in yaml.safe_load((REPO / path).read_text())["dependencies"]:
        texts = entry["pip"] if isinstance(entry, dict) else [entry]
        requirements |= dict(_requirement(t) for t in texts if not t.startswith("-"))
    requirements.pop("pip", None)
    return requirements


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = dict(
        _requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["slurm"]
    )
    conda = _conda_requirements("environment.yml")
    python = conda.pop("python")
    assert conda == wanted
    assert python == project["requires-python"]


def test_the_rules_conda_env_lists_the_runtime_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = dict(_requirement(r) for r in project["dependencies"])
    conda = _conda_requirements("workflow/envs/mrdtrack.yaml")
    conda.pop("python")
    assert conda == wanted


def test_the_console_command_reports_its_version():
    result = subprocess.run(
        [sys.executable, "-m", "mrdtrack.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("mrdtrack ")
