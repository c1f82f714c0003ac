"""Property tests: molecule counts do not depend on record order, on extra PCR copies of a family, or on which
mate is called read 1.

Each example is a small paired-end BAM written here with pysam (records in a chosen order among equal positions,
then indexed), counted at three loci (two in one fetch cluster, one alone)."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pysam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import toy_panel, write_indexed_bam
from mrdtrack.counting import CountSettings, count_sample

CONTIG_LENGTH = 5000
READ_LENGTH = 60
LOCI = [1000, 1030, 3000]  # 1-based; REF A, ALT T
MOLECULE_COLUMNS = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]
ORIENTATION_COLUMNS = ["alt_f1r2", "alt_f2r1", "ref_f1r2", "ref_f2r1"]
UMIS = ["AAAAAA", "CCCCCC", "GGGGGG", "TTTTTT"]  # pairwise >= 6 mismatches: never clustered together
PANEL = toy_panel(LOCI)
EXAMPLES = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass(frozen=True)
class Copy:
    """One read pair of a family: the base each mate shows at every locus it covers."""

    base1: str
    base2: str
    duplicate_flag: bool = False


@dataclass(frozen=True)
class Family:
    """PCR copies of one strand of a molecule: same fragment start, length, orientation and UMI."""

    start: int  # 0-based leftmost position of the fragment
    length: int
    umi: str
    read1_reverse: bool
    copies: tuple[Copy, ...]


@st.composite
def families(draw, unique_coordinates: bool = False, clean_majority: bool = False) -> list[Family]:
    """Fragments over the loci; with clean_majority every family's copies agree (mates too) with its true base on
    >= 60% of its copies, so the family's consensus is that base."""
    n = draw(st.integers(1, 12))
    out, used = [], set()
    for _ in range(n):
        anchor = draw(st.sampled_from([LOCI[0], LOCI[2]]))
        length = draw(st.integers(READ_LENGTH, 2 * READ_LENGTH + 40))
        start = anchor - 1 - draw(st.integers(0, length - 1))
        read1_reverse = draw(st.booleans())
        if unique_coordinates and (start, length) in used:
            continue
        used.add((start, length))
        umi = draw(st.sampled_from(UMIS if clean_majority else [*UMIS, "AAAAAT", "CCCCCA"]))
        true_base = draw(st.sampled_from("ACGT"))
        n_copies = draw(st.integers(1, 4))
        copies = []
        for i in range(n_copies):
            if clean_majority:  # one wrong copy at most, and only when the others still make >= 60%
                wrong = i == n_copies - 1 and n_copies >= 3 and draw(st.booleans())
                base = draw(st.sampled_from("ACGT".replace(true_base, ""))) if wrong else true_base
                copies.append(Copy(base, base))
            else:
                base1 = draw(st.sampled_from("ACGT"))
                base2 = draw(st.sampled_from(["", base1, *"ACGT"]))
                copies.append(Copy(base1, base2 or base1, draw(st.booleans()) and i > 0))
        out.append(Family(start, length, umi, read1_reverse, tuple(copies)))
    return out


def _reads(families: list[Family], header: pysam.AlignmentHeader) -> list[pysam.AlignedSegment]:
    reads = []
    for f_index, family in enumerate(families):
        for c_index, copy in enumerate(family.copies):
            name = f"f{f_index}c{c_index}"
            for first in (True, False):
                reads.append(_read(family, copy, name, first, header))
    return reads


def _read(family: Family, copy: Copy, name: str, first: bool, header) -> pysam.AlignedSegment:
    reverse = family.read1_reverse if first else not family.read1_reverse
    left = family.start
    right = family.start + family.length - READ_LENGTH
    start, mate_start = (right, left) if reverse else (left, right)
    sequence = ["C"] * READ_LENGTH
    for locus in LOCI:
        offset = locus - 1 - start
        if 0 <= offset < READ_LENGTH:
            sequence[offset] = copy.base1 if first else copy.base2
    read = pysam.AlignedSegment(header)
    read.query_name = name
    read.query_sequence = "".join(sequence)
    read.flag = (
        0x1 | 0x2 | (0x40 if first else 0x80) | (0x10 if reverse else 0) | (0 if reverse else 0x20)
        | (0x400 if copy.duplicate_flag else 0)
    )  # fmt: skip
    read.reference_id = read.next_reference_id = 0
    read.reference_start, read.next_reference_start = start, mate_start
    read.mapping_quality = 60
    read.cigarstring = f"{READ_LENGTH}M"
    read.template_length = family.length if start <= mate_start else -family.length
    read.query_qualities = pysam.qualitystring_to_array("I" * READ_LENGTH)
    read.set_tag("RX", family.umi)
    return read


