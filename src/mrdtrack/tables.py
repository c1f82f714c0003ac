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


def write_tsv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write `frame` as a tab-separated table (no index), atomically, every float at full precision.

    A float is written as the shortest text that reads back to the same double (Python's repr), so a figure
    read from a table equals the one computed; a whole number is written without `.0`, as an integer is;
    NaN is an empty field. repr is exact and platform-independent, so reruns give byte-identical tables.
    """
    with atomic_path(path) as tmp:
        _with_exact_floats(frame).to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def _with_exact_floats(frame: pd.DataFrame) -> pd.DataFrame:
    floats = [i for i, dtype in enumerate(frame.dtypes) if pd.api.types.is_float_dtype(dtype)]
    if not floats:
        return frame
    exact = frame.copy()
    for position in floats:  # by position: a table may repeat a column name
        values = frame.iloc[:, position].astype(float).to_numpy()
        exact.isetitem(position, [exact_text(value) for value in values])
    return exact


def exact_text(value: float) -> str:
    """The shortest text that reads back to `value` exactly ('' for NaN, `3` rather than `3.0`)."""
    if value != value:
        return ""
    text = repr(float(value))
    return text.removesuffix(".0")


def read_tsv(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """Read a table written by `write_tsv`: only empty fields are missing (a context `NAN` stays text).

    Floats are parsed with correct rounding (`round_trip`): pandas' default parser is off by one unit in the
    last place for about a third of 17-digit numbers, which would undo the exact writing.
    """
    options = {"sep": "\t", "keep_default_na": False, "na_values": [""], "float_precision": "round_trip"}
    return pd.read_csv(path, **(options | kwargs))


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
