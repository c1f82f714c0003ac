"""The compiled BAM engine (mrdtrack.counting.bamscan) counts exactly what the reference pysam engine counts.

The reference engine is proven against samtools, distinct templates and the simulator's truth elsewhere; here the
two engines are run on the same files with the same settings and must agree on every count-table cell, the
fragment-length histogram and the QC figures: on random reads built to hit every rule (filters, clips, indels,
splices across two clusters, mates on other contigs, missing qualities, UMIs one mismatch apart, duplex UMIs read
from either strand (their families called strand by strand), raw families below min_family_size, UMIs in read
names, consensus reads with cD/aD/bD tags and their filters), at SNV and indel loci (the panel's indels, other
indels there, indels followed by a second one), on every bundled file and on the real ctDNAtools reads. Files the
compiled engine does not read (CRAM, CSI-only index) and records it leaves alone go through the reference engine
with the same result."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import (
    TEST_DATA,
    assert_same_counts,
    ctdnatools_panel,
    read_name_hash,
    toy_panel,
    write_indexed_bam,
)
from mrdtrack.counting import CountSettings, SampleCounts, UmiSourceError, bamscan, count_sample, molecules
from mrdtrack.counting import sample as counting
from mrdtrack.counting.molecules import Locus, ReadStats
from mrdtrack.inputs import PanelSettings, build_panel, load_samples, load_table

LOCI = [1000, 1030, 2200, 3000]  # 1-based; two fetch clusters: {1000, 1030} and {2200, 3000}
# Indels at the SNVs' positions (multi-allelic sites) and one alone, as VCF rows: (pos, ref, alt).
INDELS = [(1000, "ACG", "A"), (1030, "A", "AT"), (1010, "A", "ATT"), (2200, "AT", "A"), (3000, "A", "AC")]
PANEL = pd.concat(
    [toy_panel(LOCI), toy_panel([pos for pos, _, _ in INDELS]).assign(
        ref=[ref for _, ref, _ in INDELS], alt=[alt for _, _, alt in INDELS])],
    ignore_index=True,
)  # fmt: skip
HEADER = pysam.AlignmentHeader.from_dict(
    {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 5000}, {"SN": "chr2", "LN": 5000}]}
)
SETTINGS = [
    CountSettings(dedup="umi"),
    CountSettings(dedup="coordinates", consensus_fraction=1.0),
    CountSettings(dedup="flag", require_proper_pair=True),
    CountSettings(dedup="none", merge_mates=False, min_mapq=0),
    CountSettings(dedup="umi", umi_mismatches=0, min_baseq=30),
    CountSettings(dedup="umi", umi_duplex=True),
    CountSettings(dedup="umi", umi_duplex=True, duplex_single_strand="keep", min_family_size=2),
    CountSettings(dedup="umi", min_family_size=2),
]
# For the same reads with consensus tags, and with the UMI at the end of the read name instead of in RX.
CONSENSUS_SETTINGS = [
    CountSettings(),
    CountSettings(dedup="consensus", min_baseq=0),
    CountSettings(dedup="umi", min_family_size=3),
    CountSettings(min_duplex_strands=2),
    CountSettings(min_family_size=2, min_duplex_strands=1, merge_mates=False, dedup="none"),
]
READ_NAME_SETTINGS = [
    CountSettings(umi_source="read_name"),
    CountSettings(dedup="umi", umi_source="read_name", umi_duplex=True, umi_read_name_separator="_"),
]
EXAMPLES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def both_engines(bam: str, panel: pd.DataFrame, count_settings: CountSettings, reference: str = "") -> None:
    """Both engines count the same, or both stop with the same error (a UMI source that finds no UMI)."""
    fast = _outcome(bam, reference, panel, CountSettings(**{**vars(count_settings), "engine": "compiled"}))
    slow = _outcome(bam, reference, panel, CountSettings(**{**vars(count_settings), "engine": "pysam"}))
    if isinstance(fast, SampleCounts) and isinstance(slow, SampleCounts):
        assert_same_counts(fast, slow)
    else:
        assert fast == slow


def _outcome(bam: str, reference: str, panel: pd.DataFrame, count_settings: CountSettings):
    try:
        return count_sample("s", bam, reference, panel, count_settings)
    except UmiSourceError as error:
        return str(error)


@st.composite
def random_read(draw) -> dict:
    """One BAM record near the loci, with any of the things counting has to handle."""
    anchor = draw(st.sampled_from(LOCI + [1010]))
    start = max(anchor - 1 - draw(st.integers(0, 70)), 0)
    cigar = []
    if draw(st.booleans()):
        cigar.append((4, draw(st.integers(1, 5))))  # soft clip
    # Often the first aligned block ends at the anchor, so that an indel follows it right there.
    at_anchor = anchor - start if anchor - start >= 1 else 5
    cigar.append((0, at_anchor if draw(st.booleans()) else draw(st.integers(5, 60))))
    middle = draw(st.sampled_from(["", "I", "D", "N", "long N", "I", "D", "DI", "ID", "panel", "panel", "panelI",
                                   "panelD"]))  # fmt: skip
    lengths = {"I": (1, 3), "D": (1, 6), "N": (10, 50), "long N": (1150, 1250)}
    panel_indel = next(((ref, alt) for pos, ref, alt in INDELS if pos == anchor), ("AT", "A"))
    inserted = panel_indel[1][1:]  # the panel indel's inserted bases ('' for a deletion)
    if middle.startswith("panel"):  # that indel (the panel's ALT when it follows the anchor), maybe another
        cigar.append((1, len(inserted)) if inserted else (2, len(panel_indel[0]) - 1))
    for operation in [middle] if middle in lengths else list(middle.replace("panel", "")):  # "DI": D, then I
        cigar.append(({"I": 1, "D": 2}.get(operation, 3), draw(st.integers(*lengths[operation]))))
    if middle:
        cigar.append((0, draw(st.integers(5, 60))))
    if draw(st.booleans()):
        cigar.append((4, draw(st.integers(1, 5))))
    query_length = sum(n for op, n in cigar if op in (0, 1, 4))
    sequence = "".join(
        draw(st.lists(st.sampled_from("AATTCGN"), min_size=query_length, max_size=query_length))
    )
    if middle.startswith("panel") and inserted:
        before = sum(
            n for op, n in cigar[: 1 + (cigar[0][0] == 4)] if op in (0, 4)
        )  # the clip and first block
        sequence = sequence[:before] + inserted + sequence[before + len(inserted) :]
    flag = draw(st.sampled_from([0x1 | 0x2, 0x1, 0x0])) | draw(st.sampled_from([0x40, 0x80]))
    flag |= draw(st.sampled_from([0, 0x10])) | draw(st.sampled_from([0, 0x20]))
    flag |= draw(st.sampled_from([0] * 12 + [0x4, 0x8, 0x100, 0x200, 0x400, 0x400, 0x800]))
    return {
        "name": f"r{draw(st.integers(0, 8))}",  # few names: mates, and sometimes three reads of one name
        "flag": flag if flag & 0x1 else flag & ~0xE8,
        "tid": draw(st.sampled_from([0] * 6 + [1])),
        "start": start,
        "cigar": cigar,
        "sequence": sequence,
        "qualities": draw(
            st.one_of(
                st.none(),
                st.lists(st.sampled_from([2, 15, 20, 30, 40]), min_size=query_length, max_size=query_length),
            )
        ),  # fmt: skip
        "mapq": draw(st.sampled_from([0, 10, 20, 60, 60])),
        "mate_tid": draw(st.sampled_from([0, 0, 0, 1])),
        "mate_start": max(anchor - 1 + draw(st.integers(-80, 80)), 0),
        "template_length": draw(st.sampled_from([0, 150, -150, 170, -170, 2000])),
        "umi": draw(
            st.sampled_from(
                [None, "AAAA", "AAAA", "AAAT", "CCCC", "AAAAA", "AC-GT", "GT-AC", "GT-AA", "A-C-G"]
            )
        ),
        "family_size": draw(st.sampled_from([None, 1, 2, 5])),
        "strand_depths": draw(st.sampled_from([None, (3, 0), (0, 2), (1, 4), (2, None)])),  # aD, bD
    }


def write_random_bam(path: Path, records: list[dict], consensus: bool = False, umi_in_name: str = "") -> str:
    """The records as an indexed BAM: with their cD/aD/bD tags when `consensus`, with the UMI at the end of the
    read name after `umi_in_name` (and no RX) when that is set."""
    reads = []
    for record in records:
        read = pysam.AlignedSegment(HEADER)
        read.query_name = record["name"]
        if umi_in_name and record["umi"] is not None:
            read.query_name = f"{record['name']}{umi_in_name}{record['umi'].replace('-', '+')}"
        read.flag = record["flag"]
        read.reference_id = record["tid"]
        read.reference_start = record["start"]
        read.mapping_quality = record["mapq"]
        read.cigartuples = None if record["flag"] & 0x4 else record["cigar"]
        read.query_sequence = record["sequence"]
        if record["qualities"] is not None:
            read.query_qualities = pysam.qualitystring_to_array(
                "".join(chr(q + 33) for q in record["qualities"])
            )
        read.next_reference_id = record["mate_tid"]
        read.next_reference_start = record["mate_start"]
        read.template_length = record["template_length"]
        if record["umi"] is not None and not umi_in_name:
            read.set_tag("RX", record["umi"])
        if consensus and record["family_size"] is not None:
            read.set_tag("cD", record["family_size"])
        if consensus and record.get("strand_depths") is not None:
            for tag, depth in zip(("aD", "bD"), record["strand_depths"], strict=True):
                if depth is not None:
                    read.set_tag(tag, depth)
        reads.append(read)
    return write_indexed_bam(path, reads, HEADER)


@EXAMPLES
@given(records=st.lists(random_read(), min_size=1, max_size=300))
def test_random_reads_give_the_reference_counts_under_every_setting(tmp_path, records):
    bam = write_random_bam(tmp_path / "random.bam", records)
    for count_settings in SETTINGS:
        both_engines(bam, PANEL, count_settings)
    consensus = write_random_bam(tmp_path / "consensus.bam", records, consensus=True)
    for count_settings in CONSENSUS_SETTINGS:
        both_engines(consensus, PANEL, count_settings)
    for separator, count_settings in zip(":_", READ_NAME_SETTINGS, strict=True):
        named = write_random_bam(tmp_path / f"named{separator}.bam", records, umi_in_name=separator)
        both_engines(named, PANEL, count_settings)


@EXAMPLES
@given(records=st.lists(random_read(), min_size=1, max_size=300), piece=st.sampled_from([1, 2, 3]))
def test_a_cluster_read_in_pieces_gives_the_counts_and_read_statistics_of_one_fetch(
    tmp_path, monkeypatch, records, piece
):
    """Dense loci make one large cluster, which the compiled engine reads a few loci at a time: its reads are
    still counted once, as one fetch of the whole cluster (the reference engine's) counts them."""
    monkeypatch.setattr(counting, "CLUSTER_PIECE", piece)  # PANEL's clusters hold 4 and 5 loci
    bam = write_random_bam(tmp_path / "random.bam", records)
    for count_settings in (
        CountSettings(dedup="umi"),
        CountSettings(dedup="none", merge_mates=False, min_mapq=0),
    ):
        both_engines(bam, PANEL, count_settings)


@EXAMPLES
@given(records=st.lists(random_read(), min_size=1, max_size=300))
def test_small_clusters_completed_in_batches_give_the_counts_and_read_statistics_of_one_fetch_each(
    tmp_path, monkeypatch, records
):
    """A genome-wide signature's loci are each a cluster of their own, which the compiled engine completes many
    at a time (one return from the record kernel, one molecule build for the batch): the counts, fragments and
    read statistics are still those of one fetch per cluster, long spliced reads across clusters included."""
    monkeypatch.setattr(molecules, "CLUSTER_GAP", 5)  # each position of PANEL a cluster of its own
    monkeypatch.setattr(bamscan, "BATCH_ROWS", 1 << 20)  # batches as long as BATCH_CLUSTERS allows
    bam = write_random_bam(tmp_path / "random.bam", records)
    for count_settings in (
        CountSettings(dedup="umi"),
        CountSettings(dedup="umi", umi_duplex=True),
        CountSettings(dedup="none", merge_mates=False, min_mapq=0),
    ):
        both_engines(bam, PANEL, count_settings)


def test_a_batch_of_clusters_hands_over_to_the_reference_engine_at_the_record_it_leaves_alone(
    tmp_path, monkeypatch
):
    """A record the parser leaves alone in the middle of a batch: the batch's clusters before it are completed
    one by one, as without batches, and the reference engine counts from its cluster on; nothing is counted
    twice."""
    monkeypatch.setattr(bamscan, "BATCH_ROWS", 1 << 20)
    positions = [1000 + 1500 * i for i in range(8)]  # one-locus clusters
    header = pysam.AlignmentHeader.from_dict({"SQ": [{"SN": "chr1", "LN": 20_000}]})
    reads = []
    for i, pos in enumerate(positions):
        for copy in range(3):
            read = pysam.AlignedSegment(header)
            read.query_name, read.flag, read.reference_id = f"r{i}_{copy}", 0, 0
            read.reference_start, read.mapping_quality, read.cigarstring = pos - 20 + copy, 60, "50M"
            read.query_sequence, read.query_qualities = "A" * 50, pysam.qualitystring_to_array("I" * 50)
            read.set_tag(
                "RX", 7 if (i, copy) == (5, 1) else "ACGT", value_type="i" if (i, copy) == (5, 1) else "Z"
            )
            reads.append(read)
    bam = write_indexed_bam(tmp_path / "int_umi.bam", reads, header)
    both_engines(bam, toy_panel(positions), CountSettings(dedup="umi"))
    with pysam.AlignmentFile(bam) as alignments:
        scanner = bamscan.BamScanner(bam, alignments, CountSettings(), "umi")
        clusters = [[Locus("chr1", pos, "A", "T")] for pos in positions]
        found = list(scanner.molecules(0, clusters, ReadStats()))
        scanner.close()
    assert [molecules is None for molecules in found] == [False] * 5 + [True] * 3


def test_a_hash_collision_in_a_batch_builds_its_clusters_one_by_one(tmp_path, monkeypatch):
    monkeypatch.setattr(bamscan, "BATCH_ROWS", 1 << 20)
    positions = [1000 + 1100 * i for i in range(4)]  # one-locus clusters
    records = [
        _plain_read(f"p{i}{copy}", pos - 10 - copy) for i, pos in enumerate(positions) for copy in range(2)
    ]
    bam = write_random_bam(tmp_path / "c.bam", records)
    reference = count_sample("s", bam, "", toy_panel(positions), CountSettings(engine="pysam"))
    build = bamscan._molecules
    batches = []

    def collides_across_loci(ints, hashes, names, umis, n, params, fraction):
        loci = set(ints[:n, bamscan.O_LOCUS].tolist())
        batches.append(len(loci))
        if len(loci) > 1:  # two names of two clusters share a hash
            return np.zeros((0, 6), dtype=np.int64), np.zeros(bamscan.N_DROPPED, dtype=np.int64), True
        return build(ints, hashes, names, umis, n, params, fraction)

    monkeypatch.setattr(bamscan, "_molecules", collides_across_loci)
    fast = count_sample("s", bam, "", toy_panel(positions), CountSettings(engine="compiled"))
    assert max(batches) > 1, "the clusters were completed in a batch"
    assert_same_counts(fast, reference)


def test_a_batch_is_consecutive_small_clusters_of_panel_loci_complete_together():
    """The first cluster is completed alone; then batches grow to about BATCH_ROWS observations, and end before
    a cluster of flank positions, a piece of a longer cluster and a cluster that ends earlier than the one before
    it (the batch is complete when its last cluster is)."""
    ends = np.array([10, 20, 30, 40, 50, 60, 55, 70, 80, 90, 100, 110])
    flank = [False] * 12
    flank[4] = True
    previous = np.full(12, -1)
    previous[9] = 8  # clusters 8 and 9: two pieces of one cluster
    batches = bamscan._Batches(SimpleNamespace(ends=ends, flank=flank), previous)
    assert batches.end(0) == 0
    batches.observe(0, 0, rows=30)
    assert batches.end(1) == 3  # stops before the flank cluster
    assert batches.end(4) == 4
    assert batches.end(5) == 5  # cluster 6 ends before cluster 5
    assert batches.end(6) == 7  # stops before the pieces
    assert [batches.end(8), batches.end(9)] == [8, 9]
    assert batches.end(10) == 11
    batches.observe(1, 3, rows=3 * bamscan.BATCH_ROWS)  # large clusters: one at a time
    assert batches.end(10) == 10


@EXAMPLES
@given(records=st.lists(random_read(), min_size=1, max_size=300), first=st.integers(1, 400))
def test_records_cut_by_the_end_of_a_read_are_completed_and_counted_once(
    tmp_path, monkeypatch, records, first
):
    """The stream is read in pieces that end anywhere, inside a record's size, its fields or its bases, and even
    before the first record ends: every record is still parsed whole, once."""
    monkeypatch.setattr(bamscan, "FIRST_READ", first)
    monkeypatch.setattr(bamscan, "LAST_READ", 2 * first)
    bam = write_random_bam(tmp_path / "random.bam", records)
    both_engines(bam, PANEL, CountSettings(dedup="umi"))


def test_every_bundled_file_gives_the_reference_counts():
    samples, _ = load_samples([str(p) for p in sorted(TEST_DATA.glob("batch*/samples.tsv"))])
    patients, _ = load_table(str(TEST_DATA / "patients.tsv"), "patients")
    reference = str(TEST_DATA / "reference" / "genome.fa.gz")
    panel = build_panel(patients, reference, PanelSettings())
    bams = [bam for bam in samples["bam"] if bam.endswith(".bam")]
    assert len(bams) >= 20
    for bam in bams:
        both_engines(bam, panel, CountSettings(), reference)


def test_real_reads_give_the_reference_counts(ctdnatools):
    panel = ctdnatools_panel(ctdnatools)
    for sample in ("T1", "T2", "N1", "N2", "N3"):
        for count_settings in (CountSettings(), CountSettings(dedup="none", merge_mates=False)):
            both_engines(str(ctdnatools / f"{sample}.bam"), panel, count_settings)


def test_a_csi_indexed_bam_is_counted_by_the_reference_engine(tmp_path):
    records = [_plain_read("p1", 990), _plain_read("p2", 995)]
    bam = write_random_bam(tmp_path / "csi.bam", records)
    Path(f"{bam}.bai").unlink()
    pysam.index("-c", bam)
    with pysam.AlignmentFile(bam) as alignments:
        assert not bamscan.BamScanner(bam, alignments, CountSettings(), "umi").available
    both_engines(bam, PANEL, CountSettings())


def test_a_record_the_parser_leaves_alone_sends_its_clusters_to_the_reference_engine(tmp_path):
    """An integer UMI tag: the reference engine reads it as text; the compiled one hands the run over."""
    bam = write_random_bam(tmp_path / "int_umi.bam", [_plain_read("p1", 990), _plain_read("p2", 2190)])
    with pysam.AlignmentFile(bam, "rb") as alignments:
        read = next(alignments.fetch("chr1", 989, 991))
    with pysam.AlignmentFile(bam) as alignments, pysam.AlignmentFile(str(tmp_path / "b.bam"), "wb",
                                                                     template=alignments) as out:  # fmt: skip
        for record in alignments.fetch(until_eof=True):
            if record.query_name == read.query_name:
                record.set_tag("RX", 7, value_type="i")
            out.write(record)
    pysam.index(str(tmp_path / "b.bam"))
    with pysam.AlignmentFile(str(tmp_path / "b.bam")) as alignments:
        scanner = bamscan.BamScanner(str(tmp_path / "b.bam"), alignments, CountSettings(), "umi")
        stats = ReadStats()
        clusters = [[Locus("chr1", pos, "A", "T") for pos in c] for c in ([1000, 1030], [2200, 3000])]
        assert list(scanner.molecules(0, clusters, stats)) == [None, None]
        assert stats == ReadStats()  # nothing counted twice once the reference engine takes over
        scanner.close()
    both_engines(str(tmp_path / "b.bam"), PANEL, CountSettings(dedup="umi"))


def test_two_read_names_sharing_a_hash_are_a_collision_not_one_template():
    ints = np.zeros((2, bamscan.N_COLUMNS), dtype=np.int64)
    names = np.frombuffer(b"readAreadB", dtype=np.uint8).copy()
    ints[:, bamscan.O_NAME] = [0, 5]
    ints[:, bamscan.O_NAME_LEN] = 5
    ints[:, bamscan.O_BASE] = ord("A")
    same_hash = np.array([42, 42], dtype=np.uint64)
    *_, collision = bamscan._templates(ints, same_hash, names, 2)
    assert collision
    names[5:] = names[:5]  # now the same name: one template (mates), no collision
    firsts, calls, _shortfalls, collision = bamscan._templates(ints, same_hash, names, 2)
    assert not collision and list(firsts) == [0] and list(calls) == [ord("A")]


def test_a_hash_collision_falls_back_to_the_reference_engine(tmp_path, monkeypatch):
    bam = write_random_bam(tmp_path / "c.bam", [_plain_read("p1", 990), _plain_read("p2", 995)])
    reference = count_sample("s", bam, "", PANEL, CountSettings(engine="pysam"))
    monkeypatch.setattr(
        bamscan,
        "_molecules",
        lambda *args: (np.zeros((0, 6), dtype=np.int64), np.zeros(2, dtype=np.int64), True),
    )
    assert_same_counts(count_sample("s", bam, "", PANEL, CountSettings(engine="compiled")), reference)


def test_auto_takes_the_compiled_engine_for_large_bams_only(tmp_path, monkeypatch):
    bam = write_random_bam(tmp_path / "small.bam", [_plain_read("p1", 990)])
    used = []

    def spy(self, tid, clusters, stats, previous, flank):  # records the call, hands every cluster to pysam
        used.append(tid)
        return iter([None] * len(clusters))

    monkeypatch.setattr(bamscan.BamScanner, "_scan", spy)  # panel loci and flanks both go through it
    count_sample("s", bam, "", PANEL, CountSettings())
    assert not used, "a small BAM is counted by pysam under engine: auto"
    monkeypatch.setattr(counting, "AUTO_COMPILED_MIN_BYTES", 0)
    count_sample("s", bam, "", PANEL, CountSettings())
    assert used, "a BAM over the threshold is counted by the compiled engine"


def test_unknown_engine_is_a_config_error():
    with pytest.raises(ValueError, match="counting.engine"):
        CountSettings.from_config({"engine": "fast"})


def _plain_read(name: str, start: int) -> dict:
    return {
        "name": name, "flag": 0x1 | 0x2 | 0x40 | 0x20, "tid": 0, "start": start, "cigar": [(0, 50)],
        "sequence": "A" * 50, "qualities": [40] * 50, "mapq": 60, "mate_tid": 0, "mate_start": start + 60,
        "template_length": 110, "umi": "ACGT", "family_size": None,
    }  # fmt: skip


def test_a_record_whose_sizes_do_not_add_up_is_reported_not_parsed():
    """A wrong index can seek into the middle of a record: its 'block size' is then noise, and the scan must stop
    with an error (counting turns it into its 'truncated or corrupt' message) instead of reading out of bounds."""
    too_short = np.frombuffer((5).to_bytes(4, "little") + bytes(40), dtype=np.uint8).copy()
    table = bamscan._Table()
    one = np.array([999], dtype=np.int64)
    shapes, inserted = bamscan.locus_shapes([Locus("chr1", 1000, "A", "T")])
    status, offset = bamscan._scan_records(
        too_short, 0, 0, one, shapes, inserted, np.zeros(1, dtype=np.int64), one, one + 1, one, one + 1,
        np.full(1, -1, dtype=np.int64), np.zeros(12, dtype=np.int64), np.zeros(2, dtype=np.uint8), bamscan._SEQ_CODES,
        np.zeros((1, len(bamscan.STAT_FIELDS)), dtype=np.int64), np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64),
        table.arrays(), bamscan._Table().arrays(),
    )  # fmt: skip
    assert (status, offset) == (bamscan.CORRUPT, 0)


