"""The flank tally: the fast, array-wide count of flank molecules gives exactly the rows of the plain
per-position tally below, which is the specification of the `flanks` table (docs/tables.md): the table holds one
row per position, and its rows per position and ALT base (`flank_rows`) are the tally's."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np
import pandas as pd
import pysam
import pytest

from conftest import per_position_flank_molecules, write_indexed_bam
from mrdtrack.counting import CountSettings, count_sample
from mrdtrack.counting import flanks as flank_module
from mrdtrack.counting.flanks import flank_contexts, flank_table
from mrdtrack.counting.molecules import DISCORDANT, Locus, LocusMolecules
from mrdtrack.flank_layout import FLANK_COLUMNS, FLANK_ROW_COLUMNS, compact_flanks, flank_rows

BASES = "ACGT"


def reference_tally(
    positions: pd.DataFrame, found: Iterable[tuple[str, Locus, LocusMolecules]]
) -> pd.DataFrame:
    """The flank rows counted position by position, ALT by ALT: one row per covered position and ALT base."""
    context = {
        (c, int(p)): x
        for c, p, x in zip(positions["chrom"], positions["pos"], positions["context"], strict=True)
    }
    rows = []
    for chrom, locus, molecules in found:
        rows.extend(_rows(chrom, locus, context[(chrom, locus.pos)], molecules))
    frame = pd.DataFrame(rows, columns=FLANK_ROW_COLUMNS)
    counts = ["pos", *(c for c in frame.columns if c.endswith(("_molecules", "_f1r2", "_f2r1")))]
    return frame.astype(dict.fromkeys(counts, np.int64))


def _rows(chrom: str, locus: Locus, context: str, molecules: LocusMolecules) -> Iterator[tuple]:
    bases, forward = molecules.bases, molecules.read1_forward
    informative = np.isin(bases, [ord(b) for b in BASES])
    if not informative.any():  # no molecule, or discordant ones only: no row
        return
    is_ref = bases == ord(locus.ref)
    ref_n, ref_f1r2 = int(is_ref.sum()), int(forward[is_ref].sum())
    for alt in BASES.replace(locus.ref, ""):
        is_alt = bases == ord(alt)
        alt_n, alt_f1r2 = int(is_alt.sum()), int(forward[is_alt].sum())
        yield (
            chrom, locus.pos, locus.ref, alt, context, ref_n, alt_n,
            int((informative & ~is_ref & ~is_alt).sum()), int((bases == ord(DISCORDANT)).sum()),
            alt_f1r2, alt_n - alt_f1r2, ref_f1r2, ref_n - ref_f1r2,
            ",".join(str(n) for n in sorted(molecules.lengths[is_alt].tolist())),
        )  # fmt: skip


def random_molecules(rng: np.random.Generator, n_positions: int) -> tuple[pd.DataFrame, list]:
    """Flank positions on two contigs with random molecules: mostly REF, some of each ALT, discordant and N
    calls, positions without molecules or with discordant ones only, lengths that repeat."""
    positions, found = [], []
    for index in range(n_positions):
        chrom = "chr1" if index < n_positions // 2 else "chr2"
        ref = BASES[rng.integers(4)]
        pos = 1000 + 3 * index
        positions.append((chrom, pos, ref, "A" + ref + "C"))
        n = int(rng.choice([0, 1, 5, 60, 400]))
        if rng.random() < 0.1:  # discordant molecules only
            bases = np.full(n, ord(DISCORDANT))
        else:  # mostly REF; any of the four bases, discordant and N in the rest
            noise = rng.choice([ord(c) for c in "ACGT-N"], n)
            bases = np.where(rng.random(n) < 0.9, ord(ref), noise)
        molecules = LocusMolecules(
            bases=np.asarray(bases, dtype=np.int64),
            read1_forward=rng.random(n) < 0.5,
            lengths=rng.integers(140, 150, n),
            family_sizes=np.ones(n, dtype=np.int64),
            reads=n,
            fragments=np.arange(n),
        )
        found.append((chrom, Locus(chrom, pos, ref, "A" if ref != "A" else "C"), molecules))
    return pd.DataFrame(positions, columns=["chrom", "pos", "ref", "context"]), found


@pytest.mark.parametrize("batch", [1 << 20, 50])
def test_the_array_tally_gives_the_rows_of_the_per_position_tally(monkeypatch, batch):
    """Every column, row order and dtype, also when the molecules are tallied in many small batches."""
    monkeypatch.setattr(flank_module, "TALLY_BATCH", batch)
    positions, found = random_molecules(np.random.default_rng(4), 300)
    expected = reference_tally(positions, found)
    assert expected["alt_molecules"].gt(0).sum() > 100 and expected["alt_lengths"].str.contains(",").any()
    assert len(expected) < 3 * len(positions)  # positions without informative molecules have no rows
    table = flank_table(flank_contexts(positions), found)
    assert list(table.columns) == FLANK_COLUMNS and len(table) == len(expected) // 3
    pd.testing.assert_frame_equal(flank_rows(table), expected)
    pd.testing.assert_frame_equal(table, compact_flanks(expected))


def test_no_molecules_give_the_empty_table():
    positions, found = random_molecules(np.random.default_rng(5), 4)
    empty = [(c, locus, replace(m, bases=m.bases[:0])) for c, locus, m in found]
    table = flank_table(flank_contexts(positions), empty)
    assert list(table.columns) == FLANK_COLUMNS and table.empty
    pd.testing.assert_frame_equal(flank_rows(table), reference_tally(positions, []))
    pd.testing.assert_frame_equal(table, compact_flanks(reference_tally(positions, [])))


def test_the_compact_table_and_its_rows_are_one_another_s_layout():
    """Each position's base columns are its rows' REF and ALT molecules, F1R2 ones and ALT lengths; the other
    two bases' molecules and each allele's F2R1 ones follow from them; folding the rows back is the table."""
    positions, found = random_molecules(np.random.default_rng(6), 200)
    table = flank_table(flank_contexts(positions), found)
    rows = flank_rows(table)
    pd.testing.assert_frame_equal(compact_flanks(rows), table)
    assert rows["pos"].tolist() == np.repeat(table["pos"], 3).tolist()
    assert (rows["ref"] != rows["alt"]).all() and rows.groupby("pos")["alt"].agg("".join).isin(
        ["CGT", "AGT", "ACT", "ACG"]
    ).all()  # fmt: skip
    first = table.iloc[np.flatnonzero(table["ref"] == "C")[0]]
    a_row = rows[(rows["pos"] == first["pos"]) & (rows["alt"] == "A")].iloc[0]
    assert (a_row["ref_molecules"], a_row["alt_molecules"]) == (first["c_molecules"], first["a_molecules"])
    assert a_row["other_molecules"] == first["g_molecules"] + first["t_molecules"]
    assert a_row["alt_f2r1"] == first["a_molecules"] - first["a_f1r2"]
    assert a_row["alt_lengths"] == first["a_lengths"] and first["c_lengths"] == ""
    with pytest.raises(ValueError, match="three per position"):
        compact_flanks(rows.iloc[1:])
    with pytest.raises(ValueError, match="one row per ALT base"):
        compact_flanks(rows.iloc[[1, 0, 2, *range(3, len(rows))]])


def small_bam(tmp_path, rng: np.random.Generator) -> tuple[str, str, pd.DataFrame]:
    """Read pairs with UMIs around two panel loci: substitutions in one or both mates (a disagreement of mates
    is discordant), PCR copies, N calls, low base qualities, a soft clip and a deletion."""
    sequence = "".join(rng.choice(list(BASES), 3000))
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">chr1\n" + sequence + "\n")
    pysam.faidx(str(fasta))
    header = pysam.AlignmentHeader.from_dict({"SQ": [{"SN": "chr1", "LN": 3000}]})
    reads = []
    for i in range(400):
        locus = 1000 if i % 2 else 2600  # two clusters of flanks
        start = int(rng.integers(locus - 90, locus - 10))
        umi = "".join(rng.choice(list("ACGT"), 6))
        for copy in range(int(rng.integers(1, 4))):
            errors = {int(rng.integers(0, 160)): BASES[rng.integers(4)] for _ in range(int(rng.poisson(1.5)))}
            for mate, pos in enumerate((start, start + 60)):
                read = pysam.AlignedSegment(header)
                read.query_name = f"r{i}c{copy}"
                bases = list(sequence[pos : pos + 100])
                for at, base in errors.items():
                    if 0 <= at - (pos - start) < 100 and (mate == 0 or rng.random() < 0.7):
                        bases[at - (pos - start)] = base
                if rng.random() < 0.05:
                    bases[int(rng.integers(0, 100))] = "N"
                qualities = np.full(100, 37)
                qualities[rng.integers(0, 100, 3)] = 5
                cigar = "100M"
                if i % 17 == 0 and mate == 1:
                    cigar, bases = "50M2D50M", bases[:50] + list(sequence[pos + 52 : pos + 102])
                elif i % 13 == 0 and mate == 0:
                    cigar = "5S95M"
                read.query_sequence = "".join(bases)
                read.flag = 1 | 2 | (0x40 | 0x20 if mate == 0 else 0x80 | 0x10)
                read.reference_id = read.next_reference_id = 0
                read.reference_start = pos + (5 if cigar == "5S95M" else 0)
                read.next_reference_start = start + 60 if mate == 0 else start
                read.mapping_quality = 60
                read.cigarstring = cigar
                read.template_length = 160 if mate == 0 else -160
                read.query_qualities = pysam.qualitystring_to_array("".join(chr(33 + q) for q in qualities))
                read.set_tag("RX", umi)
                reads.append(read)
    reads.sort(key=lambda read: read.reference_start)
    bam = write_indexed_bam(tmp_path / "s.bam", reads, header)
    panel = pd.DataFrame(
        {"patient_id": ["P1", "P1"], "chrom": ["chr1", "chr1"], "pos": [1000, 2600],
         "ref": [sequence[999], sequence[2599]], "alt": ["N", "N"], "context": ["NNN", "NNN"], "weight": [1.0, 1.0]}
    )  # fmt: skip
    panel["alt"] = ["A" if r != "A" else "C" for r in panel["ref"]]
    return bam, str(fasta), panel


@pytest.mark.parametrize("engine", ["pysam", "compiled"])
@pytest.mark.parametrize("dedup", ["umi", "none"])
def test_a_samples_flank_table_is_the_per_position_tally_of_its_molecules(tmp_path, engine, dedup):
    bam, fasta, panel = small_bam(tmp_path, np.random.default_rng(21))
    settings = CountSettings(engine=engine, dedup=dedup, min_family_size=1)
    flanks = count_sample("S1", bam, fasta, panel, settings, patient_id="P1").flanks
    positions, found = per_position_flank_molecules(bam, fasta, panel, settings)
    expected = reference_tally(positions, found)
    assert expected["alt_molecules"].sum() > 20 and expected["discordant_molecules"].sum() > 0
    pd.testing.assert_frame_equal(flank_rows(flanks), expected)
    in_two_processes = count_sample("S1", bam, fasta, panel, settings, threads=2, patient_id="P1").flanks
    pd.testing.assert_frame_equal(in_two_processes, flanks)
