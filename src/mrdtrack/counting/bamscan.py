"""The compiled counting engine for indexed BAM files: the rules of `mrdtrack.counting.molecules`, at htslib speed.

`molecules.py` is the reference implementation: it walks reads through pysam, one Python object per read, which
costs about four times what `samtools mpileup` takes. Here libdeflate inflates the BAM's blocks (`bgzf.py`), and
numba-compiled loops parse the binary records, merge mates and collapse families; only one molecule table per
cluster comes back to Python. Both engines give the same counts, byte for byte (tests/test_bamscan.py checks it
on every bundled file, on real reads and on random reads, at SNV and indel loci). CRAM files, BAMs without a .bai
index, and the rare records this parser leaves alone (a CIGAR stored in a CG tag, a UMI or consensus tag of an
unexpected type) go through the reference engine.

Each cluster of nearby loci sees the reads `AlignmentFile.fetch` would return for it, in the same order
(htslib's overlap rule). Clusters whose reads lie close together in the file are streamed in one pass from the
first record that can overlap the first of them (the BAI's linear index gives that offset per 16 kb window), and
each cluster's molecules are built and handed back as soon as a read starts past it, so memory holds one
cluster's reads, never the file's; a cluster of many loci can be read in pieces (`BamScanner.cluster_rows`).
The flank positions around a sample's own panel loci (counting/flanks.py) are read in the same pass as the
panel loci (`BamScanner.joint_rows`): their observations go to a table of their own, so that a read is
decompressed and parsed once for both.
"""

from __future__ import annotations

import functools
import itertools
import os
import struct
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from mrdtrack.counting.bgzf import BgzfReader
from mrdtrack.counting.flanks import FlankCluster
from mrdtrack.counting.molecules import (
    BELOW_DUPLEX_STRANDS,
    BELOW_FAMILY_SIZE,
    INDEL_ALT,
    INDEL_OTHER,
    INDEL_REF,
    ClusterRows,
    CountSettings,
    Locus,
    LocusMolecules,
    ReadStats,
)

if TYPE_CHECKING:
    from mrdtrack.counting.flanks import FlankTally

FIRST_READ = 1 << 16  # decompressed bytes first read for a cluster; doubled while it needs more
LAST_READ = 1 << 22
LINEAR_SHIFT = 14  # the BAI linear index has one entry per 16 kb window
MODE_CODES = {"flag": 0, "consensus": 1, "none": 2, "umi": 3, "coordinates": 4}
NO_CALL = 0  # a template or family without a base
DISCORDANT_CODE = 45  # ord("-"), as molecules.DISCORDANT
REF_CODE, ALT_CODE, OTHER_CODE = ord(INDEL_REF), ord(INDEL_ALT), ord(INDEL_OTHER)  # calls at indel loci

# Slots of the counters array: ReadStats' fields in this order (the last N_DROPPED are counted per molecule, once
# a cluster is complete).
STAT_FIELDS = (
    "reads_seen", "filtered_unmapped", "filtered_secondary", "filtered_supplementary", "filtered_qcfail",
    "filtered_duplicate_flag", "filtered_low_mapq", "filtered_improper_pair", "bases_low_quality",
    "molecules_below_min_family_size", "molecules_below_min_duplex_strands", "molecules_single_strand_dropped",
)  # fmt: skip
N_DROPPED = 3  # molecules dropped: below min_family_size, below min_duplex_strands, single-strand

# What the record kernel says when it returns.
NEED_DATA, CLUSTER_DONE, OUT_OF_ROOM, NEEDS_REFERENCE, RUN_DONE, CORRUPT = 0, 1, 2, 3, 4, 5

# Columns of the observation table (one row per read and locus with a call): O_SHORT holds the read's
# molecules.BELOW_* bits (consensus mode).
(O_LOCUS, O_BASE, O_LEFT, O_LENGTH, O_R1FWD, O_SIZE, O_NAME, O_NAME_LEN, O_UMI, O_UMI_LEN, O_KEYBIT,
 O_SHORT) = range(12)  # fmt: skip
N_COLUMNS = 12
# Slots of the settings array handed to the kernels.
(P_DROP_MASK, P_MIN_MAPQ, P_MIN_BASEQ, P_PROPER_PAIR, P_MERGE_MATES, P_MODE, P_MISMATCHES, P_DUPLEX, P_UMI_SOURCE,
 P_SEPARATOR, P_MIN_FAMILY, P_MIN_STRANDS, P_KEEP_SINGLE) = range(13)  # fmt: skip
# Columns of the locus shapes array: 1 for an indel (0: an SNV), deleted bases, where the inserted bases start in
# the inserted-bases array and how many there are.
L_INDEL, L_DELETED, L_INSERTED_AT, L_INSERTED_LEN = range(4)
# The state array: observations used, name bytes used, UMI bytes used, the first cluster not yet complete (the
# run's, in its first table), the largest locus index of an observation in the table, whether it must grow, and
# (the run's, in its first table) the first locus and the first cluster the last record could reach, where the
# next record's searches start, and the last cluster of the open batch (clusters S_OPEN to S_STOP are handed back
# together, when the first read past all of them arrives).
S_ROWS, S_NAMES, S_UMIS, S_OPEN, S_LAST, S_GROW, S_NEXT_LOCUS, S_NEXT_CLUSTER, S_STOP = range(9)
N_STATE = 9
# Clusters whose reads start closer than this in the file (compressed bytes) are streamed in one pass.
JOIN_BYTES = 1 << 22

_SEQ_CODES = np.frombuffer(b"=ACMGRSVTWYHKDBN", dtype=np.uint8).copy()


class BamScanner:
    """Reads the molecules at clusters of loci from one indexed BAM; `available` is False when it cannot."""

    def __init__(self, path: str, alignments: Any, settings: CountSettings, mode: str) -> None:
        readable = not alignments.is_cram and len(settings.umi_tag) == 2
        self.linear = bai_linear_index(path) if readable else None
        self.available = self.linear is not None
        self.bgzf = BgzfReader(path) if self.available else None
        self.params = np.array(
            [
                0x4 | 0x100 | 0x200 | 0x800 | (0x400 if mode == "flag" else 0),
                settings.min_mapq,
                settings.min_baseq,
                int(settings.require_proper_pair),
                int(settings.merge_mates),
                MODE_CODES[mode],
                settings.umi_mismatches,
                int(settings.umi_duplex),
                int(settings.umi_source == "read_name"),
                ord(settings.umi_read_name_separator),
                settings.min_family_size,
                settings.min_duplex_strands,
                int(settings.duplex_single_strand == "keep"),
            ],
            dtype=np.int64,
        )
        self.fraction = float(settings.consensus_fraction)
        self.umi_tag = np.frombuffer(settings.umi_tag.encode()[:2].ljust(2), dtype=np.uint8).copy()

    def joined_flank_clusters(
        self, tid: int, clusters: list[FlankCluster], panel_positions: np.ndarray
    ) -> list[FlankCluster]:
        """Contig `tid`'s clusters of flank positions, those whose reads are few joined (`joined_flank_clusters`;
        `panel_positions`: the contig's panel loci, 0-based, sorted)."""
        return joined_flank_clusters(self.linear.get(tid) if self.linear else None, clusters, panel_positions)

    def close(self) -> None:
        if self.bgzf is not None:
            self.bgzf.close()

    def molecules(
        self, tid: int, clusters: list[list[Locus]], stats: ReadStats
    ) -> Iterator[list[LocusMolecules] | None]:
        """Each cluster's molecules per locus (clusters of loci sorted by position on contig `tid`, in order),
        yielded as soon as the cluster is complete; None for a cluster the reference engine must count (its
        reads are then left out of `stats`)."""
        for found in self._scan(tid, clusters, stats, (), [False] * len(clusters)):
            yield None if found is None else _per_locus(*found)

    def cluster_rows(
        self, tid: int, clusters: list[list[Locus]], stats: ReadStats, continues: Sequence[bool] = ()
    ) -> Iterator[ClusterRows | None]:
        """`molecules` as one table per cluster (ClusterRows), for callers that tally many loci at once.

        `continues[i]` True makes cluster i a piece of the cluster before it: the two are read in one pass and
        their reads are counted in `stats` as one cluster's (as one fetch of both), while each piece is handed
        back as soon as it is complete, so that the reads held at once are those of one piece."""
        previous = [i - 1 if piece else -1 for i, piece in enumerate(continues)]
        return self._scan(tid, clusters, stats, previous, [False] * len(clusters))

    def joint_rows(
        self,
        tid: int,
        clusters: list[list[Locus]],
        flank: Sequence[bool],
        stats: ReadStats,
        previous: Sequence[int] = (),
    ) -> Iterator[ClusterRows | FlankTally | None]:
        """Clusters of panel loci (a ClusterRows each, as `cluster_rows`) and clusters of flank positions
        (`flank[i]` True: their molecules counted, one FlankTally each, families built once for all positions:
        flank_kernel) read in one pass of the file, so that a read that covers a panel locus and its flanks is
        decompressed and parsed once. The clusters, sorted by the end of their regions (a piece's reaches the
        next piece), may overlap one another; `previous[i]` is the index of the piece before cluster i within one
        cluster of panel loci (-1: none; as `continues` of `cluster_rows`). Only the panel clusters' reads count
        in `stats`."""
        return self._scan(tid, clusters, stats, previous, flank)

    def _scan(
        self,
        tid: int,
        clusters: list[list[Locus]],
        stats: ReadStats,
        previous: Sequence[int],
        flank: Sequence[bool],
    ) -> Iterator[ClusterRows | FlankTally | None]:
        """Each cluster's table (its molecules counted, for a flank cluster), or None where pysam must count it."""
        linear = self.linear.get(tid) if self.linear is not None else None
        previous = list(previous) or [-1] * len(clusters)
        for run in _runs(linear, clusters, previous, list(flank)):
            if run.start == -1:
                yield from [None] * len(run.clusters)
            else:
                yield from self._scan_run(tid, run, stats)

    def _scan_run(self, tid: int, run: _Run, stats: ReadStats) -> Iterator[ClusterRows | FlankTally | None]:
        """Stream a run of clusters once, yielding each cluster (in the run's order) when the first read past it
        and past the clusters before it arrives; consecutive small clusters are completed as a batch
        (`_Batches`). From a record the parser leaves alone on, the run's unfinished clusters are None."""
        layout = _RunLayout.of(run)
        previous = np.array(run.previous, dtype=np.int64)
        begins, ends = layout.begins, layout.ends
        # a piece's fetch region reaches the next piece of its cluster: together they are the cluster's region
        pieces = np.flatnonzero(previous >= 0)
        ends[previous[pieces]] = np.maximum(begins[pieces], ends[previous[pieces]])
        counters = np.zeros((len(run.clusters), len(STAT_FIELDS)), dtype=np.int64)
        depth = np.zeros(len(layout.loci), dtype=np.int64)
        tables = (_Table(ALL_COLUMNS), _Table(FLANK_COPIES))  # panel loci, flank positions
        state = tables[0].state
        batches = _Batches(layout, previous)
        state[S_STOP] = batches.end(0)
        geometry = (
            tid, layout.loci, layout.shapes, layout.inserted, layout.cluster_of_locus, begins, ends,
            np.minimum.accumulate(begins[::-1])[::-1], np.maximum.accumulate(ends), previous, layout.kind,
            layout.slot,
        )  # fmt: skip
        for status in self._records(run.start, geometry, counters, depth, tables):
            first, last = int(state[S_OPEN]), int(state[S_STOP])
            if status == NEEDS_REFERENCE:
                yield from [None] * (len(run.clusters) - first)
                return
            rows_before = int(state[S_ROWS])
            found = _finish_batch(tables, first, last, layout, depth, self.params, self.fraction, counters)
            batches.observe(first, last, rows_before - int(state[S_ROWS]))
            counted = [
                c for c, done in enumerate(found, start=first) if done is not None and not run.flank[c]
            ]
            if counted:
                for field, value in zip(STAT_FIELDS, counters[counted].sum(axis=0).tolist(), strict=True):
                    setattr(stats, field, getattr(stats, field) + value)
            yield from found
            state[S_OPEN] = last + 1
            state[S_STOP] = batches.end(last + 1)

    def _records(
        self,
        start: int | None,
        geometry: tuple,
        counters,
        depth,
        tables: tuple[_Table, _Table],
    ) -> Iterator[int]:
        """Run the record kernel over the stream; yield CLUSTER_DONE each time the open batch of clusters is
        complete (the caller then opens the next), or NEEDS_REFERENCE once. A record the kernel leaves to the
        reference engine while a batch is open first completes the batch's clusters one by one up to it, as
        without batches."""
        (tid, loci, shapes, inserted, cluster_of_locus, begins, ends, reach_begins, reach_ends, previous, kind,
         slot) = geometry  # fmt: skip
        n_clusters = len(begins)
        state = tables[0].state  # the run's open cluster
        buffers = self._buffers(start) if start is not None else iter(())
        buffer = next(buffers, None)
        while buffer is not None:
            offset = 0
            while True:
                status, offset = _scan_records(
                    buffer, offset, tid, loci, shapes, inserted, cluster_of_locus, begins, ends, reach_begins,
                    reach_ends, previous, self.params, self.umi_tag, _SEQ_CODES, counters, depth, kind, slot,
                    tables[0].arrays(), tables[1].arrays(),
                )  # fmt: skip
                if status == CORRUPT:  # counting.py turns this into its "truncated or corrupt" message
                    raise OSError("a BAM record whose sizes do not add up")
                if status == OUT_OF_ROOM:
                    for table in tables:
                        table.grow_if_asked()
                elif status == CLUSTER_DONE:
                    yield status
                elif status == NEEDS_REFERENCE and state[S_STOP] > state[S_OPEN]:
                    # the record is parsed again with the batch cut to its first cluster: the clusters complete
                    # before it come back one by one, and from the one it reaches on they are left to pysam
                    state[S_STOP] = state[S_OPEN]
                else:
                    break
            if status == NEEDS_REFERENCE:
                yield status
                return
            if status == RUN_DONE:
                return
            buffer = _next_buffer(buffers, offset)  # NEED_DATA: the record at `offset` runs past the buffer
        while state[S_OPEN] < n_clusters:  # end of file: whatever is open is complete
            yield CLUSTER_DONE

    def _buffers(self, start: int) -> Generator[np.ndarray, int, None]:
        """The decompressed stream from virtual offset `start`, in buffers that start at a record. The consumer
        sends back where the record kernel stopped for want of data; a record cut there by the buffer's end comes
        next, alone, completed by a small read of its own (so no large buffer is ever copied, and no pass over
        the records is needed to find the cut)."""
        self.bgzf.seek(start)
        size = FIRST_READ
        while True:
            block = self.bgzf.read(size)
            if not block:
                return
            size = min(2 * size, LAST_READ)
            cut = yield np.frombuffer(block, dtype=np.uint8)
            tail = bytes(block[cut:])
            while tail:
                missing = (
                    4 - len(tail) if len(tail) < 4 else 4 + struct.unpack_from("<i", tail)[0] - len(tail)
                )
                if missing <= 0:
                    break
                more = self.bgzf.read(missing)
                if not more:  # a truncated file: leave the partial record out
                    return
                tail += more
                if len(tail) >= 4 and 4 + struct.unpack_from("<i", tail)[0] == len(tail):
                    yield np.frombuffer(tail, dtype=np.uint8)
                    break