def test_auto_takes_the_compiled_engine_for_a_job_of_small_bams_that_add_up(tmp_path, monkeypatch):
    small = [write_random_bam(tmp_path / f"s{i}.bam", [_plain_read("p1", 990)]) for i in range(3)]
    size = sum(os.path.getsize(p) for p in small)
    monkeypatch.setattr(counting, "AUTO_COMPILED_MIN_BYTES", size)
    assert counting.settings_for_job(small, CountSettings()).engine == "compiled"
    assert counting.settings_for_job(small[:2], CountSettings()).engine == "auto"  # too small together
    assert counting.settings_for_job(small[:1], CountSettings()).engine == "auto"  # one sample: as alone
    assert counting.settings_for_job(small, CountSettings(engine="pysam")).engine == "pysam"


@settings(max_examples=300, deadline=None)
@given(
    observations=st.lists(
        st.tuples(
            st.integers(0, 5),  # locus
            st.integers(0, 6),  # read name
            st.integers(0, 1),  # key bit (mates counted apart)
            st.sampled_from([bamscan.NO_CALL, ord("A"), ord("C"), ord("T")]),
            st.integers(0, 3),  # BELOW_* bits
            st.booleans(),  # a copy of the previous row's read (the same stored name)
        ),
        min_size=1,
        max_size=80,
    ),
    # loci far apart: a dense table would be too large, so the hashed merge runs
    spread=st.sampled_from([1, 50_000]),
)
def test_templates_merged_read_by_read_are_those_merged_locus_by_locus(observations, spread):
    n = len(observations)
    ints = np.zeros((n, bamscan.N_COLUMNS), dtype=np.int64)
    hashes = np.zeros(n, dtype=np.uint64)
    names = bytearray()
    for row, (locus, name, key_bit, base, short, copied) in enumerate(observations):
        text = f"read{name}".encode()
        same_read = row > 0 and copied and observations[row - 1][1:3] == (name, key_bit)
        if not same_read:
            ints[row, bamscan.O_NAME] = len(names)
            names += text
        else:
            ints[row, bamscan.O_NAME] = ints[row - 1, bamscan.O_NAME]
        ints[row, [bamscan.O_LOCUS, bamscan.O_NAME_LEN, bamscan.O_KEYBIT, bamscan.O_BASE, bamscan.O_SHORT]] = (
            locus * spread, len(text), key_bit, base, short
        )  # fmt: skip
        hashes[row] = read_name_hash(text, key_bit)
    stored = np.frombuffer(bytes(names), dtype=np.uint8).copy()
    by_read = bamscan._templates(ints, hashes, stored, n)
    by_locus = bamscan._hashed_templates(ints, hashes, stored, n)
    assert not by_read[3] and not by_locus[3]
    for merged, expected in zip(by_read[:3], by_locus[:3], strict=True):
        assert merged.tolist() == expected.tolist()


