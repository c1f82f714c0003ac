"""Counting molecules, not reads: mates, duplicate families, UMIs, consensus and read filters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pysam
import pytest

from conftest import toy_panel, write_indexed_bam
from mrdtrack.counting import CountSettings, PanelLocusError, count_sample
from mrdtrack.counting.molecules import (
    DISCORDANT,
    INDEL_ALT,
    INDEL_OTHER,
    INDEL_REF,
    canonical_duplex_umi,
    cluster_umis,
    duplex_consensus,
    family_consensus,
    indel_call,
    query_position,
)

CONTIG_LENGTH = 2000
LOCUS = 1000  # 1-based; REF A, ALT T in the toy panel


@dataclass
class Pair:
    """One read pair (a fragment) in a toy BAM: both mates cover LOCUS unless told otherwise."""

    name: str
    start: int = 950  # 0-based leftmost position of the fragment
    length: int = 120
    base1: str = "A"  # read 1's base at LOCUS (None: read 1 does not cover it)
    base2: str | None = "A"
    umi: str | None = "AAAAAAAA"
    flag_extra: int = 0
    mapq: int = 60
    qual: int = 37
    read1_reverse: bool = False


def _read(pair: Pair, header: pysam.AlignmentHeader, first: bool) -> pysam.AlignedSegment:
    read_length = 80
    reverse = pair.read1_reverse if first else not pair.read1_reverse
    start = pair.start if not reverse else pair.start + pair.length - read_length
    mate_start = pair.start + pair.length - read_length if not reverse else pair.start
    base = pair.base1 if first else pair.base2
    sequence = ["C"] * read_length
    offset = LOCUS - 1 - start
    if base is not None and 0 <= offset < read_length:
        sequence[offset] = base
    read = pysam.AlignedSegment(header)
    read.query_name = pair.name
    read.query_sequence = "".join(sequence)
    read.flag = 0x1 | 0x2 | (0x40 if first else 0x80) | (0x10 if reverse else 0x20) | pair.flag_extra
    read.reference_id = 0
    read.reference_start = start
    read.mapping_quality = pair.mapq
    read.cigarstring = f"{read_length}M"
    read.next_reference_id = 0
    read.next_reference_start = mate_start
    read.template_length = pair.length if start <= mate_start else -pair.length
    read.query_qualities = pysam.qualitystring_to_array(chr(pair.qual + 33) * read_length)
    if pair.umi:
        read.set_tag("RX", pair.umi)
    return read


def write_bam(path: Path, pairs: list[Pair]) -> str:
    header = pysam.AlignmentHeader.from_dict(
        {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": CONTIG_LENGTH}]}
    )
    reads = [_read(p, header, first) for p in pairs for first in (True, False)]
    reads.sort(key=lambda r: r.reference_start)
    unsorted = str(path) + ".unsorted.bam"
    with pysam.AlignmentFile(unsorted, "wb", header=header) as out:
        for read in reads:
            out.write(read)
    pysam.sort("-o", str(path), unsorted)
    pysam.index(str(path))
    return str(path)


PANEL = toy_panel([LOCUS], context="CAC")


def counts_for(tmp_path: Path, pairs: list[Pair], **settings) -> pd.Series:
    bam = write_bam(tmp_path / "toy.bam", pairs)
    result = count_sample("toy", bam, "", PANEL, CountSettings(**settings))
    return result.counts.iloc[0]


def test_overlapping_mates_are_one_molecule(tmp_path):
    counts = counts_for(tmp_path, [Pair("a"), Pair("b", start=930, umi="CCCCCCCC")])
    assert counts.ref_molecules == 2
    assert counts.reads == 4


def test_mates_that_disagree_give_no_call(tmp_path):
    counts = counts_for(tmp_path, [Pair("a", base1="A", base2="T")])
    assert (counts.ref_molecules, counts.alt_molecules, counts.discordant_molecules) == (0, 0, 1)


def test_pcr_duplicates_collapse_to_one_molecule_with_consensus(tmp_path):
    family = [Pair(f"d{i}", base1="T", base2="T") for i in range(3)] + [Pair("d3", base1="A", base2="A")]
    counts = counts_for(tmp_path, family)
    assert (counts.alt_molecules, counts.ref_molecules) == (1, 0)
    assert counts.mean_family_size == 4


def test_family_without_consensus_is_discordant(tmp_path):
    family = [Pair("x", base1="T", base2="T"), Pair("y", base1="A", base2="A")]
    counts = counts_for(tmp_path, family)
    assert counts.discordant_molecules == 1
    assert counts.alt_molecules == counts.ref_molecules == 0


def test_umi_one_mismatch_joins_family_but_distinct_umis_do_not(tmp_path):
    pairs = [
        Pair("a", umi="AAAAAAAA"),
        Pair("b", umi="AAAAAAAA"),
        Pair("c", umi="AAAAAAAT"),  # sequencing error in the UMI: same molecule
        Pair("d", umi="GGGGCCCC", base1="T", base2="T"),  # another molecule at the same coordinates
    ]
    counts = counts_for(tmp_path, pairs)
    assert (counts.ref_molecules, counts.alt_molecules) == (1, 1)
    coordinates_only = counts_for(tmp_path, pairs, dedup="coordinates")
    assert coordinates_only.discordant_molecules + coordinates_only.ref_molecules == 1


@pytest.mark.parametrize(
    "artifact",
    [
        {"flag_extra": 0x100},  # secondary
        {"flag_extra": 0x800},  # supplementary
        {"flag_extra": 0x200},  # QC fail
        {"mapq": 0},
        {"qual": 10},
    ],
)
def test_filtered_reads_and_bases_never_count(tmp_path, artifact):
    counts = counts_for(
        tmp_path, [Pair("good"), Pair("bad", start=930, umi="TTTTGGGG", base1="T", base2="T", **artifact)]
    )
    assert counts.alt_molecules == 0
    assert counts.ref_molecules == 1


def test_flag_mode_drops_marked_duplicates(tmp_path):
    pairs = [Pair("a", umi=None), Pair("b", umi=None, flag_extra=0x400)]
    assert counts_for(tmp_path, pairs).ref_molecules == 1
    assert counts_for(tmp_path, pairs, dedup="none").ref_molecules == 2


def test_orientation_split(tmp_path):
    pairs = [
        Pair("f", base1="T", base2="T"),
        Pair("r", base1="T", base2="T", umi="CCCCAAAA", read1_reverse=True),
    ]
    counts = counts_for(tmp_path, pairs)
    assert (counts.alt_f1r2, counts.alt_f2r1) == (1, 1)
    assert counts.alt_lengths == "120,120"


def test_query_position_walks_the_cigar():
    header = pysam.AlignmentHeader.from_dict({"SQ": [{"SN": "chr1", "LN": 1000}]})
    read = pysam.AlignedSegment(header)
    read.reference_start = 100
    read.cigarstring = "5S10M2D10M3I10M"
    read.query_sequence = "A" * 38
    assert query_position(read, 99) is None  # before the alignment (soft clip)
    assert query_position(read, 100) == 5
    assert query_position(read, 110) is None  # deleted
    assert query_position(read, 112) == 15
    assert query_position(read, 122) == 28  # after the insertion
    assert query_position(read, 132) is None


def test_family_consensus_rules():
    assert family_consensus(["T", "T", "A"], 0.6) == "T"
    assert family_consensus(["T", "A"], 0.6) == DISCORDANT
    assert family_consensus([DISCORDANT, "A"], 0.6) == "A"
    assert family_consensus([DISCORDANT], 0.6) == DISCORDANT
    assert family_consensus([], 0.6) is None


def test_duplex_consensus_needs_both_strands_to_call_one_base():
    """Each strand's consensus first (its own PCR copies), then the duplex: (call, strands calling the locus)."""
    assert duplex_consensus(["T"], ["T", "T"], 0.6) == ("T", 2)
    assert duplex_consensus(["T", "T", "T"], ["A"], 0.6) == (DISCORDANT, 2)  # pooled, T would have 3 of 4
    assert duplex_consensus(["T", "T", "A"], ["T"], 0.6) == ("T", 2)  # a PCR error outvoted within its strand
    assert duplex_consensus(["T", "A"], ["T"], 0.6) == (DISCORDANT, 2)  # a strand without a consensus
    assert duplex_consensus(["T", "T"], [], 0.6) == ("T", 1)  # the other strand has no base here
    assert duplex_consensus([], ["A"], 0.6) == ("A", 1)
    assert duplex_consensus([], [], 0.6) == (None, 0)