def _next_buffer(buffers: Generator[np.ndarray, int, None], cut: int) -> np.ndarray | None:
    """The buffer after the one the kernel stopped in at `cut` (BamScanner._buffers), None at the stream's end."""
    try:
        return buffers.send(cut)
    except StopIteration:
        return None


@dataclass
class _Run:
    """Consecutive clusters of one contig read in one pass from `start` (None: no read can overlap them; -1:
    the index does not say where their reads start), each one's piece before it in the run (-1: none) and
    whether each is a cluster of flank positions."""

    start: int | None
    clusters: list[list[Locus]]
    last_start: int | None  # where the reads of its last cluster start
    previous: list[int]
    flank: list[bool]


def _runs(
    linear: np.ndarray | None, clusters: list[list[Locus]], previous: list[int], flank: list[bool]
) -> Iterator[_Run]:
    """Group consecutive clusters whose reads start close together in the file (targeted panels: all of a
    contig's), so that the stream is read once instead of once per cluster from its 16 kb index window. The
    clusters between two pieces of a cluster, and the later piece, always join the run of the earlier piece; a
    run starts where the reads of the earliest of its clusters start."""
    last_piece = np.arange(len(clusters))  # the last cluster that must join the run of each cluster
    for i, before in enumerate(previous):
        if before >= 0:
            last_piece[before] = i
    must_join = np.maximum.accumulate(last_piece) if len(clusters) else last_piece
    run: _Run | None = None
    first = 0  # index of the run's first cluster
    for i, (cluster, before, is_flank) in enumerate(zip(clusters, previous, flank, strict=True)):
        start = None if linear is None else first_offset(linear, _first_position(cluster) - 1)
        inside = run is not None and i > 0 and must_join[i - 1] >= i
        joins = inside or (
            run is not None
            and run.start not in (None, -1)
            and start not in (None, -1)
            and (start >> 16) - (run.last_start >> 16) < JOIN_BYTES
        )
        if joins:
            run.clusters.append(cluster)
            run.previous.append(before - first if before >= 0 else -1)
            run.flank.append(is_flank)
            if start not in (None, -1) and run.last_start not in (None, -1):
                run.last_start = start
            run.start = _earliest(run.start, start)  # a cluster that ends later may start earlier
        else:
            if run is not None:
                yield run
            first = i
            run = _Run(start, [cluster], start, [-1], [is_flank])
    if run is not None:
        yield run


def joined_flank_clusters(
    linear: np.ndarray | None, clusters: list[FlankCluster], panel_positions: np.ndarray
) -> list[FlankCluster]:
    """Consecutive clusters of flank positions (sorted, one contig) joined while their reads are few: a genome-
    wide signature's loci are each a cluster of their own, and in a sparse plasma BAM completing a cluster, not
    reading it, is most of its cost. The flank kernel keeps a cell per template and position of a cluster, so a
    joined cluster costs its templates times its positions: clusters join while their reads' bytes times their
    positions stay within FLANK_JOIN_COST, and their positions within FLANK_JOIN_POSITIONS. A cluster's reads'
    bytes are estimated by the BAI linear index: those of the 16 kb windows it touches, shared among the panel
    loci (`panel_positions`, 0-based, sorted: the contig's, every patient's) and the clusters that start in its
    first window. Where reads are dense (a capture target's thousands per locus, or reads everywhere) or the
    index does not say (a contig's last window), clusters stay as they are."""
    if linear is None or len(clusters) < 2:
        return clusters
    first = np.array([int(c.pos[0]) - 1 for c in clusters], dtype=np.int64) >> LINEAR_SHIFT
    after = (np.array([int(c.pos[-1]) - 1 for c in clusters], dtype=np.int64) >> LINEAR_SHIFT) + 1
    begins, ends = _window_offsets(linear, first), _window_offsets(linear, after)
    _, sharing, times = np.unique(first, return_inverse=True, return_counts=True)
    window_start = first << LINEAR_SHIFT
    loci = np.searchsorted(panel_positions, window_start + (1 << LINEAR_SHIFT)) - np.searchsorted(
        panel_positions, window_start
    )
    known = (begins >= 0) & (ends >= 0)
    reads = np.where(known, (ends - begins) / np.maximum(times[sharing], loci), np.inf)  # bytes per cluster
    joined, group, positions, size = [], [clusters[0]], len(clusters[0]), reads[0]
    for cluster, its_reads in zip(clusters[1:], reads[1:], strict=True):
        wider, more = positions + len(cluster), size + its_reads
        if more * wider <= FLANK_JOIN_COST and wider <= FLANK_JOIN_POSITIONS:
            group.append(cluster)
            positions, size = wider, more
            continue
        joined.append(FlankCluster.joined(group))
        group, positions, size = [cluster], len(cluster), its_reads
    joined.append(FlankCluster.joined(group))
    return joined


def _window_offsets(linear: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """The file offset (compressed bytes) where the reads of each 16 kb window start; -1 where the index does not
    say (past its end, or an unfilled window)."""
    inside = windows < len(linear)
    offsets = np.zeros(len(windows), dtype=np.uint64)
    offsets[inside] = linear[windows[inside]]
    known = inside & (offsets != 0) & (offsets != np.uint64(2**64 - 1))
    return np.where(known, (offsets >> np.uint64(16)).astype(np.int64), -1)


# Compressed bytes of reads times positions a joined cluster of flank positions may hold: a template's reads take
# about 300 compressed bytes, so about 14,000 template-position cells, which the flank kernel completes in tens
# of microseconds (a sparse genome-wide BAM joins a few loci's flanks; a capture target's thousands of reads per
# locus, none). Positions at most: about five loci's flanks measured fastest.
FLANK_JOIN_COST = 1 << 22
FLANK_JOIN_POSITIONS = 256


def _first_position(cluster: Sequence[Locus]) -> int:
    """A cluster's first 1-based position (of a cluster of flank positions without making it a `Locus`)."""
    return int(cluster.pos[0]) if isinstance(cluster, FlankCluster) else cluster[0].pos


def _earliest(a: int | None, b: int | None) -> int | None:
    """The earlier of two offsets where reads start (None: no read; -1: unknown, which makes the run unknown)."""
    if a == -1 or b == -1:
        return -1
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)


