"""Large tables are written by a compiled loop (mrdtrack.tsv_text): the same bytes as pandas' to_csv, and pandas
wherever the text could differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

from mrdtrack import tables, tsv_text
from mrdtrack.tsv_text import tsv_bytes


def pandas_text(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(sep="\t", index=False, lineterminator="\n").encode()


@pytest.mark.parametrize("rows_at_a_time", [100_000, 7])
def test_integers_and_plain_text_are_the_bytes_pandas_writes(monkeypatch, rows_at_a_time):
    monkeypatch.setattr(tsv_text, "ROWS_AT_A_TIME", rows_at_a_time)
    rng = np.random.default_rng(3)
    n = 5000
    frame = pd.DataFrame({
        "chrom": rng.choice(["chr1", "chrX", "7"], n).astype(object),
        "pos": rng.integers(1, 3_000_000_000, n),
        "small": rng.integers(-5, 5, n).astype(np.int8),
        "wide": np.r_[np.iinfo(np.int64).min, np.iinfo(np.int64).max, rng.integers(-(10**18), 10**18, n - 2)],
        "unsigned": rng.integers(0, 2**32 - 1, n).astype(np.uint32),
        "lengths": [",".join(map(str, rng.integers(100, 300, k))) for k in rng.integers(0, 4, n)],
        "empty": "",
    })  # fmt: skip
    assert tsv_bytes(frame) == pandas_text(frame)
    assert tsv_bytes(frame.iloc[:0]) == pandas_text(frame.iloc[:0])


@pytest.mark.parametrize(
    "column",
    [
        [1.5, 2.0],  # floats: write_tsv gives them as exact text first
        ["a\tb", "c"],  # quoted by to_csv
        ['say "x"', "c"],
        ["line\nbreak", "c"],
        ["é", "c"],  # not ASCII
        ["a", None],  # not all str
        [True, False],
        pd.array([1, None], dtype="Int64"),
        np.array([2**63, 1], dtype=np.uint64),
    ],
)
def test_columns_whose_text_could_differ_are_left_to_pandas(column):
    assert tsv_bytes(pd.DataFrame({"x": [1, 2], "y": column})) is None


def test_a_single_column_and_unusual_names_are_left_to_pandas():
    assert tsv_bytes(pd.DataFrame({"x": ["", "a"]})) is None  # the csv module quotes a lone empty field
    assert tsv_bytes(pd.DataFrame({"x\ty": [1], "z": [2]})) is None
    assert (
        tsv_bytes(pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "b"), ("a", "c")]))) is None
    )


frames = hpd.data_frames(
    columns=[
        hpd.column("chrom", elements=st.sampled_from(["chr1", "chr2", "MT"]), dtype=object),
        hpd.column("pos", dtype=np.int64),
        hpd.column("text", elements=st.text(alphabet=st.sampled_from('ab,1 \t"é'), max_size=6), dtype=object),
        hpd.column("count", elements=st.integers(-(2**40), 2**40), dtype=np.int64),
        hpd.column("rate", elements=st.floats(allow_nan=True, allow_infinity=False), dtype=float),
    ]
)


@settings(max_examples=60, deadline=None)
@given(frame=frames)
def test_write_tsv_writes_what_pandas_writes_whichever_writer_it_takes(tmp_path_factory, frame):
    folder = tmp_path_factory.mktemp("tsv")
    tables.write_tsv(frame, folder / "pandas.tsv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tables, "COMPILED_TEXT_ROWS", 0)
        tables.write_tsv(frame, folder / "compiled.tsv")
    assert (folder / "compiled.tsv").read_bytes() == (folder / "pandas.tsv").read_bytes()
