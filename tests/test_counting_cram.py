"""Counting a real cell-free DNA CRAM (FinaleToolkit's DELFI test data, hg19 chr1:1-6 Mb, duplicates flagged by
samblaster): reads decode, REF molecules have the cfDNA fragment-length mode (~167 bp), and duplicate flags are
honoured.

Two facts about the files in ../shared/real_data/finaletoolkit_delfi that these tests rely on:
- the CRAM header declares the full chr1 (249 Mb) while the FASTA holds 10 Mb: htslib warns and decodes fine (the
  CRAM stores its bases itself: it even decodes with no reference at all);
- the FASTA lacks chr1's first base (9,999,999 bp): its position x holds hg19's x + 1. REF is therefore read at
  `pos - OFFSET`; without that shift a third of the loci look like SNVs (the 'REF' share test below catches it).
"""

from __future__ import annotations

import pandas as pd
import pysam
import pytest

from mrdtrack.counting import CountSettings, count_sample
from mrdtrack.counting.molecules import resolve_dedup_mode

# A real 6 Mb CRAM, read through pysam: minutes, not seconds.
pytestmark = pytest.mark.slow

CRAM = "hg19.chr1.6Mb.cram"
FASTA = "hg19.chr1.10Mb.fa.gz"
SPACING = 5000  # one locus every 5 kb over chr1:1-6 Mb (~2x depth: ~1.5 molecules each)
MOLECULE_COLUMNS = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]
DUPLICATE_STEP = (
    10  # a locus in every 10th duplicate-flagged read (all of them: slow, CRAM fetches are costly)
)
DROPPED = 0x4 | 0x100 | 0x200 | 0x800


@pytest.fixture(scope="module")
def delfi(finaletoolkit):
    """Paths, and a panel of pseudo-SNVs: every 5 kb where hg19 has an unmasked base, plus a base inside every
    duplicate-flagged read (so that `flag` and `none` must differ there)."""
    cram, fasta = str(finaletoolkit / CRAM), str(finaletoolkit / FASTA)
    with pysam.FastaFile(fasta) as reference:
        offset = 10_000_000 - reference.get_reference_length("chr1")  # 1 with the file as shipped
        sequence = reference.fetch("chr1", 0, 6_000_000)
    positions = set(range(1_000_001, 6_000_000, SPACING))
    with pysam.AlignmentFile(cram, reference_filename=fasta) as alignments:
        duplicates = [
            read.reference_start + 31  # 1-based: the read's 31st aligned base (when it has no clip)
            for read in alignments.fetch("chr1", 1_000_000, 6_000_000)
            if read.is_duplicate and not read.flag & DROPPED and read.mapping_quality >= 20
        ]
    positions.update(duplicates[::DUPLICATE_STEP])
    loci = []
    for pos in sorted(positions):
        ref = sequence[pos - 1 - offset]
        if ref in "ACGT":  # upper case: not soft-masked repeat, not N
            loci.append((pos, ref, "C" if ref == "A" else "A"))
    panel = pd.DataFrame(loci, columns=["pos", "ref", "alt"]).assign(
        patient_id="P1", chrom="chr1", context="NNN", weight=1.0
    )
    return cram, fasta, panel


@pytest.fixture(scope="module")
def counted(delfi):
    cram, fasta, panel = delfi
    return {
        mode: count_sample("delfi", cram, fasta, panel, CountSettings(dedup=mode))
        for mode in ("flag", "none")  # `auto` is counted on a part of the panel (it must pick `flag`)
    }


def templates_at(cram: str, fasta: str, panel: pd.DataFrame) -> tuple[list[int], list[int]]:
    """Per locus, read pairs with a passing read whose base there passes the base-quality floor, without and with
    duplicate-flagged reads (pysam only, independent of mrdtrack)."""
    unique, every = [], []
    with pysam.AlignmentFile(cram, reference_filename=fasta) as alignments:
        for pos in panel["pos"]:
            names: dict[str, bool] = {}  # name -> any of its reads counted is not a flagged duplicate
            for read in alignments.fetch("chr1", pos - 1, pos):
                if read.flag & DROPPED or read.mapping_quality < 20:
                    continue
                for query, reference in read.get_aligned_pairs(matches_only=True):
                    if reference == pos - 1 and read.query_qualities[query] >= 20:
                        names[read.query_name] = names.get(read.query_name, False) or not read.is_duplicate
            unique.append(sum(names.values()))
            every.append(len(names))
    return unique, every


def test_reads_decode_and_match_the_reference(delfi, counted):
    _cram, _fasta, panel = delfi
    assert len(panel) > 600
    result = counted["flag"]
    assert result.qc["reads_seen"] > 1000
    totals = result.counts[MOLECULE_COLUMNS].sum()
    assert totals.sum() > 800
    # real cfDNA at hg19 sites: nearly every molecule carries REF (errors, SNPs and mate conflicts are rare)
    assert totals["ref_molecules"] >= 0.95 * totals.sum(), totals.to_dict()


def test_ref_fragment_lengths_peak_at_the_nucleosome_mode(counted):
    histogram = counted["flag"].fragment_lengths
    ref = histogram[histogram.allele == "ref"].set_index("length")["molecules"]
    ref = ref.reindex(range(ref.index.min(), ref.index.max() + 1), fill_value=0)
    assert ref.sum() > 800
    smoothed_mode = ref.rolling(5, center=True).mean().idxmax()  # 1-bp counts are noisy at ~1,000 molecules
    assert 160 <= smoothed_mode <= 175, smoothed_mode
    assert 160 <= counted["flag"].qc["median_fragment_length"] <= 180


def test_auto_picks_flag_for_a_duplicate_marked_file_without_umis(delfi, counted):
    cram, fasta, panel = delfi
    with pysam.AlignmentFile(cram, reference_filename=fasta) as alignments:
        assert resolve_dedup_mode(alignments, CountSettings()) == "flag"
    subset = panel.iloc[:100]  # the whole panel again would only cost time: CRAM fetches are slow
    auto = count_sample("delfi", cram, fasta, subset, CountSettings())
    assert auto.qc["dedup_mode"] == "flag"
    pd.testing.assert_frame_equal(auto.counts, counted["flag"].counts.iloc[:100])
    assert counted["none"].qc["dedup_mode"] == "none"


def test_duplicate_flags_are_honoured(delfi, counted):
    cram, fasta, panel = delfi
    flag, none = counted["flag"], counted["none"]
    assert flag.qc["filtered_duplicate_flag"] > 0
    assert none.qc["filtered_duplicate_flag"] == 0
    flag_molecules = flag.counts[MOLECULE_COLUMNS].sum(axis=1)
    none_molecules = none.counts[MOLECULE_COLUMNS].sum(axis=1)
    assert (flag_molecules <= none_molecules).all()
    assert none_molecules.sum() - flag_molecules.sum() >= 50  # the loci placed inside duplicate reads
    unique, every = templates_at(cram, fasta, panel)
    assert flag_molecules.tolist() == unique
    assert none_molecules.tolist() == every