@dataclass
class _RunLayout:
    """The loci of a run's clusters as the record kernel takes them: sorted by position (clusters of panel loci
    and of flank positions may interleave), each with its cluster, its kind (1: a flank position, whose
    observations go to a table of their own) and its slot, its index among the loci of its kind, which its
    observations carry (so that each cluster's loci are consecutive slots of its table)."""

    loci: np.ndarray  # 0-based positions, sorted
    shapes: np.ndarray
    inserted: np.ndarray
    cluster_of_locus: np.ndarray
    kind: np.ndarray
    slot: np.ndarray
    cluster_of_slot: tuple[np.ndarray, np.ndarray]  # per kind
    first_slot: np.ndarray  # per cluster
    by_cluster: np.ndarray  # the loci cluster by cluster (`loci_of`)
    bounds: np.ndarray
    begins: np.ndarray
    ends: np.ndarray
    flank_refs: np.ndarray | None  # REF bases (ASCII) where the run has clusters of flank positions
    flank: list[bool]

    @classmethod
    def of(cls, run: _Run) -> _RunLayout:
        sizes = np.array([len(cluster) for cluster in run.clusters], dtype=np.int64)
        positions = _joined_arrays(run.clusters, _positions, lambda locus: locus.pos) - 1
        order = np.argsort(positions, kind="stable")  # a cluster's loci keep their order
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        shapes, inserted = _shapes(run.clusters, bounds)
        cluster_of_locus = np.repeat(np.arange(len(sizes)), sizes)[order]
        kind = np.array(run.flank, dtype=np.int64)[cluster_of_locus]
        slot = np.empty(len(kind), dtype=np.int64)
        for k in (0, 1):
            slot[kind == k] = np.arange(int((kind == k).sum()))
        by_cluster = np.argsort(cluster_of_locus, kind="stable")
        refs = (
            _joined_arrays(run.clusters, _refs, lambda locus: ord(locus.ref[0]))[order]
            if any(run.flank)
            else None
        )
        return cls(
            loci=positions[order],
            shapes=shapes[order],
            inserted=inserted,
            cluster_of_locus=cluster_of_locus,
            kind=kind,
            slot=slot,
            cluster_of_slot=(cluster_of_locus[kind == 0], cluster_of_locus[kind == 1]),
            first_slot=slot[by_cluster[bounds[:-1]]],
            by_cluster=by_cluster,
            bounds=bounds,
            begins=positions[bounds[:-1]],
            ends=positions[bounds[1:] - 1] + 1,
            flank_refs=refs,
            flank=run.flank,
        )

    def loci_of(self, cluster: int) -> np.ndarray:
        """The indices of a cluster's loci among the sorted loci, in the cluster's order."""
        return self.by_cluster[self.bounds[cluster] : self.bounds[cluster + 1]]


def _joined_arrays(
    clusters: list[Sequence[Locus]],
    of_cluster: Callable[[Sequence[Locus]], np.ndarray],
    of_locus: Callable[[Locus], int],
) -> np.ndarray:
    """`of_cluster` of every cluster, joined: runs of clusters of panel loci (a genome-wide signature's thousands
    of one-locus clusters) read `of_locus` of each locus in one pass, not an array per cluster."""
    parts = []
    for is_flank, group in itertools.groupby(clusters, key=lambda cluster: isinstance(cluster, FlankCluster)):
        if is_flank:
            parts.extend(of_cluster(cluster) for cluster in group)
        else:
            parts.append(
                np.fromiter((of_locus(locus) for cluster in group for locus in cluster), dtype=np.int64)
            )
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _positions(cluster: Sequence[Locus]) -> np.ndarray:
    """A cluster's 1-based positions: a cluster of flank positions holds them as an array already."""
    if isinstance(cluster, FlankCluster):
        return cluster.pos
    return np.array([locus.pos for locus in cluster], dtype=np.int64)


def _refs(cluster: Sequence[Locus]) -> np.ndarray:
    """The first REF base (ASCII) of each of a cluster's loci."""
    if isinstance(cluster, FlankCluster):
        return cluster.ref
    return np.array([ord(locus.ref[0]) for locus in cluster], dtype=np.int64)


