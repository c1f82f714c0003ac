"""`mrdtrack demo`: the trial-sized simulated cohort, its plan, its files and its config."""

from __future__ import annotations

import numpy as np
import pysam
import pytest

from mrdtrack import simulate as sim


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """One simulated library with every kind of record (duplicates marked, artifacts, unmapped pairs)."""
    folder = tmp_path_factory.mktemp("fast_bam")
    rng = np.random.default_rng(7)
    reference = sim.make_reference(rng, {"chr1": 200_000, "chr2": 150_000})
    sim.write_reference(reference, folder / "genome.fa.gz")
    panel = sim.make_panel(reference, 40, rng, with_ccf=True)
    settings = sim.SimulationSettings(molecules_per_locus=60, family_size_mean=2.0, duplicate_marked=True)
    sample = sim.simulate_sample(
        reference, panel, panel.iloc[:15], 0.02, settings, np.random.default_rng(8), sample_id="S1"
    )
    return folder, reference, sample


def _records(path):
    with pysam.AlignmentFile(str(path)) as bam:
        header = str(bam.header)
        records = [
            (r.to_string(), r.bin, r.get_tags(with_value_type=True)) for r in bam.fetch(until_eof=True)
        ]
    return header, records


def test_fast_bam_writer_reads_back_identical_to_pysams(small_world, monkeypatch):
    folder, reference, sample = small_world
    # Small chunks, so that mates and BGZF blocks fall on both sides of a chunk boundary.
    monkeypatch.setattr(sim, "ENCODE_CHUNK", 1000)
    sim.write_bam(sample, folder / "pysam.bam", reference)
    sim.write_bam_fast(sample, folder / "fast.bam", reference)
    assert _records(folder / "fast.bam") == _records(folder / "pysam.bam")
    with (
        pysam.AlignmentFile(str(folder / "fast.bam")) as fast,
        pysam.AlignmentFile(str(folder / "pysam.bam")) as slow,
    ):
        for chrom, start, end in (("chr1", 1_000, 90_000), ("chr2", 50_000, 51_000)):
            assert [r.query_name for r in fast.fetch(chrom, start, end)] == [
                r.query_name for r in slow.fetch(chrom, start, end)
            ]


def test_fast_bam_blocks_hold_whole_records(small_world):
    """Like htslib's writer, a record never straddles two BGZF blocks (readers that seek by block rely on it)."""
    folder, reference, sample = small_world
    data, ends = sim.encode_bam_records(sample)
    ranges = sim._block_ranges(ends)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(last - first <= sim.BGZF_BLOCK_SIZE for first, last in ranges)
    assert set(r[1] for r in ranges) <= set(ends.tolist())
