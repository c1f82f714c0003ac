"""A genome-wide cohort panel's loci are counted a block at a time, and the count table can go to its file as
it is counted: the tables, the fragments and the QC are those of the loci counted all at once, byte for byte,
with and without flanks and worker processes, so that memory need not grow with the number of loci."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pysam
import pytest

from conftest import assert_same_counts, write_indexed_bam
from mrdtrack.counting import CountSettings, count_sample
from mrdtrack.counting import sample as counting
from mrdtrack.inputs.panel import compact_panel
from mrdtrack.tables import write_tsv

CONTIGS = {"chr1": 40_000, "chr2": 30_000}


def spread_sample(tmp_path) -> tuple[str, str, pd.DataFrame]:
    """A BAM, its reference and a two-patient panel of loci 1,200 bp apart (each a cluster of its own, as a
    genome-wide signature's), one locus of both patients, one site with two ALTs and one pair of loci close
    enough to share fragments."""
    rng = np.random.default_rng(7)
    sequences = {c: "".join(rng.choice(list("ACGT"), n)) for c, n in CONTIGS.items()}
    fasta = tmp_path / "ref.fa"
    fasta.write_text("".join(f">{c}\n{s}\n" for c, s in sequences.items()))
    pysam.faidx(str(fasta))
    rows = []
    for chrom, length in CONTIGS.items():
        for k, pos in enumerate(range(1000, length - 1000, 1200)):
            ref = sequences[chrom][pos - 1]
            rows.append((f"P{k % 2 + 1}", chrom, pos, ref, "T" if ref != "T" else "A"))
    rows += [
        ("P2", "chr1", 1000, rows[0][3], "G" if rows[0][3] != "G" else "C"),
        ("P2", "chr1", 3400, "", ""),
    ]
    rows += [("P1", "chr1", 3460, "", "")]  # 60 bp from a locus: their fragments are shared
    panel = pd.DataFrame(rows, columns=["patient_id", "chrom", "pos", "ref", "alt"])
    for i in panel.index[panel["ref"] == ""]:
        ref = sequences[panel.at[i, "chrom"]][panel.at[i, "pos"] - 1]
        panel.loc[i, ["ref", "alt"]] = [ref, "T" if ref != "T" else "A"]
    panel = panel.assign(context="NNN", weight=1.0).sort_values(["chrom", "pos", "patient_id"], kind="stable")
    header = pysam.AlignmentHeader.from_dict({"SQ": [{"SN": c, "LN": n} for c, n in CONTIGS.items()]})
    reads = []
    for tid, (chrom, pos) in enumerate(zip(panel["chrom"], panel["pos"], strict=True)):
        for copy in range(4):
            start = int(pos) - 1 - int(rng.integers(10, 90))
            read = pysam.AlignedSegment(header)
            read.query_name, read.flag = f"t{tid}_{copy}", 0x1 | 0x2 | 0x40 | 0x20
            read.reference_id, read.reference_start = list(CONTIGS).index(chrom), start
            read.mapping_quality, read.cigarstring = 60, "100M"
            bases = list(sequences[chrom][start : start + 100])
            if copy == 3:
                bases[int(pos) - 1 - start] = "T" if bases[int(pos) - 1 - start] != "T" else "A"
            read.query_sequence = "".join(bases)
            read.query_qualities = pysam.qualitystring_to_array("I" * 100)
            read.next_reference_id, read.next_reference_start, read.template_length = (
                read.reference_id,
                start,
                100,
            )
            read.set_tag("RX", "ACGT")
            reads.append(read)
    bam = write_indexed_bam(tmp_path / "s.bam", reads, header)
    return bam, str(fasta), panel.reset_index(drop=True)


@pytest.mark.parametrize("threads", [1, 2])
def test_counting_block_by_block_gives_the_tables_of_counting_at_once(tmp_path, monkeypatch, threads):
    bam, fasta, panel = spread_sample(tmp_path)
    settings = CountSettings(engine="compiled")
    whole = count_sample("s", bam, fasta, panel, settings, threads=threads, patient_id="P1")
    monkeypatch.setattr(counting, "BLOCK_LOCI", 5)
    assert len(counting._loci_blocks(counting.unique_loci(panel))) > 5
    blocks = count_sample("s", bam, fasta, panel, settings, threads=threads, patient_id="P1")
    assert_same_counts(blocks, whole)
    pd.testing.assert_frame_equal(blocks.flanks, whole.flanks)
    assert whole.counts["alt_molecules"].sum() > 0 and len(whole.fragments) > 0 and len(whole.flanks) > 0
    written = count_sample(
        "s", bam, fasta, panel, settings, threads=threads, patient_id="P1", counts_path=tmp_path / "c.tsv"
    )
    write_tsv(whole.counts, tmp_path / "whole.tsv")
    assert written.counts is None
    assert (tmp_path / "c.tsv").read_bytes() == (tmp_path / "whole.tsv").read_bytes()
    assert written.qc == whole.qc


def test_blocks_end_between_clusters_and_an_unsorted_panel_is_one_block(monkeypatch):
    monkeypatch.setattr(counting, "BLOCK_LOCI", 3)
    # chr1: clusters of 3, 2, 1 and 2 loci; chr2: two of 1
    positions = [100, 200, 300, 2000, 2100, 5000, 9000, 9500, 9900, 20_000]
    loci = pd.DataFrame({"chrom": ["chr1"] * 8 + ["chr2"] * 2, "pos": positions})
    assert counting._loci_blocks(loci) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert counting._loci_blocks(loci.iloc[::-1]) == [(0, 10)]
    assert counting._loci_blocks(loci.iloc[:3]) == [(0, 3)]


@pytest.mark.parametrize("engine", ["compiled", "pysam"])
def test_a_panel_held_as_categories_counts_as_the_panel_held_as_text(tmp_path, engine):
    """The counting job holds the cohort panel with its text columns as categories (`compact_panel`)."""
    bam, fasta, panel = spread_sample(tmp_path)
    settings = CountSettings(engine=engine)
    plain = count_sample("s", bam, fasta, panel, settings, patient_id="P1")
    compact = count_sample("s", bam, fasta, compact_panel(panel), settings, patient_id="P1")
    assert compact_panel(panel)["chrom"].dtype == "category"
    assert_same_counts(compact, plain)
    pd.testing.assert_frame_equal(compact.flanks, plain.flanks)