def _shapes(clusters: list[Sequence[Locus]], bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`locus_shapes` of the clusters' loci, in the clusters' order (cluster i's from row bounds[i]): flank
    positions are SNV-shaped (rows of 0)."""
    shapes = np.zeros((bounds[-1], 4), dtype=np.int64)
    panel = [i for i, cluster in enumerate(clusters) if not isinstance(cluster, FlankCluster)]
    if not panel:
        return shapes, np.zeros(1, dtype=np.uint8)
    loci = [locus for i in panel for locus in clusters[i]]
    is_panel = np.zeros(len(clusters), dtype=bool)
    is_panel[panel] = True
    rows = np.flatnonzero(np.repeat(is_panel, np.diff(bounds)))
    shapes[rows], inserted = locus_shapes(loci)
    return shapes, inserted


# A batch of clusters completed together (one return from the record kernel, one molecule build) holds about this
# many observations, at most BATCH_CLUSTERS clusters: a genome-wide signature's loci, each a cluster of ~30 reads,
# cost more in the Python around each cluster than in reading it. A capture target's clusters, thousands of reads
# each, stay one per batch.
BATCH_ROWS = 4096
BATCH_CLUSTERS = 64


class _Batches:
    """Where each batch of a run's clusters ends. A batch is consecutive clusters of panel loci, none of them a
    piece of a longer cluster (`previous`), their ends in order (so the batch is complete when its last one is);
    its size follows the observations per cluster of the batches so far (one cluster until some are seen). A
    cluster of flank positions is a batch of its own: its kernel counts one cluster's positions at a time, and
    taking one cluster's rows out of a table that holds the next ones' costs a pass over them all."""

    def __init__(self, layout: _RunLayout, previous: np.ndarray) -> None:
        self.ends = layout.ends
        self.alone = (previous >= 0) | np.array(layout.flank, dtype=bool)
        self.alone[previous[previous >= 0]] = True  # a piece, or a cluster with a piece after it
        self.clusters = 0
        self.rows = 0

    def end(self, first: int) -> int:
        """The last cluster of the batch that starts at `first`."""
        n = len(self.ends)
        if first >= n or self.alone[first] or not self.clusters:
            return min(first, max(n - 1, 0))
        size = min(BATCH_CLUSTERS, max(1, BATCH_ROWS * self.clusters // max(self.rows, 1)))
        last = first
        while (
            last + 1 < min(n, first + size)
            and not self.alone[last + 1]
            and self.ends[last + 1] >= self.ends[last]
        ):
            last += 1
        return last

    def observe(self, first: int, last: int, rows: int) -> None:
        """The batch `first`..`last` held `rows` observations of panel loci."""
        self.clusters += last - first + 1
        self.rows += rows


def _finish_batch(
    tables: tuple[_Table, _Table], first: int, last: int, layout: _RunLayout, depth: np.ndarray,
    params: np.ndarray, fraction: float, counters: np.ndarray,
) -> list[ClusterRows | FlankTally | None]:  # fmt: skip
    """Build the molecules of the complete clusters `first` to `last` (a `_Batches` batch: one cluster of flank
    positions, or consecutive clusters of panel loci) from their observations and drop these from the table of
    their kind, counting the consensus molecules dropped in `counters`. A cluster of flank positions gives its
    molecules counted (flank positions have no read statistics); a cluster whose read names collide in the hash
    gives None (the reference engine then counts the run)."""
    table = tables[layout.flank[first]]
    ints, hashes, kept = _take_batch(table, first, last, layout)
    if layout.flank[first]:
        found = [
            _cluster_molecules(table, ints, hashes, first, layout, depth, params, fraction, counters[first])
        ]
    else:
        found = _panel_molecules(table, ints, hashes, first, last, layout, depth, params, fraction, counters)
    # the kept rows' names and UMIs (none: the arrays start over) moved to the front, once the taken rows' are
    # read: where clusters chain (dense loci, flank positions), they would otherwise pile up over a whole contig
    table.state[S_NAMES], table.state[S_UMIS] = _pack_bytes(table.ints, kept, table.names, table.umis)
    return found


def _take_batch(table: _Table, low: int, high: int, layout: _RunLayout) -> tuple[np.ndarray, np.ndarray, int]:
    """The observations of clusters `low` to `high` taken out of the table: (their ints, their hashes, rows
    kept). A table's clusters complete in order, so all its rows are theirs unless a read already reached a
    later cluster, whose rows stay."""
    n = int(table.state[S_ROWS])
    after = layout.first_slot[high] + len(layout.loci_of(high))  # the first slot past the batch
    if table.state[S_LAST] < after:
        ints, hashes, kept = table.ints[:n], table.hashes[:n], 0
    else:
        if len(table.copied) < N_COLUMNS:  # a read's first row there must hold its fields
            _fill_copies(table.ints, table.hashes, n)
        owner = layout.cluster_of_slot[layout.flank[low]]
        ints, hashes, kept, last = _take_rows(table.ints, table.hashes, n, owner, low, high)
        table.state[S_LAST] = last
    table.state[S_ROWS] = kept
    return ints, hashes, kept


def _panel_molecules(
    table: _Table, ints: np.ndarray, hashes: np.ndarray, low: int, high: int, layout: _RunLayout,
    depth: np.ndarray, params: np.ndarray, fraction: float, counters: np.ndarray,
) -> list[ClusterRows | None]:  # fmt: skip
    """The molecules of consecutive clusters of panel loci built at once from their observations, then split
    per cluster (molecules are built per locus, so they are the same as one by one). Should two read names
    collide in the hash, each cluster is built alone."""
    rows, dropped, collision = _molecules(ints, hashes, table.names, table.umis, len(ints), params, fraction)
    if collision:
        owner = layout.cluster_of_slot[0][ints[:, O_LOCUS]]
        found = []
        for c in range(low, high + 1):
            mine = owner == c
            found.append(
                _cluster_molecules(
                    table, ints[mine], hashes[mine], c, layout, depth, params, fraction, counters[c]
                )
            )
        return found
    counters[low, len(STAT_FIELDS) - N_DROPPED :] += dropped
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    starts = layout.first_slot[low : high + 1]
    bounds = np.searchsorted(rows[:, 0], np.r_[starts, starts[-1] + len(layout.loci_of(high))])
    rows[:, 0] -= np.repeat(starts, np.diff(bounds))  # each cluster's loci numbered from 0
    loci = layout.bounds[low : high + 2]
    depths = depth[layout.by_cluster[loci[0] : loci[-1]]]
    # slices, not np.split: a batch of thousands of small clusters
    at, of = bounds.tolist(), (loci - loci[0]).tolist()
    return [(rows[at[k] : at[k + 1]], depths[of[k] : of[k + 1]]) for k in range(len(at) - 1)]


def _cluster_molecules(
    table: _Table, ints: np.ndarray, hashes: np.ndarray, cluster: int, layout: _RunLayout, depth: np.ndarray,
    params: np.ndarray, fraction: float, counters: np.ndarray,
) -> ClusterRows | FlankTally | None:  # fmt: skip
    """The molecules of one cluster's observation rows `ints` and `hashes` (_finish_batch); None for a cluster
    of panel loci whose read names collide in the hash."""
    loci = layout.loci_of(cluster)
    slots = layout.first_slot[cluster] + np.arange(len(loci))  # their places in the table of their kind
    if layout.flank[cluster]:
        # the flank kernel builds on this module's kernels: imported here, once both are loaded
        from mrdtrack.counting.flank_kernel import cluster_flank_tally

        refs = layout.flank_refs[loci]
        return cluster_flank_tally(ints, hashes, table.names, table.umis, slots, refs, params, fraction)
    rows, dropped, collision = _molecules(ints, hashes, table.names, table.umis, len(ints), params, fraction)
    if collision:
        return None
    counters[len(STAT_FIELDS) - N_DROPPED :] += dropped
    rows[:, 0] -= slots[0]
    return rows[np.argsort(rows[:, 0], kind="stable")], depth[loci]


@njit(cache=True)
def _take_rows(ints, hashes, n, owner, low, high):  # pragma: no cover - compiled
    """The first `n` rows of the table that belong to clusters `low` to `high` (`owner`: the cluster of each
    slot), taken out, the others moved up in order: (their ints, their hashes, rows kept, greatest slot among
    them). One pass: a genome-wide sample completes ~20,000 clusters of flank positions whose reads reach the
    next one."""
    mine = 0
    for row in range(n):
        if low <= owner[ints[row, O_LOCUS]] <= high:
            mine += 1
    taken_ints = np.empty((mine, ints.shape[1]), dtype=ints.dtype)
    taken_hashes = np.empty(mine, dtype=hashes.dtype)
    taken = kept = 0
    last = -1
    for row in range(n):
        if low <= owner[ints[row, O_LOCUS]] <= high:
            taken_ints[taken] = ints[row]
            taken_hashes[taken] = hashes[row]
            taken += 1
        else:
            if kept != row:
                ints[kept] = ints[row]
                hashes[kept] = hashes[row]
            last = max(last, ints[kept, O_LOCUS])
            kept += 1
    return taken_ints, taken_hashes, kept, last


@njit(cache=True)
def _pack_bytes(ints, n, names, umis):  # pragma: no cover - compiled
    """Move the names and UMIs of the first `n` rows to the front of their byte arrays, in order, and point the
    rows at their new places: (name bytes used, UMI bytes used)."""
    return _packed(ints, n, O_NAME, O_NAME_LEN, names), _packed(ints, n, O_UMI, O_UMI_LEN, umis)


@njit(cache=True, inline="always")
def _packed(ints, n, at, length, data):  # pragma: no cover - compiled
    """_pack_bytes of one byte array (offsets in column `at`, lengths in `length`); the bytes used. A read's rows
    share its bytes and rows keep the order their reads came in, so every move is to an earlier place. (Reads
    after an empty UMI or name start where it does, hence the length in telling reads apart.)"""
    used, old, old_length, new = 0, -1, -1, -1
    for row in range(n):
        if ints[row, at] != old or ints[row, length] != old_length:  # a read's first row among those kept
            old, old_length, new = ints[row, at], ints[row, length], used
            for i in range(old_length):
                data[new + i] = data[old + i]
            used += old_length
        ints[row, at] = new
    return used


# The columns of a read's first observation row copied to its other rows: all of them for panel loci; the read's
# identity for flank positions, whose kernel reads the other columns of a read's first row only.
ALL_COLUMNS = np.arange(N_COLUMNS)
FLANK_COPIES = np.array([O_NAME, O_NAME_LEN, O_KEYBIT])


class _Table:
    """Growable observation arrays filled by `_scan_records`, which copies the `copied` columns of a read's first
    row to its other rows."""

    def __init__(self, copied: np.ndarray = ALL_COLUMNS, capacity: int = 1 << 12) -> None:
        self.copied = copied
        self.ints = np.zeros((capacity, N_COLUMNS), dtype=np.int64)
        self.hashes = np.zeros(capacity, dtype=np.uint64)
        self.names = np.zeros(capacity * 32, dtype=np.uint8)
        self.umis = np.zeros(capacity * 16, dtype=np.uint8)
        self.state = np.zeros(N_STATE, dtype=np.int64)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The table as the record kernel takes it."""
        return self.ints, self.hashes, self.names, self.umis, self.state, self.copied

    def grow_if_asked(self) -> None:
        """Double the arrays where the record kernel found no room (S_GROW), keeping what is used of them."""
        if not self.state[S_GROW]:
            return
        self.state[S_GROW] = 0
        used = {"ints": S_ROWS, "hashes": S_ROWS, "names": S_NAMES, "umis": S_UMIS}
        for name, slot in used.items():
            old = getattr(self, name)
            new = np.empty((2 * len(old), *old.shape[1:]), dtype=old.dtype)  # rows past `used` are never read
            new[: self.state[slot]] = old[: self.state[slot]]
            setattr(self, name, new)


def locus_shapes(loci: list[Locus]) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' view of the loci: a row of L_* columns per locus, and the inserted bases of all of them."""
    shapes = np.zeros((len(loci), 4), dtype=np.int64)
    inserted = bytearray()
    for row, locus in enumerate(loci):
        if locus.is_indel:  # an SNV's row stays all zero
            shapes[row] = (1, locus.deleted, len(inserted), len(locus.inserted))
            inserted += locus.inserted.encode()
    return shapes, np.frombuffer(bytes(inserted) or b"\0", dtype=np.uint8).copy()


def bai_linear_index(path: str) -> dict[int, np.ndarray] | None:
    """Each contig's BAI linear index (virtual offsets, one per 16 kb window), or None without a .bai file.
    Read once per process and index file (its arrays are read-only): a genome-wide sample's blocks of loci, and
    their chunks on worker processes, each start a scanner."""
    candidates = (f"{path}.bai", f"{os.path.splitext(path)[0]}.bai")
    index_path = next((p for p in candidates if os.path.exists(p)), None)
    if index_path is None:
        return None
    found = os.stat(index_path)
    return _linear_index(index_path, found.st_size, found.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _linear_index(index_path: str, _size: int, _modified: int) -> dict[int, np.ndarray] | None:
    """`bai_linear_index` of the index file as it is (its size and time in the cache's key)."""
    with open(index_path, "rb") as handle:
        data = handle.read()
    if data[:4] != b"BAI\x01":
        return None
    (n_ref,) = struct.unpack_from("<i", data, 4)
    offset = 8
    linear = {}
    for tid in range(n_ref):
        (n_bin,) = struct.unpack_from("<i", data, offset)
        offset += 4
        for _ in range(n_bin):
            _bin, n_chunk = struct.unpack_from("<Ii", data, offset)
            offset += 8 + 16 * n_chunk
        (n_intv,) = struct.unpack_from("<i", data, offset)
        offset += 4
        linear[tid] = np.frombuffer(data, dtype="<u8", count=n_intv, offset=offset)
        offset += 8 * n_intv
    return linear


def first_offset(linear: np.ndarray, position0: int) -> int | None:
    """The virtual offset before which no read overlapping `position0` starts; None when no read can, -1 when
    the index does not say (an unfilled window)."""
    window = position0 >> LINEAR_SHIFT
    if window >= len(linear):
        return None
    offset = int(linear[window])
    return -1 if offset in (0, 2**64 - 1) else offset


def _per_locus(rows: np.ndarray, depth: np.ndarray) -> list[LocusMolecules]:
    """ClusterRows as one LocusMolecules per locus (views of the rows)."""
    bounds = np.searchsorted(rows[:, 0], np.arange(len(depth) + 1))
    return [
        LocusMolecules(
            bases=rows[a:b, 1],
            read1_forward=rows[a:b, 2].astype(bool),
            lengths=rows[a:b, 3],
            family_sizes=rows[a:b, 4],
            reads=int(reads),
            fragments=rows[a:b, 5],
        )
        for a, b, reads in zip(bounds[:-1], bounds[1:], depth, strict=True)
    ]


# ---------------------------------------------------------------------------------------------------------------
# Compiled kernels. They mirror molecules._read_cluster, collapse and family_consensus line for line.


@njit(cache=True, inline="always")
def _i32(buffer, at):
    value = _u32(buffer, at)
    return value - 4294967296 if value >= 2147483648 else value


@njit(cache=True, inline="always")
def _u16(buffer, at):
    return np.int64(buffer[at]) | (np.int64(buffer[at + 1]) << 8)


@njit(cache=True, inline="always")
def _u32(buffer, at):
    return (
        np.int64(buffer[at])
        | (np.int64(buffer[at + 1]) << 8)
        | (np.int64(buffer[at + 2]) << 16)
        | (np.int64(buffer[at + 3]) << 24)
    )


@njit(cache=True)
def _query_offset(buffer, cigar_at, n_cigar, start, position0):
    """molecules.query_position on a BAM record's CIGAR; -1 for None."""
    ref = start
    query = 0
    for i in range(n_cigar):
        word = _u32(buffer, cigar_at + 4 * i)
        operation = word & 0xF
        length = word >> 4
        if operation == 0 or operation == 7 or operation == 8:
            if position0 < ref + length:
                return query + position0 - ref if position0 >= ref else -1
            ref += length
            query += length
        elif operation == 1 or operation == 4:
            query += length
        elif operation == 2 or operation == 3:
            if position0 < ref + length:
                return -1
            ref += length
    return -1


@njit(cache=True)
def _cigar_operation(buffer, cigar_at, index):
    word = _u32(buffer, cigar_at + 4 * index)
    return word & 0xF, word >> 4


@njit(cache=True, inline="always")
def _is_aligned(operation):
    return operation == 0 or operation == 7 or operation == 8


@njit(cache=True)
def _indel_call(buffer, cigar_at, n_cigar, start, anchor, deleted, inserted, inserted_at, inserted_length,
                seq_at, seq_length, seq_codes):  # fmt: skip
    """molecules.indel_call on a BAM record: (REF_CODE, ALT_CODE, OTHER_CODE or NO_CALL, the anchor's index in
    the read, the length of an insertion right after the anchor)."""
    ref = start
    query = 0
    index = 0
    length = 0
    found = False
    while index < n_cigar:  # find the operation that aligns the anchor
        operation, length = _cigar_operation(buffer, cigar_at, index)
        if _is_aligned(operation):
            if anchor < ref + length:
                found = True
                break
            ref += length
            query += length
        elif operation == 1 or operation == 4:
            query += length
        elif operation == 2 or operation == 3:
            if anchor < ref + length:
                return NO_CALL, 0, 0
            ref += length
        index += 1
    if not found or anchor < ref:
        return NO_CALL, 0, 0
    anchor_query = query + anchor - ref
    aligned_left = ref + length - anchor - 1
    position = anchor + 1
    query = anchor_query + 1
    last = anchor + max(deleted, 1)
    while position <= last:
        if aligned_left > 0:
            step = min(aligned_left, last - position + 1)
            position += step
            query += step
            aligned_left -= step
            continue
        index += 1
        if index == n_cigar:
            return NO_CALL, 0, 0
        operation, length = _cigar_operation(buffer, cigar_at, index)
        if _is_aligned(operation):
            aligned_left = length
        elif operation == 1 or operation == 2:
            right_after_anchor = position == anchor + 1
            insertion = length if operation == 1 and right_after_anchor else 0
            if right_after_anchor and (
                (operation == 2 and deleted == length)
                or (operation == 1 and inserted_length == length and _read_has(
                    buffer, seq_at, seq_length, query, inserted, inserted_at, inserted_length, seq_codes))
            ):  # fmt: skip
                return _after_alt(buffer, cigar_at, n_cigar, index), anchor_query, insertion
            return OTHER_CODE, anchor_query, insertion
        else:
            return NO_CALL, 0, 0
    return REF_CODE, anchor_query, 0


@njit(cache=True)
def _read_has(buffer, seq_at, seq_length, query, bases, bases_at, n, seq_codes):
    """Whether the read's bases from `query` are bases[bases_at : bases_at + n]."""
    if query + n > seq_length:
        return False
    for i in range(n):
        code = np.int64(buffer[seq_at + (query + i) // 2])
        base = seq_codes[(code >> 4) if (query + i) % 2 == 0 else (code & 0xF)]
        if base != bases[bases_at + i]:
            return False
    return True


@njit(cache=True)
def _after_alt(buffer, cigar_at, n_cigar, index):
    """molecules._after_alt."""
    if index + 1 == n_cigar:
        return NO_CALL
    following, _ = _cigar_operation(buffer, cigar_at, index + 1)
    if _is_aligned(following):
        return ALT_CODE
    return OTHER_CODE if following == 1 or following == 2 else NO_CALL


@njit(cache=True)
def _find_tag(buffer, at, end, tag0, tag1):
    """(type, value offset) of a tag in a record's aux data (a Z value ends at its NUL); type 0 when absent, -1
    when the aux data cannot be read."""
    while at + 3 <= end:
        kind = np.int64(buffer[at + 2])
        value = at + 3
        if kind == 65 or kind == 99 or kind == 67:  # A c C
            size = 1
        elif kind == 115 or kind == 83:  # s S
            size = 2
        elif kind == 105 or kind == 73 or kind == 102:  # i I f
            size = 4
        elif kind == 90 or kind == 72:  # Z H
            size = 0
            while value + size < end and buffer[value + size] != 0:
                size += 1
            size += 1
        elif kind == 66 and value + 5 <= end:  # B
            sub = buffer[value]
            width = 1 if sub == 99 or sub == 67 or sub == 65 else 2 if sub == 115 or sub == 83 else 4
            size = 5 + _u32(buffer, value + 1) * width
        else:
            return np.int64(-1), np.int64(0)
        if value + size > end:
            return np.int64(-1), np.int64(0)
        if buffer[at] == tag0 and buffer[at + 1] == tag1:
            return kind, value
        at = value + size
    return np.int64(0), np.int64(0)


@njit(cache=True)
def _tag_int(buffer, kind, at):
    if kind == 99:  # c
        value = np.int64(buffer[at])
        return value - 256 if value >= 128 else value
    if kind == 67:  # C
        return np.int64(buffer[at])
    if kind == 115:  # s
        value = _u16(buffer, at)
        return value - 65536 if value >= 32768 else value
    if kind == 83:  # S
        return _u16(buffer, at)
    if kind == 105:  # i
        return _i32(buffer, at)
    return _u32(buffer, at)  # I


@njit(cache=True)
def _scan_records(
    buffer, offset, tid, loci, shapes, inserted, cluster_of_locus, begins, ends, reach_begins, reach_ends,
    previous, params, umi_tag, seq_codes, counters, depth, kind, slot, panel_table, flank_table,
):  # fmt: skip
    """Parse whole records from `offset`, adding an observation per read and locus to the table of the locus's
    `kind` (0: panel loci, 1: flank positions; each table as _Table.arrays): a read's first observation in a
    table holds all its fields, the others its `copied` columns, its locus's `slot` and its base. Stops when the
    open batch (the panel table's S_OPEN to S_STOP) is complete (CLUSTER_DONE), all are (RUN_DONE), the buffer ends
    (NEED_DATA), a table is full (OUT_OF_ROOM; its S_GROW set) or a record needs the reference engine. Returns
    (status, offset of the first record not parsed).

    A read counts in the statistics of every cluster whose fetch region it overlaps, as with one `fetch` per
    cluster; the pieces of one cluster (`previous`: each piece's piece before it, or -1) count it once, in the
    first of them it overlaps. The clusters are complete in their order; they need not be sorted by end nor
    apart from one another (clusters of panel loci and of flank positions read together): `reach_begins` (the
    least begin from each cluster on) and `reach_ends` (the greatest end up to each) bound the clusters a read
    can overlap."""
    drop_mask, min_mapq, min_baseq = params[P_DROP_MASK], params[P_MIN_MAPQ], params[P_MIN_BASEQ]
    proper_pair, mode = params[P_PROPER_PAIR], params[P_MODE]
    n_clusters = begins.shape[0]
    size = buffer.shape[0]
    panel_state, flank_state = panel_table[4], flank_table[4]  # panel_state holds the run's open cluster
    capacity = _capacity(panel_table, flank_table)  # bound once: per-record work binds no array
    while True:
        if panel_state[S_OPEN] >= n_clusters:
            return RUN_DONE, offset
        if offset + 4 > size:
            return NEED_DATA, offset
        block_size = _i32(buffer, offset)
        if block_size < 32:
            return CORRUPT, offset
        record_end = offset + 4 + block_size
        if record_end > size:
            return NEED_DATA, offset
        r = offset + 4
        start = _i32(buffer, r + 4)
        if _i32(buffer, r) != tid or start >= ends[panel_state[S_STOP]]:
            return CLUSTER_DONE, offset
        name_length = np.int64(buffer[r + 8])
        mapq = np.int64(buffer[r + 9])
        n_cigar = _u16(buffer, r + 12)
        flag = _u16(buffer, r + 14)
        seq_length = _i32(buffer, r + 16)
        cigar_at = r + 32 + name_length
        if seq_length < 0 or cigar_at + 4 * n_cigar + (seq_length + 1) // 2 + seq_length > record_end:
            return CORRUPT, offset
        reference_length = 0
        for i in range(n_cigar):
            word = _u32(buffer, cigar_at + 4 * i)
            operation = word & 0xF
            if operation == 0 or operation == 2 or operation == 3 or operation == 7 or operation == 8:
                reference_length += word >> 4
        fetch_end = start + reference_length if (flag & 0x4) == 0 and n_cigar > 0 else start + 1
        first_cluster = _search_on(reach_ends, start, panel_state[S_NEXT_CLUSTER], True)
        panel_state[S_NEXT_CLUSTER] = first_cluster
        end_cluster = _search_from(reach_begins, fetch_end, first_cluster, False)
        if not _overlaps_any(begins, ends, first_cluster, end_cluster, start, fetch_end):
            offset = record_end
            continue
        filtered = flag & drop_mask or mapq < min_mapq or (proper_pair and (flag & 0x3) == 0x1)
        end = start + reference_length
        first = _search_on(loci, start, panel_state[S_NEXT_LOCUS], False)
        panel_state[S_NEXT_LOCUS] = first
        last = _search_from(loci, end, first, False)
        if not filtered and not (
            _room(panel_state, capacity[0], last - first) & _room(flank_state, capacity[1], last - first)
        ):
            return OUT_OF_ROOM, offset
        for cluster in range(first_cluster, end_cluster):
            if ends[cluster] <= start or begins[cluster] >= fetch_end:
                continue
            if previous[cluster] >= 0 and start < ends[previous[cluster]]:  # counted in the piece before
                continue
            counters[cluster, 0] += 1
            if filtered:
                counters[cluster, _filter_slot(flag, mapq, mode, min_mapq)] += 1
        if filtered:
            offset = record_end
            continue
        if n_cigar == 0:
            return NEEDS_REFERENCE, offset  # pysam has no reference_end here; let it say so
        if _cigar_in_tag(buffer, cigar_at, n_cigar, seq_length):
            return NEEDS_REFERENCE, offset
        if first == last:
            offset = record_end
            continue
        seq_at = cigar_at + 4 * n_cigar
        qual_at = seq_at + (seq_length + 1) // 2
        tags_at = qual_at + seq_length
        has_qualities = seq_length > 0 and buffer[qual_at] != 0xFF
        for k in range(2):  # panel loci, flank positions
            if not _has_kind(kind, first, last, k):
                continue
            ints, hashes, names, umis, state, copied = panel_table if k == 0 else flank_table
            row_of_read = -1
            for index in range(first, last):
                if kind[index] != k:
                    continue
                indel = shapes[index, L_INDEL] != 0
                if indel:
                    call, query, insertion = _indel_call(
                        buffer, cigar_at, n_cigar, start, loci[index], shapes[index, L_DELETED], inserted,
                        shapes[index, L_INSERTED_AT], shapes[index, L_INSERTED_LEN], seq_at, seq_length, seq_codes,
                    )  # fmt: skip
                    if call == NO_CALL:
                        continue
                else:
                    query = _query_offset(buffer, cigar_at, n_cigar, start, loci[index])
                    if query < 0:
                        continue
                    call, insertion = NO_CALL, 0
                if seq_length == 0:
                    return NEEDS_REFERENCE, offset
                depth[index] += 1
                row = state[S_ROWS]
                if row_of_read < 0:
                    status = _describe_read(
                        buffer, r, flag, start, end, tid, name_length, tags_at, record_end, params, umi_tag, ints,
                        hashes, names, umis, state, row,
                    )  # fmt: skip
                    if status != 0:
                        return NEEDS_REFERENCE, offset
                    row_of_read = row
                else:
                    for column in copied:
                        ints[row, column] = ints[row_of_read, column]
                    hashes[row] = hashes[row_of_read]
                ints[row, O_LOCUS] = slot[index]
                state[S_ROWS] = row + 1
                state[S_LAST] = max(state[S_LAST], slot[index])
                if has_qualities and _low_quality(buffer, qual_at, query, 1 + insertion, min_baseq):
                    counters[cluster_of_locus[index], 8] += 1
                    ints[row, O_BASE] = NO_CALL
                    continue
                if not indel:
                    code = np.int64(buffer[seq_at + query // 2])
                    call = np.int64(seq_codes[(code >> 4) if query % 2 == 0 else (code & 0xF)])
                ints[row, O_BASE] = call
        offset = record_end


@njit(cache=True, inline="always")
def _search_on(array, value, previous, right):
    """np.searchsorted(array, value, "right" if right else "left"), searched from the answer for the record
    before (`previous`). Records come sorted by position, so the answers move forward a little at a time: a
    binary search over the whole array for each of millions of records costs more than parsing them. Exact for
    any record order (one that goes back starts from the beginning)."""
    if previous > 0 and not _before(array[previous - 1], value, right):
        previous = 0
    return _search_from(array, value, previous, right)


@njit(cache=True, inline="always")
def _search_from(array, value, at, right):
    """The first index from `at` on where sorted `array` holds a value above (right) or at least (not right)
    `value`; np.searchsorted's answer when that is `at` or later. Gallops: indices at, at + 1, at + 3, at + 7, ...
    until one is past `value`, then halves the last step, so a nearby answer costs a few comparisons."""
    n = array.shape[0]
    low, step = at, 1
    while low + step - 1 < n and _before(array[low + step - 1], value, right):
        low += step
        step *= 2
    high = min(low + step - 1, n)
    while low < high:
        middle = (low + high) // 2
        if _before(array[middle], value, right):
            low = middle + 1
        else:
            high = middle
    return low


@njit(cache=True, inline="always")
def _before(element, value, right):
    """Whether a sorted array's `element` lies before np.searchsorted's answer for `value` (side "right" if
    `right`, else "left")."""
    return element <= value if right else element < value


@njit(cache=True, inline="always")
def _has_kind(kind, first, last, k):
    """Whether one of the loci first..last - 1 is of kind k."""
    for index in range(first, last):  # noqa: SIM110 (numba compiles loops)
        if kind[index] == k:
            return True
    return False


@njit(cache=True, inline="always")
def _capacity(panel_table, flank_table):
    """Each table's (_Table.arrays) room in observations, name bytes and UMI bytes."""
    capacity = np.empty((2, 3), dtype=np.int64)
    for k, table in enumerate((panel_table, flank_table)):
        capacity[k, 0], capacity[k, 1], capacity[k, 2] = (
            table[0].shape[0],
            table[2].shape[0],
            table[3].shape[0],
        )
    return capacity


@njit(cache=True, inline="always")
def _room(state, capacity, rows):
    """Whether a table with this state and capacity (_capacity) has room for `rows` more observations and a
    read's name and UMI; if not, S_GROW is set in its state."""
    if (
        state[S_ROWS] + rows > capacity[0]
        or state[S_NAMES] + 256 > capacity[1]
        or state[S_UMIS] + 256 > capacity[2]
    ):
        state[S_GROW] = 1
        return False
    return True


@njit(cache=True, inline="always")
def _overlaps_any(begins, ends, first_cluster, end_cluster, start, fetch_end):
    """Whether a read from `start` to `fetch_end` overlaps one of the clusters first_cluster..end_cluster - 1."""
    for cluster in range(first_cluster, end_cluster):  # noqa: SIM110 (numba compiles loops)
        if ends[cluster] > start and begins[cluster] < fetch_end:
            return True
    return False


@njit(cache=True)
def _fill_copies(ints, hashes, n):
    """Copy each read's fields from its first row to its other rows, where the record kernel copied some
    columns only (_Table.copied)."""
    for row in range(1, n):
        if _same_read(ints, hashes, row - 1, row):
            for column in range(N_COLUMNS):
                if column != O_LOCUS and column != O_BASE:
                    ints[row, column] = ints[row - 1, column]


@njit(cache=True, inline="always")
def _low_quality(buffer, qual_at, query, n, min_baseq):
    """Whether any of the n base qualities from `query` is below min_baseq (molecules._read_cluster)."""
    for i in range(n):  # noqa: SIM110 (numba compiles loops, not generator expressions)
        if buffer[qual_at + query + i] < min_baseq:
            return True
    return False


@njit(cache=True)
def _cigar_in_tag(buffer, cigar_at, n_cigar, seq_length):
    """A CIGAR too long for the record, stored in a CG tag behind a placeholder `<read length>S<n>N`."""
    if n_cigar != 2:
        return False
    first = _u32(buffer, cigar_at)
    return (first & 0xF) == 4 and (first >> 4) == seq_length and (_u32(buffer, cigar_at + 4) & 0xF) == 3


@njit(cache=True)
def _filter_slot(flag, mapq, mode, min_mapq):
    """The counters slot of a filtered read's reason, in molecules.filter_reason's order."""
    if flag & 0x4:
        return 1
    if flag & 0x100:
        return 2
    if flag & 0x800:
        return 3
    if flag & 0x200:
        return 4
    if mode == 0 and flag & 0x400:
        return 5
    if mapq < min_mapq:
        return 6
    return 7


@njit(cache=True)
def _describe_read(
    buffer, r, flag, start, end, tid, name_length, tags_at, record_end, params, umi_tag, ints, hashes, names,
    umis, state, row,
):  # fmt: skip
    """Fill an observation row's template fields (molecules._template_info); 0, or 1 when a tag is unreadable."""
    merge_mates, mode, duplex = params[P_MERGE_MATES], params[P_MODE], params[P_DUPLEX]
    mate_tid = _i32(buffer, r + 20)
    if (flag & 0x9) == 0x1 and mate_tid == tid:
        mate = _i32(buffer, r + 24)
        left = start if start <= mate else mate
        length = abs(_i32(buffer, r + 28))
        if length == 0:
            length = end - left
        read1_reverse = (flag & 0x10) != 0 if flag & 0x40 else (flag & 0x20) != 0
    else:
        left, length = start, end - start
        read1_reverse = (flag & 0x10) != 0 if (flag & 0x41) != 0x1 else (flag & 0x10) == 0
    ints[row, O_LEFT] = left
    ints[row, O_LENGTH] = length
    ints[row, O_R1FWD] = 0 if read1_reverse else 1
    ints[row, O_SIZE] = 1
    ints[row, O_SHORT] = 0
    ints[row, O_UMI_LEN] = 0
    ints[row, O_UMI] = state[S_UMIS]
    if mode == 3:
        if params[P_UMI_SOURCE] == 1:
            n = _read_name_umi(buffer, r + 32, name_length - 1, params[P_SEPARATOR], umis, state[S_UMIS])
        else:
            n = _tag_umi(buffer, tags_at, record_end, umi_tag, umis, state[S_UMIS])
        if n < 0:
            return 1
        ints[row, O_UMI_LEN] = n
        if duplex:
            _canonical_duplex_umi(umis, state[S_UMIS], n)
        state[S_UMIS] += n
    elif mode == 1:
        size = _int_tag(buffer, tags_at, record_end, 99, 68, 1)  # cD
        strands = _duplex_strands(buffer, tags_at, record_end) if params[P_MIN_STRANDS] > 0 else 2
        if size == UNREADABLE_TAG or strands < 0:
            return 1
        ints[row, O_SIZE] = size
        ints[row, O_SHORT] = (BELOW_FAMILY_SIZE if size < params[P_MIN_FAMILY] else 0) | (
            BELOW_DUPLEX_STRANDS if strands < params[P_MIN_STRANDS] else 0
        )
    name_at = state[S_NAMES]
    n = name_length - 1  # without its NUL
    fnv = np.uint64(14695981039346656037)
    for i in range(n):
        character = buffer[r + 32 + i]
        names[name_at + i] = character
        fnv = (fnv ^ np.uint64(character)) * np.uint64(1099511628211)
    key_bit = 0 if merge_mates else (1 if flag & 0x40 else 0)
    fnv = (fnv ^ np.uint64(key_bit)) * np.uint64(1099511628211)
    ints[row, O_NAME] = name_at
    ints[row, O_NAME_LEN] = n
    ints[row, O_KEYBIT] = key_bit
    hashes[row] = fnv
    state[S_NAMES] = name_at + n
    return 0


UNREADABLE_TAG = -(1 << 62)  # what _int_tag returns for a tag it cannot read


@njit(cache=True)
def _int_tag(buffer, tags_at, record_end, tag0, tag1, default):
    """An integer tag's value, `default` when absent, UNREADABLE_TAG when of another type or unreadable."""
    kind, at = _find_tag(buffer, tags_at, record_end, tag0, tag1)
    if kind == 99 or kind == 67 or kind == 115 or kind == 83 or kind == 105 or kind == 73:
        return _tag_int(buffer, kind, at)
    return default if kind == 0 else UNREADABLE_TAG


@njit(cache=True)
def _duplex_strands(buffer, tags_at, record_end):
    """molecules.duplex_strands: aD > 0 and bD > 0 count one each, neither tag one; -1 when unreadable."""
    a = _int_tag(buffer, tags_at, record_end, 97, 68, -1)  # aD
    b = _int_tag(buffer, tags_at, record_end, 98, 68, -1)  # bD
    if a == UNREADABLE_TAG or b == UNREADABLE_TAG:
        return -1
    if a == -1 and b == -1:
        return 1
    return (1 if a > 0 else 0) + (1 if b > 0 else 0)


@njit(cache=True)
def _tag_umi(buffer, tags_at, record_end, umi_tag, umis, used):
    """Copy a read's Z-type UMI tag to umis[used:]: its length (0 when absent), -1 when of another type or
    longer than 255 bytes."""
    kind, at = _find_tag(buffer, tags_at, record_end, umi_tag[0], umi_tag[1])
    if kind == 0:
        return 0
    if kind != 90:  # Z
        return -1
    n = 0
    while at + n < record_end and buffer[at + n] != 0:
        umis[used + n] = buffer[at + n]
        n += 1
        if n > 255:
            return -1
    return n


@njit(cache=True)
def _read_name_umi(buffer, name_at, name_length, separator, umis, used):
    """molecules.read_name_umi: copy what follows the name's last `separator` to umis[used:], '+' as '-'; its
    length (0 without a separator)."""
    last = -1
    for i in range(name_length):
        if buffer[name_at + i] == separator:
            last = i
    if last < 0:
        return 0
    n = name_length - last - 1
    for i in range(n):
        character = buffer[name_at + last + 1 + i]
        umis[used + i] = 45 if character == 43 else character  # '+' -> '-'
    return n


@njit(cache=True)
def _dash_at(data, a, length):
    """Where the only '-' of a UMI is, or -1 (none, or more than one): molecules._swap_halves."""
    at = -1
    for i in range(length):
        if data[a + i] == 45:
            if at >= 0:
                return -1
            at = i
    return at


@njit(cache=True)
def _swapped_byte(data, a, length, dash, i):
    """Byte i of the UMI at `a` with its halves around `dash` swapped ("A-B" -> "B-A")."""
    second = length - dash - 1
    if i < second:
        return data[a + dash + 1 + i]
    if i == second:
        return 45
    return data[a + i - second - 1]


@njit(cache=True)
def _canonical_duplex_umi(data, a, length):
    """molecules.canonical_duplex_umi in place: the smaller of "A-B" and "B-A"."""
    dash = _dash_at(data, a, length)
    if dash < 0:
        return
    for i in range(length):
        swapped = _swapped_byte(data, a, length, dash, i)
        if swapped != data[a + i]:
            if swapped < data[a + i]:
                halves = data[a : a + length].copy()
                for j in range(length):
                    data[a + j] = _swapped_byte(halves, 0, length, dash, j)
            return


@njit(cache=True)
def _within_swapped(data, a, a_length, b, b_length, max_mismatches):
    """Whether UMI `a`, its halves swapped, is within `max_mismatches` of UMI `b` (molecules.cluster_umis)."""
    dash = _dash_at(data, a, a_length)
    if dash < 0 or a_length != b_length:
        return False
    mismatches = 0
    for i in range(a_length):
        if _swapped_byte(data, a, a_length, dash, i) != data[b + i]:
            mismatches += 1
    return mismatches <= max_mismatches


@njit(cache=True)
def _same_bytes(data, a, a_length, b, b_length):
    if a_length != b_length:
        return False
    for i in range(a_length):  # noqa: SIM110 (numba compiles loops, not generator expressions)
        if data[a + i] != data[b + i]:
            return False
    return True


@njit(cache=True)
def _bytes_before(data, a, a_length, b, b_length):
    """Python's `str <` on ASCII bytes."""
    for i in range(min(a_length, b_length)):
        if data[a + i] != data[b + i]:
            return data[a + i] < data[b + i]
    return a_length < b_length


@njit(cache=True)
def _slots(n):
    """An empty open-addressing hash table for n keys (at most half full)."""
    size = 16
    while size < 2 * n:
        size *= 2
    return np.full(size, -1, dtype=np.int64)


@njit(cache=True)
def _templates(ints, hashes, names, n):
    """Merge each locus's observations of one template (read pair) into one: (each template's first row in file
    order, its observation code, the BELOW_* bits of any of its reads, collision), as `_hashed_templates`.

    A flank cluster holds tens of observations per read (one per position), so each read is looked up by name
    once (its rows are consecutive: the record kernel writes them together), and each (template, locus) is a
    cell of a dense table, not a probe of a hash table as large as the observations. Two reads whose names
    share a hash anywhere in the cluster set `collision` (the hashed merge only sees those at one locus: the
    reference engine then counts a cluster it could have counted, with the same counts)."""
    if n == 0:
        return _hashed_templates(ints, hashes, names, n)
    lowest, highest = ints[0, O_LOCUS], ints[0, O_LOCUS]
    n_reads = 1
    for row in range(1, n):
        lowest = min(lowest, ints[row, O_LOCUS])
        highest = max(highest, ints[row, O_LOCUS])
        if not _same_read(ints, hashes, row - 1, row):
            n_reads += 1
    slots = _slots(n_reads)
    mask = np.uint64(len(slots) - 1)
    named = np.empty(n_reads, dtype=np.int64)  # a row of each distinct (name, key bit)
    template_of = np.empty(n, dtype=np.int64)
    count = 0
    for row in range(n):
        if row > 0 and _same_read(ints, hashes, row - 1, row):
            template_of[row] = template_of[row - 1]
            continue
        key = hashes[row]
        slot = (key ^ (key >> np.uint64(29))) & mask
        while True:
            template = slots[slot]
            if template < 0:
                template = count
                slots[slot] = template
                named[template] = row
                count += 1
                break
            other = named[template]
            if hashes[other] == key:
                if ints[row, O_KEYBIT] != ints[other, O_KEYBIT] or not _same_bytes(
                    names,
                    ints[row, O_NAME],
                    ints[row, O_NAME_LEN],
                    ints[other, O_NAME],
                    ints[other, O_NAME_LEN],
                ):
                    return named[:0], named[:0], named[:0], True
                break
            slot = (slot + np.uint64(1)) & mask
        template_of[row] = template
    width = highest - lowest + 1
    if count * width > 8 * n + (1 << 16):  # few observations per read: the hashed merge needs less memory
        return _hashed_templates(ints, hashes, names, n)
    cells = np.full(count * width, -1, dtype=np.int64)
    firsts = np.empty(n, dtype=np.int64)
    shortfalls = np.zeros(n, dtype=np.int64)
    n_bases = np.zeros(n, dtype=np.int64)
    base1 = np.zeros(n, dtype=np.int64)
    base2 = np.zeros(n, dtype=np.int64)
    merged = 0
    for row in range(n):
        cell = template_of[row] * width + ints[row, O_LOCUS] - lowest
        template = cells[cell]
        if template < 0:
            template = merged
            cells[cell] = template
            firsts[template] = row
            merged += 1
        _add_observation(ints, row, template, shortfalls, n_bases, base1, base2)
    return firsts[:merged], _template_calls(n_bases, base1, base2, merged), shortfalls[:merged], False


@njit(cache=True, inline="always")
def _add_observation(ints, row, template, shortfalls, n_bases, base1, base2):
    """Add observation `row` to its template: its BELOW_* bits, and its base as the template's first or second."""
    shortfalls[template] |= ints[row, O_SHORT]
    base = ints[row, O_BASE]
    if base != NO_CALL:
        n_bases[template] += 1
        if n_bases[template] == 1:
            base1[template] = base
        elif n_bases[template] == 2:
            base2[template] = base


@njit(cache=True)
def _template_calls(n_bases, base1, base2, count):
    """Each template's observation code: NO_CALL without a base, DISCORDANT_CODE when its two reads disagree."""
    calls = np.empty(count, dtype=np.int64)
    for t in range(count):
        if n_bases[t] == 0:
            calls[t] = NO_CALL
        elif n_bases[t] == 2 and base1[t] != base2[t]:
            calls[t] = DISCORDANT_CODE
        else:
            calls[t] = base1[t]
    return calls


@njit(cache=True, inline="always")
def _same_read(ints, hashes, a, b):
    """Whether rows a and b carry one stored read name (so one template): rows the record kernel copied."""
    return (
        hashes[a] == hashes[b]
        and ints[a, O_NAME] == ints[b, O_NAME]
        and ints[a, O_NAME_LEN] == ints[b, O_NAME_LEN]
        and ints[a, O_KEYBIT] == ints[b, O_KEYBIT]
    )


@njit(cache=True)
def _hashed_templates(ints, hashes, names, n):
    """Merge each locus's observations of one template (read pair) into one: (each template's first row in file
    order, its observation code, the BELOW_* bits of any of its reads, collision). A hash table keyed by (locus,
    name hash), checked against the name itself: two names sharing a hash set `collision`."""
    slots = _slots(n)
    mask = np.uint64(len(slots) - 1)
    firsts = np.empty(n, dtype=np.int64)
    shortfalls = np.zeros(n, dtype=np.int64)
    n_bases = np.zeros(n, dtype=np.int64)
    base1 = np.zeros(n, dtype=np.int64)
    base2 = np.zeros(n, dtype=np.int64)
    count = 0
    for row in range(n):
        locus = ints[row, O_LOCUS]
        slot = (hashes[row] ^ (np.uint64(locus) * np.uint64(0x9E3779B97F4A7C15))) & mask
        while True:
            template = slots[slot]
            if template < 0:
                template = count
                slots[slot] = template
                firsts[template] = row
                count += 1
                break
            head = firsts[template]
            if hashes[head] == hashes[row] and ints[head, O_LOCUS] == locus:
                if ints[row, O_KEYBIT] != ints[head, O_KEYBIT] or not _same_bytes(
                    names,
                    ints[row, O_NAME],
                    ints[row, O_NAME_LEN],
                    ints[head, O_NAME],
                    ints[head, O_NAME_LEN],
                ):
                    return firsts[:0], firsts[:0], firsts[:0], True
                break
            slot = (slot + np.uint64(1)) & mask
        _add_observation(ints, row, template, shortfalls, n_bases, base1, base2)
    return firsts[:count], _template_calls(n_bases, base1, base2, count), shortfalls[:count], False


@njit(cache=True)
def _coordinate_groups(ints, heads):
    """Group templates by fragment coordinates (locus, left end, length): (members ordered by
    group, each group's start in it; the last entry is the end)."""
    n = len(heads)
    slots = _slots(n)
    mask = np.uint64(len(slots) - 1)
    group_of = np.empty(n, dtype=np.int64)
    group_head = np.empty(n, dtype=np.int64)
    n_groups = 0
    for t in range(n):
        row = heads[t]
        key = (
            np.uint64(ints[row, O_LOCUS]) * np.uint64(0x9E3779B97F4A7C15)
            ^ np.uint64(ints[row, O_LEFT]) * np.uint64(0xC2B2AE3D27D4EB4F)
            ^ np.uint64(ints[row, O_LENGTH]) * np.uint64(0x165667B19E3779F9)
        )
        slot = (key ^ (key >> np.uint64(29))) & mask
        while True:
            group = slots[slot]
            if group < 0:
                group = n_groups
                slots[slot] = group
                group_head[group] = row
                n_groups += 1
                break
            if _same_key(ints, group_head[group], row):
                break
            slot = (slot + np.uint64(1)) & mask
        group_of[t] = group
    starts = np.zeros(n_groups + 1, dtype=np.int64)
    for t in range(n):
        starts[group_of[t] + 1] += 1
    for g in range(n_groups):
        starts[g + 1] += starts[g]
    filled = starts[:-1].copy()
    members = np.empty(n, dtype=np.int64)
    for t in range(n):
        members[filled[group_of[t]]] = t
        filled[group_of[t]] += 1
    return members, starts


@njit(cache=True)
def _consensus(calls, members, fraction):
    """molecules.family_consensus over the calls of `members`."""
    observations = np.empty(len(members), dtype=np.int64)
    n = 0
    for member in members:
        if calls[member] != NO_CALL:
            observations[n] = calls[member]
            n += 1
    if n == 0:
        return NO_CALL
    if n == 1:
        return observations[0]
    first = observations[0]
    if first != DISCORDANT_CODE and fraction <= 1:
        agree = True
        for k in range(n):
            if observations[k] != first:
                agree = False
                break
        if agree:
            return first
    tally = np.zeros(256, dtype=np.int64)
    n_bases = 0
    for k in range(n):
        if observations[k] != DISCORDANT_CODE:
            tally[observations[k]] += 1
            n_bases += 1
    if n_bases == 0:
        return DISCORDANT_CODE
    top = np.argmax(tally)
    top_count = tally[top]
    tally[top] = 0
    if tally.max() == top_count:
        return DISCORDANT_CODE
    return top if top_count >= fraction * n_bases else DISCORDANT_CODE


@njit(cache=True)
def _family_size(ints, firsts, members):
    total = 0
    for member in members:
        total += ints[firsts[member], O_SIZE]
    return total


@njit(cache=True)
def _umi_families(ints, umis, firsts, members, max_mismatches, duplex):
    """molecules.cluster_umis on a coordinate group: each member's seed (an index into the group's distinct
    UMIs), and the row holding each distinct UMI."""
    g = len(members)
    distinct = np.empty(g, dtype=np.int64)  # a member carrying each distinct UMI
    counts = np.zeros(g, dtype=np.int64)
    of_member = np.empty(g, dtype=np.int64)
    n_distinct = 0
    for k in range(g):
        row = firsts[members[k]]
        found = -1
        for d in range(n_distinct):
            other = firsts[members[distinct[d]]]
            if _same_bytes(
                umis, ints[row, O_UMI], ints[row, O_UMI_LEN], ints[other, O_UMI], ints[other, O_UMI_LEN]
            ):
                found = d
                break
        if found < 0:
            distinct[n_distinct] = k
            found = n_distinct
            n_distinct += 1
        counts[found] += 1
        of_member[k] = found
    # Rank distinct UMIs by decreasing count, then by the UMI itself (insertion sort: groups are small).
    rank = np.arange(n_distinct)
    for a in range(1, n_distinct):
        current = rank[a]
        b = a - 1
        while b >= 0 and _ranks_before(ints, umis, firsts, members, distinct, counts, current, rank[b]):
            rank[b + 1] = rank[b]
            b -= 1
        rank[b + 1] = current
    seed_of = np.empty(n_distinct, dtype=np.int64)
    seeds = np.empty(n_distinct, dtype=np.int64)
    n_seeds = 0
    for position in range(n_distinct):
        d = rank[position]
        row = firsts[members[distinct[d]]]
        chosen = -1
        for s in range(n_seeds):
            seed_row = firsts[members[distinct[seeds[s]]]]
            seed_at, seed_length = ints[seed_row, O_UMI], ints[seed_row, O_UMI_LEN]
            at, length = ints[row, O_UMI], ints[row, O_UMI_LEN]
            if _within(umis, seed_at, seed_length, at, length, max_mismatches) or (
                duplex and _within_swapped(umis, seed_at, seed_length, at, length, max_mismatches)
            ):
                chosen = seeds[s]
                break
        if chosen < 0:
            seeds[n_seeds] = d
            n_seeds += 1
            chosen = d
        seed_of[d] = chosen
    family = np.empty(g, dtype=np.int64)
    for k in range(g):
        family[k] = seed_of[of_member[k]]
    seed_rows = np.empty(n_distinct, dtype=np.int64)
    for d in range(n_distinct):
        seed_rows[d] = firsts[members[distinct[d]]]
    return family, seed_rows


@njit(cache=True)
def _ranks_before(ints, umis, firsts, members, distinct, counts, a, b):
    if counts[a] != counts[b]:
        return counts[a] > counts[b]
    row_a = firsts[members[distinct[a]]]
    row_b = firsts[members[distinct[b]]]
    return _bytes_before(
        umis, ints[row_a, O_UMI], ints[row_a, O_UMI_LEN], ints[row_b, O_UMI], ints[row_b, O_UMI_LEN]
    )


@njit(cache=True)
def _within(data, a, a_length, b, b_length, max_mismatches):
    if a_length != b_length:
        return False
    mismatches = 0
    for i in range(a_length):
        if data[a + i] != data[b + i]:
            mismatches += 1
    return mismatches <= max_mismatches


@njit(cache=True)
def _molecules(ints, hashes, names, umis, n, params, fraction):
    """Molecule rows (locus, base, read 1 forward, fragment length, family size, fragment identity), the
    molecules dropped (below min_family_size, below min_duplex_strands, single-strand: N_DROPPED slots), and
    whether two read names shared a hash (then the reference engine must count this cluster)."""
    mode, max_mismatches = params[P_MODE], params[P_MISMATCHES]
    firsts, calls, shortfalls, collision = _templates(ints, hashes, names, n)
    rows = np.empty((len(firsts), 6), dtype=np.int64)
    dropped = np.zeros(N_DROPPED, dtype=np.int64)
    if collision:
        return rows[:0], dropped, True
    m = 0
    if mode <= 2:  # flag, consensus, none: each template is a molecule, named by its read name
        for t in range(len(firsts)):
            if calls[t] != NO_CALL and shortfalls[t] != 0:  # molecules._count_shortfall
                dropped[0 if shortfalls[t] & BELOW_FAMILY_SIZE else 1] += 1
            elif calls[t] != NO_CALL:
                row = firsts[t]
                rows[m, 0] = ints[row, O_LOCUS]
                rows[m, 1] = calls[t]
                rows[m, 2] = ints[row, O_R1FWD]
                rows[m, 3] = ints[row, O_LENGTH]
                rows[m, 4] = ints[row, O_SIZE]
                rows[m, 5] = np.int64(hashes[row] >> np.uint64(1))
                m += 1
        return rows[:m], dropped, False
    heads = firsts
    members, starts = _coordinate_groups(ints, heads)
    # molecules._FamilyRules: raw UMI families need min_family_size read pairs, and duplex ones both strands
    min_family = params[P_MIN_FAMILY] if mode == 3 else 1
    duplex = mode == 3 and params[P_DUPLEX] != 0
    rules = np.array([min_family, 1 if duplex else 0, params[P_KEEP_SINGLE]], dtype=np.int64)
    for g in range(len(starts) - 1):
        group = members[starts[g] : starts[g + 1]]
        head = heads[group[0]]
        if mode == 3 and len(group) > 1 and not _one_umi(ints, umis, heads, group):
            family, seed_rows = _umi_families(ints, umis, heads, group, max_mismatches, params[P_DUPLEX])
            for seed in np.unique(family):
                fragment = _fragment_id(ints, umis, head, seed_rows[seed])
                m = _add_family(
                    rows, m, ints, names, heads, calls, head, group[family == seed], fraction, fragment, rules,
                    dropped,
                )  # fmt: skip
        else:
            fragment = _fragment_id(ints, umis, head, head)
            m = _add_family(
                rows, m, ints, names, heads, calls, head, group, fraction, fragment, rules, dropped
            )
    return rows[:m], dropped, False


@njit(cache=True)
def _fragment_id(ints, umis, head, seed_row):
    """A family's fragment identity: its coordinates (from `head`) and its seed's UMI (empty without UMIs),
    the same at every locus of the cluster the fragment covers (molecules.fragment_id)."""
    fnv = np.uint64(14695981039346656037)
    prime = np.uint64(1099511628211)
    for value in (ints[head, O_LEFT], ints[head, O_LENGTH]):
        fnv = (fnv ^ np.uint64(value)) * prime
    at, length = ints[seed_row, O_UMI], ints[seed_row, O_UMI_LEN]
    for i in range(length):
        fnv = (fnv ^ np.uint64(umis[at + i])) * prime
    return np.int64(fnv >> np.uint64(1))


@njit(cache=True)
def _same_key(ints, a, b):
    return (
        ints[a, O_LOCUS] == ints[b, O_LOCUS]
        and ints[a, O_LEFT] == ints[b, O_LEFT]
        and ints[a, O_LENGTH] == ints[b, O_LENGTH]
    )


@njit(cache=True)
def _one_umi(ints, umis, heads, group):
    first = heads[group[0]]
    for k in range(1, len(group)):
        row = heads[group[k]]
        if not _same_bytes(
            umis, ints[row, O_UMI], ints[row, O_UMI_LEN], ints[first, O_UMI], ints[first, O_UMI_LEN]
        ):
            return False
    return True


@njit(cache=True)
def _add_family(rows, m, ints, names, heads, calls, head, members, fraction, fragment, rules, dropped):
    """molecules._add_family: the family's molecule row, unless `rules` (min_family_size, duplex, keep
    single-strand) drop it, counted in `dropped`."""
    if rules[1]:
        base, strands = _duplex_consensus(ints, heads, calls, members, fraction)
    else:
        base, strands = _consensus(calls, members, fraction), 1
    if base == NO_CALL:
        return m
    size = _family_size(ints, heads, members)
    if size < rules[0]:
        dropped[0] += 1
        return m
    if rules[1] and strands < 2 and not rules[2]:
        dropped[2] += 1
        return m
    rows[m, 0] = ints[head, O_LOCUS]
    rows[m, 1] = base
    rows[m, 2] = _family_orientation(ints, names, heads, members)
    rows[m, 3] = ints[head, O_LENGTH]
    rows[m, 4] = size
    rows[m, 5] = fragment
    return m + 1


@njit(cache=True)
def _duplex_consensus(ints, heads, calls, members, fraction):
    """molecules.duplex_consensus: each strand's consensus (read 1 forward: one strand, reverse: the other),
    then (their common base, or DISCORDANT when they differ, 2), (one strand's call, 1) or (NO_CALL, 0)."""
    forward = np.empty(len(members), dtype=np.bool_)
    for k in range(len(members)):
        forward[k] = ints[heads[members[k]], O_R1FWD] != 0
    first = _consensus(calls, members[forward], fraction)
    second = _consensus(calls, members[~forward], fraction)
    if first == NO_CALL or second == NO_CALL:
        call = second if first == NO_CALL else first
        return call, 0 if call == NO_CALL else 1
    return (first if first == second else DISCORDANT_CODE), 2


@njit(cache=True)
def _family_orientation(ints, names, heads, members):
    """molecules.family_orientation: most members' read 1 strand; on a tie, the smallest read name's."""
    forward = 0
    smallest = heads[members[0]]
    for member in members:
        row = heads[member]
        forward += ints[row, O_R1FWD]
        if _bytes_before(names, ints[row, O_NAME], ints[row, O_NAME_LEN], ints[smallest, O_NAME],
                         ints[smallest, O_NAME_LEN]):  # fmt: skip
            smallest = row
    if 2 * forward != len(members):
        return 1 if 2 * forward > len(members) else 0
    return ints[smallest, O_R1FWD]
