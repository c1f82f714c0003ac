"""Shared fixtures: paths to the repository, the bundled test data and the optional real data in ../shared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "test_data"
SHARED_REAL_DATA = REPO.parent / "shared" / "real_data"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def ctdnatools() -> Path:
    folder = SHARED_REAL_DATA / "ctdnatools"
    if not folder.is_dir():
        pytest.skip(
            f"real ctDNAtools reads not available at {folder} (only in CI and dev machines with ../shared)"
        )
    return folder


@pytest.fixture(scope="session")
def finaletoolkit() -> Path:
    folder = SHARED_REAL_DATA / "finaletoolkit_delfi"
    if not folder.is_dir():
        pytest.skip(f"real FinaleToolkit cfDNA CRAM not available at {folder} (only with ../shared)")
    return folder


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name}); .ci/run installs it")
    return path
