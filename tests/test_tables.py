"""Outputs are written whole or not at all, a killed writer's remains are cleared by the next attempt, and a
number read from a table is the number that was computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrdtrack import tables
from mrdtrack.tables import (
    CONTRACTS,
    TYPES,
    TableError,
    atomic_path,
    columns_of,
    read_table,
    read_tables,
    read_tsv,
    tsv_writer,
    write_json,
    write_tsv,
)

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


def test_every_float_reads_back_as_the_same_double(tmp_path):
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.random(3000), np.exp(rng.normal(0, 40, 3000)), -rng.random(3000) * 1e-9])
    write_tsv(pd.DataFrame({"value": values}), tmp_path / "floats.tsv")
    read_back = read_tsv(tmp_path / "floats.tsv")["value"].to_numpy()
    assert np.array_equal(read_back, values)  # bit for bit, not within a tolerance


def test_whole_numbers_stay_integers_and_missing_values_stay_empty(tmp_path):
    frame = pd.DataFrame({"at_risk": [12.0, np.nan, 3.0], "hr": [1 / 3, 2.5, np.nan], "n": [1, 2, 3]})
    write_tsv(frame, tmp_path / "t.tsv")
    lines = (tmp_path / "t.tsv").read_text().splitlines()
    assert lines == ["at_risk\thr\tn", "12\t0.3333333333333333\t1", "\t2.5\t2", "3\t\t3"]


def test_a_table_read_and_written_again_is_byte_identical(tmp_path):
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"tf": rng.random(200) ** 8, "p": rng.random(200), "k": rng.integers(0, 9, 200)})
    write_tsv(frame, tmp_path / "first.tsv")
    write_tsv(read_tsv(tmp_path / "first.tsv"), tmp_path / "second.tsv")
    assert (tmp_path / "first.tsv").read_bytes() == (tmp_path / "second.tsv").read_bytes()


# ----- table contracts (mrdtrack.tables.CONTRACTS) --------------------------------------------------------
def test_identifiers_and_contigs_that_look_like_numbers_are_read_as_text(tmp_path):
    frame = pd.DataFrame([{column: 1 for column in columns_of("counts")} for _ in range(2)])
    frame[["sample_id", "chrom", "ref", "alt", "panel_patients", "context", "alt_lengths"]] = [
        ["007", "1", "A", "T", "12", "ACG", ""],
        ["007", "17", "C", "G", "12,13", "TCA", "160,171"],
    ]
    write_tsv(frame, tmp_path / "007.tsv")
    read = read_table("counts", tmp_path / "007.tsv")
    assert read["chrom"].tolist() == ["1", "17"] and read["sample_id"].tolist() == ["007", "007"]
    assert read["panel_patients"].tolist() == ["12", "12,13"]
    assert read["pos"].dtype.kind == "i" and read["mean_family_size"].dtype.kind in "if"


def test_a_table_without_its_contract_columns_is_an_error_naming_the_file_and_columns(tmp_path):
    write_tsv(pd.DataFrame({"sample_id": ["S1"], "chrom": ["chr1"]}), tmp_path / "S1.tsv")
    with pytest.raises(TableError, match=r"S1.tsv: not a counts table .*missing column\(s\) pos, ref, alt"):
        read_table("counts", tmp_path / "S1.tsv")


def test_every_contract_has_known_types_and_unique_columns():
    for name, contract in CONTRACTS.items():
        assert set(contract.columns.values()) <= set(TYPES), name
        assert contract.path.startswith("results/") and contract.path.endswith(".tsv"), name


def test_per_sample_tables_stack_with_the_sample_named_by_its_file_and_none_gives_the_empty_table(tmp_path):
    for sample in ("A", "B"):
        write_tsv(
            pd.DataFrame({"allele": ["R"], "length": [166], "molecules": [3]}),
            tmp_path / f"{sample}.fraglen.tsv",
        )
    stacked = read_tables("fraglen", [tmp_path / "A.fraglen.tsv", tmp_path / "B.fraglen.tsv"])
    assert stacked["sample_id"].tolist() == ["A", "B"]
    assert stacked["molecules"].tolist() == [3, 3]
    assert read_tables("fraglen", []).columns.tolist() == ["sample_id", "allele", "length", "molecules"]


def test_text_columns_read_back_as_empty_strings_not_nan(tmp_path):
    row = {"chrom": "chr1", "loci": "", "alleles": "", "length": 166, "fragments": 1}
    write_tsv(pd.DataFrame([row]), tmp_path / "S1.fragments.tsv")
    assert read_table("fragments", tmp_path / "S1.fragments.tsv")["loci"].tolist() == [""]


def test_a_table_of_text_and_counts_reads_as_the_general_reader_does_and_an_empty_count_is_an_error(tmp_path):
    flanks = pd.DataFrame(
        {
            column: (["chr1", "NA"] if column == "chrom" else ["", "150,151"] if column.endswith("_lengths")
                     else ["C", "NAN"] if CONTRACTS["flanks"].columns[column] == "text" else [3, 0])
            for column in columns_of("flanks")
        }
    )  # fmt: skip
    path = tmp_path / "S1.flanks.tsv"
    write_tsv(flanks, path)
    assert CONTRACTS["flanks"].never_empty_numbers()
    fast = read_table("flanks", path)
    lengths = [column for column in columns_of("flanks") if column.endswith("_lengths")]
    assert len(lengths) == 4
    general = read_tsv(path, dtype=CONTRACTS["flanks"].dtypes()).fillna(dict.fromkeys(lengths, ""))
    pd.testing.assert_frame_equal(fast, general)
    assert fast["chrom"].tolist() == ["chr1", "NA"] and fast["t_lengths"].tolist() == ["", "150,151"]
    path.write_text(path.read_text().replace("\t3\t", "\t\t", 1))
    with pytest.raises(TableError, match=r"S1\.flanks\.tsv: not a flanks table .*whole number"):
        read_table("flanks", path)


def test_a_table_written_block_by_block_is_the_table_written_whole(tmp_path, monkeypatch):
    """A genome-wide count table is written as it is counted: its bytes are those of `write_tsv` of the whole,
    whichever blocks are formatted by pandas and which by the compiled loop, and it appears only when complete."""
    monkeypatch.setattr(tables, "COMPILED_BLOCK_ROWS", 5)  # some blocks by each formatter
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"chrom": "chr1", "pos": np.arange(40) * 1500, "alt": rng.integers(0, 4, 40),
         "mean": rng.choice([0.0, 1.0, 1 / 3, 2.5], 40), "lengths": rng.choice(["", "150", "150,166"], 40)}
    )  # fmt: skip
    write_tsv(frame, tmp_path / "whole.tsv")
    with tsv_writer(tmp_path / "blocks.tsv", frame.columns) as write:
        for start, end in [(0, 3), (3, 3), (3, 20), (20, 40)]:
            write(frame.iloc[start:end])
            assert not (tmp_path / "blocks.tsv").exists()
    assert (tmp_path / "blocks.tsv").read_bytes() == (tmp_path / "whole.tsv").read_bytes()
    assert hidden_files(tmp_path) == []


def test_a_table_written_block_by_block_without_blocks_is_its_header_and_a_failed_one_is_not_written(
    tmp_path,
):
    with tsv_writer(tmp_path / "empty.tsv", ["sample_id", "pos"]):
        pass
    assert (tmp_path / "empty.tsv").read_text() == "sample_id\tpos\n"
    with pytest.raises(RuntimeError), tsv_writer(tmp_path / "failed.tsv", TABLE.columns) as write:
        write(TABLE)
        raise RuntimeError("killed half-way")
    assert not (tmp_path / "failed.tsv").exists() and hidden_files(tmp_path) == []