@settings(max_examples=50, deadline=None)
@given(slots=st.lists(st.integers(0, 11), max_size=40), cluster=st.integers(0, 3))
def test_a_completed_cluster_takes_its_rows_and_leaves_the_later_clusters_rows_in_order(slots, cluster):
    """A cluster completes while reads already reached later ones: its rows leave the observation table, the
    others move up in their order, and the table remembers the greatest slot still in it."""
    owner = np.repeat(np.arange(4), 3)  # slots 0-2: cluster 0, 3-5: cluster 1, ...
    n = len(slots)
    ints = np.zeros((n + 5, bamscan.N_COLUMNS), dtype=np.int64)
    ints[:n, bamscan.O_LOCUS] = slots
    ints[:n, bamscan.O_BASE] = np.arange(n)  # each row's identity
    hashes = np.arange(n + 5, dtype=np.uint64) * 7
    before_ints, before_hashes = ints[:n].copy(), hashes[:n].copy()
    taken_ints, taken_hashes, kept, last = bamscan._take_rows(ints, hashes, n, owner, cluster, cluster)
    mine = owner[np.asarray(slots, dtype=np.int64)] == cluster if n else np.zeros(0, dtype=bool)
    np.testing.assert_array_equal(taken_ints, before_ints[mine])
    np.testing.assert_array_equal(taken_hashes, before_hashes[mine])
    assert kept == int((~mine).sum())
    np.testing.assert_array_equal(ints[:kept], before_ints[~mine])
    np.testing.assert_array_equal(hashes[:kept], before_hashes[~mine])
    assert last == (int(before_ints[~mine, bamscan.O_LOCUS].max()) if kept else -1)


