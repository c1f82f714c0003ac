"""Which clusters of flank positions the compiled engine reads as one (bamscan.joined_flank_clusters): those
whose reads lie close together in the file, by the BAI linear index, up to a number of positions."""

from __future__ import annotations

import numpy as np
import pytest

from mrdtrack.counting import bamscan
from mrdtrack.counting.bamscan import joined_flank_clusters
from mrdtrack.counting.flanks import FlankCluster

WINDOW = 1 << 14  # bp of a linear index window


def clusters_at(*starts: int, size: int = 40) -> list[FlankCluster]:
    """Clusters of `size` consecutive flank positions from each 1-based start."""
    return [
        FlankCluster(
            "chr1",
            np.arange(start, start + size, dtype=np.int64),
            np.full(size, ord("A"), dtype=np.int64),
            np.full(size, "AAA", dtype=object),
        )
        for start in starts
    ]


def linear_index(*file_offsets: int) -> np.ndarray:
    """A linear index whose windows' reads start at these file offsets (virtual offsets, within-block 0)."""
    return np.array([offset << 16 for offset in file_offsets], dtype=np.uint64)


def loci_of(clusters: list[FlankCluster]) -> np.ndarray:
    """The panel loci (0-based) the clusters are the flanks of: one in the middle of each."""
    return np.array([int(c.pos[len(c) // 2]) - 1 for c in clusters], dtype=np.int64)


def positions(clusters: list[FlankCluster]) -> list[list[int]]:
    return [cluster.pos.tolist() for cluster in clusters]


def test_clusters_whose_reads_are_few_join_in_order_up_to_the_positions_limit(monkeypatch):
    """Windows of 1,000 bytes of reads: each cluster's share is few, so clusters join up to the limit."""
    monkeypatch.setattr(bamscan, "FLANK_JOIN_POSITIONS", 100)
    clusters = clusters_at(100, 200, 5 * WINDOW, 7 * WINDOW + 5)  # windows 0, 0, 5, 7
    linear = linear_index(1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000)

    joined = joined_flank_clusters(linear, clusters, loci_of(clusters))

    first, second, third, fourth = positions(clusters)
    assert positions(joined) == [first + second, third + fourth]
    assert [bytes(c.ref.astype(np.uint8)) for c in joined] == [b"A" * 80] * 2


def test_clusters_whose_reads_times_positions_exceed_the_cost_stay_apart():
    """A deep target's window (a capture's thousands of reads) keeps its cluster alone; the sparse ones join."""
    clusters = clusters_at(100, 2 * WINDOW + 100, 3 * WINDOW + 100)  # windows 0, 2, 3
    # bytes of window 0's reads: too many for two clusters' positions
    deep = bamscan.FLANK_JOIN_COST // 80 + 1
    linear = linear_index(1000, 1000 + deep, 1100 + deep, 1200 + deep, 1300 + deep)

    joined = joined_flank_clusters(linear, clusters, loci_of(clusters))

    assert positions(joined) == [positions(clusters)[0], positions(clusters)[1] + positions(clusters)[2]]


@pytest.mark.parametrize(
    "linear",
    [None, linear_index(0, 0, 5000), linear_index(1000)],
    ids=["no index", "unfilled windows", "windows past the index"],
)
def test_without_the_index_saying_where_reads_are_clusters_stay_apart(linear):
    clusters = clusters_at(100, WINDOW + 100)  # windows 0 and 1

    assert positions(joined_flank_clusters(linear, clusters, loci_of(clusters))) == positions(clusters)


def test_a_windows_reads_are_shared_among_the_clusters_that_start_in_it(monkeypatch):
    """Eight loci's flank clusters in one window (an 80,000-locus signature's loci are 400 bp apart): an eighth of
    its reads each, they join four at a time (half its bytes times 160 positions: the cost's limit)."""
    monkeypatch.setattr(bamscan, "FLANK_JOIN_POSITIONS", 1000)
    clusters = clusters_at(*range(100, 8 * 1000 + 100, 1000))
    window = bamscan.FLANK_JOIN_COST // 80  # bytes
    linear = linear_index(1000, 1000 + window)

    joined = joined_flank_clusters(linear, clusters, loci_of(clusters))

    assert [len(c) for c in joined] == [160, 160]


def test_a_windows_reads_are_shared_among_all_the_panel_loci_in_it():
    """Two of a window's 40 panel loci are this patient's: the window's reads, too many for its two flank
    clusters alone, are mostly the other patients' loci's, so the two join."""
    clusters = clusters_at(100, 8000)
    window = bamscan.FLANK_JOIN_COST // 80 * 2  # bytes: all of them the two clusters' would keep them apart
    linear = linear_index(1000, 1000 + window)
    others = np.arange(200, 16_000, 400)[:38]

    alone = joined_flank_clusters(linear, clusters, loci_of(clusters))
    among_others = joined_flank_clusters(linear, clusters, np.sort(np.r_[loci_of(clusters), others]))

    assert [len(c) for c in alone] == [40, 40]
    assert [len(c) for c in among_others] == [80]
