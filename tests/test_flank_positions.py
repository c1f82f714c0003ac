"""Flank positions: the array-wide selection gives exactly the positions of the plain definition below, position
by position (docs/tables.md, `flanks`)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pysam
import pytest

from mrdtrack.counting import flanks
from mrdtrack.counting.flanks import FLANK_CLUSTER, FLANK_GAP, FlankWindow, flank_loci, flank_positions
from mrdtrack.counting.molecules import Locus


def reference_positions(
    panel: pd.DataFrame, patient: str, sequences: dict[str, str], window: FlankWindow
) -> list:
    """Every position within `window.window` of the patient's loci, not within `window.gap` of any patient's
    locus (its whole REF span), with a reference trinucleotide of A, C, G, T only (any case)."""
    rows = []
    own = panel[panel["patient_id"] == patient]
    for chrom in own["chrom"].unique():
        if chrom not in sequences:
            continue
        sequence = sequences[chrom].upper()
        loci = panel[panel["chrom"] == chrom]
        near = {
            p
            for pos, ref in zip(loci["pos"], loci["ref"], strict=True)
            for p in range(pos - window.gap, pos + len(ref) + window.gap)
        }
        wanted = {
            p
            for pos in own.loc[own["chrom"] == chrom, "pos"]
            for p in range(pos - window.window, pos + window.window + 1)
        }
        for pos in sorted(wanted - near):
            context = sequence[pos - 2 : pos + 1] if 2 <= pos <= len(sequence) - 1 else ""
            if len(context) == 3 and set(context) <= set("ACGT"):
                rows.append((chrom, pos, context[1], context))
    return rows


@pytest.mark.parametrize("window", [FlankWindow(), FlankWindow(3, 0), FlankWindow(40, 5)])
def test_flank_positions_are_those_of_the_plain_definition(tmp_path, window):
    rng = np.random.default_rng(8)
    sequences = {
        c: "".join(rng.choice(list("ACGTNacg"), 2000, p=[0.22] * 4 + [0.03] * 4)) for c in ("c1", "c2")
    }
    (tmp_path / "ref.fa").write_text("".join(f">{c}\n{s}\n" for c, s in sequences.items()))
    pysam.faidx(str(tmp_path / "ref.fa"))
    n = 60  # dense loci, some at the contigs' ends, some indels, some on a contig the reference lacks
    panel = pd.DataFrame({
        "patient_id": rng.choice(["A", "B"], n), "chrom": rng.choice(["c2", "c1", "c3"], n, p=[0.45, 0.45, 0.1]),
        "pos": np.concatenate([[1, 2, 1999, 2000], rng.integers(1, 2001, n - 4)]),
        "ref": rng.choice(["A", "AC", "ACGT"], n), "alt": "T", "context": "NNN", "weight": 1.0,
    })  # fmt: skip
    with pysam.FastaFile(str(tmp_path / "ref.fa")) as fasta:
        for patient in ("A", "B"):
            found = flank_positions(panel, patient, fasta, window)
            assert list(found.itertuples(index=False, name=None)) == reference_positions(
                panel, patient, sequences, window
            )
            assert found["pos"].dtype == np.int64 and len(found) > 50


@pytest.mark.parametrize("fetch_gap", [4096, 60, 0])
def test_flank_positions_of_loci_far_apart_are_those_of_the_plain_definition(
    tmp_path, monkeypatch, fetch_gap
):
    """Windows that never overlap (a genome-wide signature's) take a shortcut: the same positions, and the same
    bases however the reference is fetched (in stretches of nearby positions, down to one position each; soft-
    masked bases in lower case)."""
    monkeypatch.setattr(flanks, "FETCH_GAP", fetch_gap)
    rng = np.random.default_rng(9)
    sequence = "".join(rng.choice(list("ACGTacgt"), 5000))
    (tmp_path / "ref.fa").write_text(f">c1\n{sequence}\n")
    pysam.faidx(str(tmp_path / "ref.fa"))
    positions = rng.permutation(np.arange(100, 4900, 120))  # the panel's order is not the genome's
    panel = pd.DataFrame({"patient_id": "A", "chrom": "c1", "pos": positions, "ref": "A", "alt": "T",
                          "context": "NNN", "weight": 1.0})  # fmt: skip
    with pysam.FastaFile(str(tmp_path / "ref.fa")) as fasta:
        found = flank_positions(panel, "A", fasta, FlankWindow())
    assert list(found.itertuples(index=False, name=None)) == reference_positions(
        panel, "A", {"c1": sequence.upper()}, FlankWindow()
    )
    assert len(found) == len(positions) * 46


def test_flank_clusters_split_at_gaps_a_read_seldom_spans_and_carry_each_positions_reference():
    """Clusters break where positions lie more than FLANK_GAP apart, and into pieces of at most FLANK_CLUSTER;
    each position keeps its REF and trinucleotide, and reads as a `Locus` with a fixed ALT for the reference
    engine."""
    rng = np.random.default_rng(7)
    pos = np.sort(rng.choice(np.arange(1, 60_000), 900, replace=False))
    context = ["".join(rng.choice(list("ACGT"), 3)) for _ in pos]
    positions = pd.DataFrame({"chrom": "1", "pos": pos, "ref": [c[1] for c in context], "context": context})
    units = flank_loci(positions, {"1": "chr1"})
    loci = [
        Locus("chr1", int(p), c[1], "A" if c[1] != "A" else "C") for p, c in zip(pos, context, strict=True)
    ]
    runs = [[loci[0]]]
    for before, locus in itertools.pairwise(loci):
        if locus.pos - before.pos > FLANK_GAP:
            runs.append([])
        runs[-1].append(locus)
    expected = [run[at : at + FLANK_CLUSTER] for run in runs for at in range(0, len(run), FLANK_CLUSTER)]
    assert len(expected) < len(loci) and max(map(len, expected)) == FLANK_CLUSTER
    assert [list(cluster) for *_, cluster in units] == expected
    assert all(chrom == "1" and bam_chrom == "chr1" for chrom, bam_chrom, _ in units)
    assert np.concatenate([cluster.context for *_, cluster in units]).tolist() == context
    first = units[0][2]
    assert first[1:3].pos.tolist() == pos[1:3].tolist() and first[1:3].context.tolist() == context[1:3]