def test_umi_clusters_seed_on_the_most_common():
    clusters = cluster_umis(Counter({"AAAA": 5, "AAAT": 1, "TTTT": 2, "TTTA": 2}), 1)
    assert clusters == {"AAAA": "AAAA", "AAAT": "AAAA", "TTTA": "TTTA", "TTTT": "TTTA"}


def test_a_duplex_umi_reads_the_same_from_either_strand():
    assert canonical_duplex_umi("TTAC-GGCA") == canonical_duplex_umi("GGCA-TTAC") == "GGCA-TTAC"
    assert canonical_duplex_umi("TTACGGCA") == "TTACGGCA"  # not duplex: kept
    assert canonical_duplex_umi("A-B-C") == "A-B-C"


def test_duplex_clusters_reach_across_strands_when_an_error_flips_the_canonical_reading():
    # The A strand reads ACCC-GTTT (canonical as is); one B-strand copy reads GTTT-TCCC with an error in its
    # second half, so its canonical reading is itself, one mismatch from the seed with its halves swapped.
    umis = Counter({"ACCC-GTTT": 3, "GTTT-TCCC": 1})
    assert cluster_umis(umis, 1, duplex=True) == {"ACCC-GTTT": "ACCC-GTTT", "GTTT-TCCC": "ACCC-GTTT"}
    assert cluster_umis(umis, 1) == {"ACCC-GTTT": "ACCC-GTTT", "GTTT-TCCC": "GTTT-TCCC"}


