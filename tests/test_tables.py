"""Outputs are written whole or not at all, and a killed writer's remains are cleared by the next attempt."""

from __future__ import annotations

import pandas as pd
import pytest

from mrdtrack.tables import atomic_path, read_tsv, write_json, write_tsv

TABLE = pd.DataFrame({"locus": ["chr1:100", "chr2:200"], "alt": [0, 3]})


def hidden_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_written_table_reads_back_and_leaves_no_temporary_file(tmp_path):
    write_tsv(TABLE, tmp_path / "counts.tsv")
    pd.testing.assert_frame_equal(read_tsv(tmp_path / "counts.tsv"), TABLE)
    assert hidden_files(tmp_path) == []


def test_the_remains_of_a_killed_writer_are_replaced_by_the_next_write(tmp_path):
    (tmp_path / ".counts.tsv.tmp").write_text("locus\talt\nchr1:100\t")  # a SIGKILL mid-write leaves this
    write_tsv(TABLE, tmp_path / "counts.tsv")
    pd.testing.assert_frame_equal(read_tsv(tmp_path / "counts.tsv"), TABLE)
    assert hidden_files(tmp_path) == []


def test_a_failed_write_keeps_the_previous_output_and_leaves_no_temporary_file(tmp_path):
    write_json({"molecules": 10}, tmp_path / "qc.json")
    before = (tmp_path / "qc.json").read_bytes()
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "qc.json") as tmp:
        tmp.write_text('{"molecules": ')
        raise RuntimeError("killed half-way")
    assert (tmp_path / "qc.json").read_bytes() == before
    assert hidden_files(tmp_path) == []


def test_a_failed_first_write_leaves_no_output_at_all(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "new" / "calls.tsv") as tmp:
        tmp.write_text("sample\tcall\n")
        raise RuntimeError("killed half-way")
    assert list((tmp_path / "new").iterdir()) == []
