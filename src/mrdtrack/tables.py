"""Reading and writing the TSV tables passed between workflow steps.

Every output is written to a temporary file in the destination folder and then renamed into place, so a killed
job never leaves a half-written table that looks complete. The temporary file has a fixed hidden name
(`.NAME.tmp`): Snakemake lets only one job write an output at a time, so the next attempt after a killed one
overwrites and renames the remains instead of leaving them beside the results.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

# Floats are written with a fixed, round-trip-safe format so reruns give byte-identical tables.
FLOAT_FORMAT = "%.6g"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.with_name(f".{target.name}.tmp")
    tmp_path.unlink(missing_ok=True)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_tsv(frame: pd.DataFrame, path: str | os.PathLike[str], float_format: str = FLOAT_FORMAT) -> None:
    """Write `frame` as a tab-separated table (no index), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format=float_format, lineterminator="\n")


def read_tsv(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """Read a table written by `write_tsv`: only empty fields are missing (a context `NAN` stays text)."""
    options = {"sep": "\t", "keep_default_na": False, "na_values": [""]} | kwargs
    return pd.read_csv(path, **options)


def write_json(data: Any, path: str | os.PathLike[str]) -> None:
    """Write `data` as indented, key-sorted JSON, atomically; NaN becomes null."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value
