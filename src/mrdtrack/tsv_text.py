"""The text of a large table of integers and plain strings, as pandas' `to_csv(sep="\\t", index=False,
lineterminator="\\n")` writes it, byte for byte, formatted by a compiled loop.

A genome-wide sample's flank table has about a million rows; `to_csv` took 2.7 s of its counting job, the
largest cost after reading the file. Here the integers are formatted and the strings copied into one buffer by
one compiled pass (after one to size it). Anything whose text could differ from `to_csv`'s is left to pandas:
a column that is neither integer nor all `str` (floats: `tables.write_tsv` turns them into text first), text
that is not ASCII or that `to_csv` would quote (a tab, newline, carriage return or double quote), a single
column (whose empty fields the csv module quotes), and column names of that kind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

# Characters that make the csv module quote a field (sep, quotechar, line ends).
_QUOTED = (b"\t", b'"', b"\n", b"\r")
_KIND_INT, _KIND_TEXT = 0, 1
# Rows formatted at a time: their column arrays (~100 bytes a row) stay a few tens of MB.
ROWS_AT_A_TIME = 100_000


def tsv_bytes(frame: pd.DataFrame) -> bytes | None:
    """The frame's text as `to_csv(sep="\\t", index=False, lineterminator="\\n")` writes it, or None when a column
    is of a kind left to pandas (module docstring)."""
    names = [str(name) for name in frame.columns]
    plain = all(name.isascii() and not any(q in name.encode() for q in _QUOTED) for name in names)
    if isinstance(frame.columns, pd.MultiIndex) or frame.shape[1] < 2 or not plain:
        return None
    header = "\t".join(names) + "\n"
    parts = [header.encode()]
    for first in range(0, max(len(frame), 1), ROWS_AT_A_TIME):
        part = _rows_text(frame.iloc[first : first + ROWS_AT_A_TIME])
        if part is None:
            return None
        parts.append(part)
    return b"".join(parts)


def _rows_text(frame: pd.DataFrame) -> bytes | None:
    """The text of the frame's rows (no header), or None (module docstring)."""
    kinds, index, ints, blobs, starts = [], [], [], [], []
    for position in range(frame.shape[1]):
        values = frame.iloc[:, position].to_numpy()
        if values.dtype.kind == "i" or (values.dtype.kind == "u" and values.dtype.itemsize < 8):
            kinds.append(_KIND_INT)
            index.append(len(ints))
            ints.append(values.astype(np.int64))
            continue
        text = _ascii_text(values)
        if text is None:
            return None
        blob, offsets = text
        kinds.append(_KIND_TEXT)
        index.append(len(blobs))
        starts.append(offsets + sum(len(b) for b in blobs))
        blobs.append(blob)
    n = len(frame)
    int_table = np.stack(ints, axis=1) if ints else np.zeros((n, 0), dtype=np.int64)
    text_bytes = np.frombuffer(b"".join(blobs) or b"\0", dtype=np.uint8)
    text_starts = np.stack(starts, axis=1) if starts else np.zeros((n + 1, 0), dtype=np.int64)
    kinds_array, index_array = np.array(kinds, dtype=np.int64), np.array(index, dtype=np.int64)
    out = np.empty(_text_size(int_table, text_starts, kinds_array, index_array), dtype=np.uint8)
    _fill(int_table, text_bytes, text_starts, kinds_array, index_array, out)
    return out.tobytes()


def _ascii_text(values: np.ndarray) -> tuple[bytes, np.ndarray] | None:
    """A column of `str` as one ASCII blob and each field's start in it (n + 1 offsets), or None when it is not
    all `str`, not ASCII, or holds a character that makes `to_csv` quote the field."""
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=False) not in ("string", "empty"):
        return None
    if not len(values):
        return b"", np.zeros(1, dtype=np.int64)
    # joined by tabs, which no field may hold: the tabs give the fields' lengths without a Python call per field
    joined = "\t".join(values)
    if not joined.isascii():
        return None
    encoded = joined.encode()
    if encoded.count(b"\t") != len(values) - 1 or any(q in encoded for q in _QUOTED if q != b"\t"):
        return None
    blob = np.frombuffer(encoded, dtype=np.uint8)
    tabs = np.flatnonzero(blob == ord("\t"))
    ends = np.append(tabs, len(blob)) - np.arange(len(values))  # each field's end once the tabs are gone
    return blob[blob != ord("\t")].tobytes(), np.concatenate([[0], ends])


@njit(cache=True)
def _magnitude(value: np.int64) -> np.uint64:  # pragma: no cover - compiled
    """|value| without overflow (the least int64 has no positive twin)."""
    return np.uint64(-(value + 1)) + np.uint64(1) if value < 0 else np.uint64(value)


@njit(cache=True)
def _digits(value: np.int64) -> int:  # pragma: no cover - compiled
    """Characters of an integer's decimal text, its minus sign included."""
    count = 1 if value < 0 else 0
    magnitude = _magnitude(value)
    while True:
        magnitude //= np.uint64(10)
        count += 1
        if magnitude == 0:
            return count


@njit(cache=True)
def _text_size(ints, starts, kinds, index) -> int:  # pragma: no cover - compiled
    n = ints.shape[0] if ints.shape[1] else starts.shape[0] - 1
    size = n * len(kinds)  # a tab between fields and the newline
    for c in range(len(kinds)):
        k = index[c]
        if kinds[c] == 0:
            for r in range(n):
                size += _digits(ints[r, k])
        else:
            size += starts[n, k] - starts[0, k]
    return size


@njit(cache=True)
def _fill(ints, text, starts, kinds, index, out) -> None:  # pragma: no cover - compiled
    n = ints.shape[0] if ints.shape[1] else starts.shape[0] - 1
    digits = np.empty(20, dtype=np.uint8)
    at = 0
    for r in range(n):
        for c in range(len(kinds)):
            if c:
                out[at] = 9
                at += 1
            k = index[c]
            if kinds[c] == 0:
                value = ints[r, k]
                if value < 0:
                    out[at] = 45
                    at += 1
                magnitude = _magnitude(value)
                m = 0
                while True:
                    digits[m] = 48 + magnitude % np.uint64(10)
                    magnitude //= np.uint64(10)
                    m += 1
                    if magnitude == 0:
                        break
                for j in range(m):
                    out[at + j] = digits[m - 1 - j]
                at += m
            else:
                begin, end = starts[r, k], starts[r + 1, k]
                out[at : at + end - begin] = text[begin:end]
                at += end - begin
        out[at] = 10
        at += 1