def test_worker_processes_give_byte_identical_results():
    """threads > 1 splits the loci clusters over processes: same table, histogram and QC as one thread."""
    from conftest import TEST_DATA
    from mrdtrack.inputs import PanelSettings, build_panel, load_samples, load_table

    reference = str(TEST_DATA / "reference" / "genome.fa.gz")
    samples, _ = load_samples([str(p) for p in sorted(TEST_DATA.glob("batch*/samples.tsv"))])
    patients, _ = load_table(str(TEST_DATA / "patients.tsv"), "patients")
    panel = build_panel(patients, reference, PanelSettings())
    bam = samples["bam"].iloc[0]
    one = count_sample("s", bam, reference, panel, CountSettings())
    assert panel[["chrom", "pos"]].drop_duplicates().shape[0] > 8  # several clusters: the work is split
    for threads in (2, 3):
        many = count_sample("s", bam, reference, panel, CountSettings(), threads=threads)
        assert many.counts.to_csv(sep="\t") == one.counts.to_csv(sep="\t")
        assert many.fragment_lengths.to_csv(sep="\t") == one.fragment_lengths.to_csv(sep="\t")
        assert many.qc == one.qc


# --- indel loci -------------------------------------------------------------------------------------------------

INDEL_ANCHOR0 = 99  # 0-based anchor of the indel loci below: pos 100


@pytest.mark.parametrize(
    ("cigar", "deleted", "inserted", "sequence", "call"),
    [
        ([(0, 10), (2, 2), (0, 20)], 2, "", "A" * 30, INDEL_ALT),  # the deletion, right after the anchor
        ([(0, 10), (2, 3), (0, 20)], 2, "", "A" * 30, INDEL_OTHER),  # a longer one
        ([(0, 11), (2, 2), (0, 20)], 2, "", "A" * 31, INDEL_OTHER),  # one starting inside the deleted bases
        ([(0, 11), (1, 1), (0, 5)], 2, "", "A" * 17, INDEL_OTHER),  # an insertion inside them
        ([(0, 12), (1, 1), (0, 5)], 2, "", "A" * 18, INDEL_REF),  # ... after them: not at this locus
        ([(0, 10), (2, 2), (1, 1), (0, 5)], 2, "", "A" * 16, INDEL_OTHER),  # the deletion, then an insertion
        ([(0, 32)], 2, "", "A" * 32, INDEL_REF),
        ([(0, 12)], 2, "", "A" * 12, INDEL_REF),  # covers the anchor and both deleted bases
        ([(0, 11)], 2, "", "A" * 11, None),  # ends inside the deleted bases: cannot tell
        ([(0, 10), (2, 2), (4, 5)], 2, "", "A" * 15, None),  # the deletion, then a clip
        ([(0, 10), (4, 20)], 2, "", "A" * 30, None),  # clipped after the anchor
        ([(0, 9), (2, 3), (0, 20)], 2, "", "A" * 29, None),  # the anchor itself deleted
        ([(4, 3), (0, 10), (2, 2), (0, 5)], 2, "", "A" * 18, INDEL_ALT),  # a clip before: fine
        ([(0, 10), (1, 2), (0, 20)], 0, "TT", "A" * 10 + "TT" + "A" * 20, INDEL_ALT),
        ([(0, 10), (1, 2), (0, 20)], 0, "TT", "A" * 10 + "TC" + "A" * 20, INDEL_OTHER),  # other bases
        ([(0, 10), (1, 1), (0, 20)], 0, "TT", "A" * 31, INDEL_OTHER),  # other length
        ([(0, 10), (2, 1), (0, 20)], 0, "TT", "A" * 30, INDEL_OTHER),  # a deletion at an insertion locus
        ([(0, 11)], 0, "TT", "A" * 11, INDEL_REF),  # the anchor and the base after it
        ([(0, 10)], 0, "TT", "A" * 10, None),  # ends at the anchor: an insertion could follow unseen
        ([(0, 10), (1, 2), (4, 20)], 0, "TT", "A" * 10 + "TT" + "A" * 20, None),  # inserted, then clipped
    ],
)
def test_indel_calls_follow_the_cigar(cigar, deleted, inserted, sequence, call):
    assert indel_call(cigar, 90, INDEL_ANCHOR0, deleted, inserted, sequence)[0] == call