@settings(deadline=None)  # the first example compiles the kernels
@given(
    values=st.lists(st.integers(0, 60), max_size=40),
    value=st.integers(-1, 61),
    previous=st.integers(0, 40),
    right=st.booleans(),
)
def test_a_search_from_the_last_records_answer_is_numpys_searchsorted(values, value, previous, right):
    """The record kernel looks up each record's first locus and cluster from the last record's answers; whatever
    that answer was (records out of order included), the result is np.searchsorted's."""
    array = np.array(sorted(values), dtype=np.int64)
    expected = np.searchsorted(array, value, side="right" if right else "left")
    at = min(previous, len(array))  # an earlier answer is an index of the array or its end
    assert bamscan._search_on(array, value, at, right) == expected
    assert bamscan._search_from(array, value, at, right) == max(at, expected)


@settings(deadline=None)  # the first example compiles the kernel
@given(
    reads=st.lists(
        st.tuples(st.binary(min_size=0, max_size=6), st.binary(max_size=3), st.integers(1, 3), st.booleans()),
        max_size=12,
    )
)
def test_the_rows_kept_after_a_cluster_completes_keep_their_names_and_umis_at_the_front(reads):
    """A read is one or more consecutive rows sharing its name and UMI bytes; some reads' rows were taken out
    with their cluster. Packing moves the kept rows' bytes to the front, so that the byte arrays do not grow
    with every cluster of a contig, and each row still reads its own name and UMI."""
    names, umis = np.zeros(64, dtype=np.uint8), np.zeros(32, dtype=np.uint8)
    rows, expected, name_at, umi_at = [], [], 0, 0
    for name, umi, copies, kept in reads:
        names[name_at : name_at + len(name)] = list(name)
        umis[umi_at : umi_at + len(umi)] = list(umi)
        if kept:  # the taken reads' bytes stay where they were: they are simply not rows any more
            for _ in range(copies):
                row = np.zeros(bamscan.N_COLUMNS, dtype=np.int64)
                row[[bamscan.O_NAME, bamscan.O_NAME_LEN, bamscan.O_UMI, bamscan.O_UMI_LEN]] = (
                    name_at,
                    len(name),
                    umi_at,
                    len(umi),
                )
                rows.append(row)
                expected.append((name, umi))
        name_at, umi_at = name_at + len(name), umi_at + len(umi)
    ints = np.array(rows, dtype=np.int64).reshape(len(rows), bamscan.N_COLUMNS)
    used = bamscan._pack_bytes(ints, len(rows), names, umis)
    kept_reads = [(name, umi) for name, umi, _, kept in reads if kept]
    assert used == (sum(len(n) for n, _ in kept_reads), sum(len(u) for _, u in kept_reads))
    for row, (name, umi) in zip(ints, expected, strict=True):
        assert bytes(names[row[bamscan.O_NAME] : row[bamscan.O_NAME] + row[bamscan.O_NAME_LEN]]) == name
        assert bytes(umis[row[bamscan.O_UMI] : row[bamscan.O_UMI] + row[bamscan.O_UMI_LEN]]) == umi