def write_bam(path: Path, reads: list[pysam.AlignedSegment], header, order_seed: int) -> str:
    """Records shuffled by `order_seed`, then stably sorted by position: the seed only changes the order of
    records that share a position."""
    reads = list(reads)
    random.Random(order_seed).shuffle(reads)
    return write_indexed_bam(path, reads, header)


HEADER = pysam.AlignmentHeader.from_dict(
    {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": CONTIG_LENGTH}]}
)


def count(folder: Path, name: str, fams: list[Family], order_seed: int = 0, **options) -> tuple:
    header = HEADER
    bam = write_bam(folder / f"{name}.bam", _reads(fams, header), header, order_seed)
    result = count_sample(name, bam, "", PANEL, CountSettings(**options))
    counts = result.counts.set_index("pos")
    return (
        counts[MOLECULE_COLUMNS],
        counts[ORIENTATION_COLUMNS],
        counts["alt_lengths"],
        result.fragment_lengths,
    )


MODES = [{"dedup": "umi"}, {"dedup": "coordinates"}, {"dedup": "flag"}, {"dedup": "none"},
         {"dedup": "none", "merge_mates": False}]  # fmt: skip


@EXAMPLES
@given(fams=families(), seeds=st.tuples(st.integers(0, 2**16), st.integers(0, 2**16)))
def test_record_order_never_changes_counts(tmp_path, fams, seeds):
    for options in MODES:
        first = count(tmp_path, "a", fams, seeds[0], **options)
        second = count(tmp_path, "b", fams, seeds[1], **options)
        for x, y in zip(first, second, strict=True):
            pd.testing.assert_frame_equal(pd.DataFrame(x), pd.DataFrame(y), obj=str(options))


@EXAMPLES
@given(fams=families(unique_coordinates=True, clean_majority=True), data=st.data())
def test_more_pcr_copies_of_a_family_never_change_counts(tmp_path, fams, data):
    """A copy whose bases equal the family's consensus (its true base) adds reads, never molecules."""
    grown = []
    for family in fams:
        consensus = max("ACGT", key=[c.base1 for c in family.copies].count)
        extra = data.draw(st.integers(0, 3))
        grown.append(replace(family, copies=family.copies + (Copy(consensus, consensus),) * extra))
    for options in [{"dedup": "umi"}, {"dedup": "coordinates"}]:
        before = count(tmp_path, "a", fams, **options)
        after = count(tmp_path, "b", grown, data.draw(st.integers(0, 2**16)), **options)
        for x, y in zip(before, after, strict=True):
            pd.testing.assert_frame_equal(pd.DataFrame(x), pd.DataFrame(y), obj=str(options))


def _swap_mates(family: Family) -> Family:
    """The same fragment with read 1 and read 2 exchanged: read 1 now has the other strand and the other bases."""
    copies = tuple(replace(c, base1=c.base2, base2=c.base1) for c in family.copies)
    return replace(family, read1_reverse=not family.read1_reverse, copies=copies)


@EXAMPLES
@given(fams=families(), data=st.data())
def test_swapping_read1_and_read2_never_changes_counts(tmp_path, fams, data):
    swap = [data.draw(st.booleans()) for _ in fams]
    some = [_swap_mates(f) if s else f for f, s in zip(fams, swap, strict=True)]
    every = [_swap_mates(f) for f in fams]
    for options in MODES:
        molecules, orientation, lengths, histogram = count(tmp_path, "a", fams, **options)
        for swapped, name in ((some, "some"), (every, "every")):
            other = count(tmp_path, name, swapped, **options)
            pd.testing.assert_frame_equal(molecules, other[0], obj=str(options))
            pd.testing.assert_series_equal(lengths, other[2])
            pd.testing.assert_frame_equal(histogram, other[3])
            for allele in ("ref", "alt"):
                pair = [f"{allele}_f1r2", f"{allele}_f2r1"]
                pd.testing.assert_series_equal(orientation[pair].sum(axis=1), other[1][pair].sum(axis=1))
        # every pair swapped: the F1R2 molecules become F2R1 and back
        swapped = count(tmp_path, "every", every, **options)[1]
        expected = orientation.rename(columns=lambda c: c.replace("f1r2", "x").replace("f2r1", "f1r2"))
        expected = expected.rename(columns=lambda c: c.replace("x", "f2r1"))[ORIENTATION_COLUMNS]
        pd.testing.assert_frame_equal(swapped, expected, obj=str(options))


DUPLEX = {"dedup": "umi", "umi_duplex": True}


@EXAMPLES
@given(fams=families(), partners=st.lists(st.integers(0, 11), max_size=8), seed=st.integers(0, 2**16))
def test_duplex_strands_play_symmetric_roles_and_never_call_what_pooling_would_not(
    tmp_path, fams, partners, seed
):
    """Raw duplex families are called strand by strand (read 1 forward is one strand, reverse the other), so
    exchanging read 1 and read 2 of every read pair (each strand becomes the other) and shuffling records change
    no molecule count. And a base both strands call has the majority of the pooled reads too: the duplex never
    counts a REF or ALT molecule that pooling both strands' reads would not, however single-strand molecules and
    small families are treated. Other strands are added by giving some families a partner: the same fragment
    and UMI read the other way, with another family's bases (agreeing or not)."""
    other_strands = [
        replace(_swap_mates(fams[i % len(fams)]), copies=fams[(i + 1) % len(fams)].copies) for i in partners
    ]
    fams = fams + other_strands
    pooled = count(tmp_path, "p", fams, dedup="umi")[0]
    for options in (DUPLEX, DUPLEX | {"duplex_single_strand": "keep"}, DUPLEX | {"min_family_size": 2}):
        molecules, orientation, lengths, histogram = count(tmp_path, "a", fams, **options)
        swapped = count(tmp_path, "s", [_swap_mates(f) for f in fams], seed, **options)
        pd.testing.assert_frame_equal(molecules, swapped[0], obj=str(options))
        pd.testing.assert_frame_equal(histogram, swapped[3], obj=str(options))
        for allele in ("ref", "alt"):
            pair = [f"{allele}_f1r2", f"{allele}_f2r1"]
            pd.testing.assert_series_equal(orientation[pair].sum(axis=1), swapped[1][pair].sum(axis=1))
            assert (molecules[f"{allele}_molecules"] <= pooled[f"{allele}_molecules"]).all(), options


def test_both_strands_of_one_fragment_are_one_molecule(tmp_path):
    """F1R2 and F2R1 read pairs with the same coordinates (and UMI) are the two strands of one fragment: one
    molecule, as Picard and fgbio group them. Its orientation is that of most of its read pairs, and on a tie
    that of the read pair with the smallest name."""
    top = Family(start=999, length=60, umi="AAAAAA", read1_reverse=False, copies=(Copy("A", "A"),))
    bottom = _swap_mates(top)
    cases = (([top, bottom], 1), ([bottom, top], 0), ([top, bottom, bottom], 0))  # names follow list order
    for options in [{"dedup": "umi"}, {"dedup": "coordinates"}, {"dedup": "umi", "engine": "compiled"}]:
        for (fams, f1r2), order_seed in itertools.product(cases, range(3)):
            molecules, orientation, _, _ = count(tmp_path, "a", fams, order_seed, **options)
            assert molecules.loc[1000].tolist() == [1, 0, 0, 0], options
            got = orientation.loc[1000, ["ref_f1r2", "ref_f2r1"]].tolist()
            assert got == [f1r2, 1 - f1r2], (options, fams, order_seed)


def test_duplex_umis_make_both_strands_one_molecule_only_when_declared(tmp_path):
    """A duplex UMI reads "A-B" on one strand's read pairs and "B-A" on the other's (fgbio's paired UMIs). With
    `umi_duplex` the two strands are one molecule, also when an error in one copy's UMI flips which reading is
    canonical; without it they are two molecules, as in any UMI scheme where "A-B" and "B-A" are different."""
    top = Family(start=999, length=60, umi="ACCC-GTTT", read1_reverse=False, copies=(Copy("A", "A"),) * 2)
    bottom = replace(_swap_mates(top), umi="GTTT-ACCC")
    flipped = replace(bottom, umi="GTTT-TCCC", copies=(Copy("A", "A"),))  # error: T for A
    for engine, order_seed in itertools.product(["pysam", "compiled"], range(3)):
        for fams in ([top, bottom], [top, bottom, flipped]):
            duplex = count(tmp_path, "d", fams, order_seed, dedup="umi", umi_duplex=True, engine=engine)[0]
            assert duplex.loc[1000].tolist() == [1, 0, 0, 0], (engine, fams)
            plain = count(tmp_path, "p", fams, order_seed, dedup="umi", engine=engine)[0]
            assert plain.loc[1000, "ref_molecules"] == 2, (engine, fams)


def test_duplex_umis_count_both_strands_reads_toward_one_family_seed(tmp_path):
    """Seeds are ranked by reads per UMI as both strands read it: AC-GT has two reads (one per strand), so it is the
    seed, and AA-GT and GA-AC (AC-GA from the other strand) are one error from it: one molecule. Ranked per
    strand's reading instead, AA-GT would seed a second family."""
    top = Family(start=999, length=60, umi="AC-GT", read1_reverse=False, copies=(Copy("A", "A"),))
    bottom = _swap_mates(top)
    fams = [top, replace(top, umi="AA-GT"), replace(bottom, umi="GT-AC"), replace(bottom, umi="GA-AC")]
    for engine in ("pysam", "compiled"):
        molecules = count(tmp_path, "s", fams, dedup="umi", umi_duplex=True, engine=engine)[0]
        assert molecules.loc[1000, "ref_molecules"] == 1, engine