def indel_pairs_bam(path: Path, reads: list[tuple[str, str, str]]) -> str:
    """Read pairs (name, read 1's CIGAR, read 1's qualities as one character per base), read 1 from 950 over
    sequence `A...` with `TT` inserted where the CIGAR says; read 2 far from the locus."""
    header = pysam.AlignmentHeader.from_dict(
        {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": CONTIG_LENGTH}]}
    )
    records = []
    for name, cigar, qualities in reads:
        for first in (True, False):
            read = pysam.AlignedSegment(header)
            read.query_name = name
            read.flag = 0x1 | 0x2 | (0x40 | 0x20 if first else 0x80 | 0x10)
            read.reference_id = read.next_reference_id = 0
            read.reference_start, read.next_reference_start = (950, 1100) if first else (1100, 950)
            read.mapping_quality = 60
            read.cigarstring = cigar if first else "50M"
            length = read.infer_query_length() if first else 50
            read.query_sequence = ("A" * 50 + "TT" + "A" * 50)[:length] if "I" in cigar else "A" * length
            read.query_qualities = pysam.qualitystring_to_array(qualities if first else "I" * 50)
            read.template_length = 200 if first else -200
            records.append(read)
    return write_indexed_bam(path, records, header)


def test_low_quality_inserted_bases_or_anchor_give_no_observation(tmp_path):
    """LOCUS 1000 (anchor at 0-based 999 = read 1's 50th base) with ALT `ATT`; base quality counts at the anchor
    and at the inserted bases, as at an SNV's base."""
    good = "I" * 102
    reads = [
        ("alt", "50M2I50M", good),
        ("low_insert", "50M2I50M", "I" * 51 + "#" + "I" * 50),  # one inserted base below min_baseq
        ("low_anchor", "50M2I50M", "I" * 49 + "#" + "I" * 52),
        ("low_after", "50M2I50M", "I" * 52 + "#" * 50),  # the bases after the insertion do not count
        ("ref", "100M", "I" * 100),
    ]
    panel = PANEL.assign(alt="ATT")
    for engine in ("pysam", "compiled"):
        bam = indel_pairs_bam(tmp_path / f"{engine}.bam", reads)
        result = count_sample("toy", bam, "", panel, CountSettings(dedup="none", engine=engine))
        counts = result.counts.iloc[0]
        assert (counts.alt_molecules, counts.ref_molecules, counts.reads) == (2, 1, 5), engine
        assert result.qc["bases_low_quality"] == 2


def test_a_locus_that_is_neither_snv_nor_normalised_indel_is_an_error(tmp_path):
    bam = write_bam(tmp_path / "toy.bam", [Pair("a")])
    for ref, alt in (("CAT", "CG"), ("CA", "TG"), ("A", "N")):
        with pytest.raises(PanelLocusError, match=f"chr1:1000 {ref}>{alt}.*P1"):
            count_sample("toy", bam, "", PANEL.assign(ref=ref, alt=alt), CountSettings())
