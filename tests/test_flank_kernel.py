"""The flank kernel (mrdtrack.counting.flank_kernel) builds a cluster's families once for all its positions; its
flank table is exactly the one of the per-position kernel (bamscan._molecules, position by position) and of the
reference pysam engine, the specification. Random reads are built to make the shared families differ from a
position's own wherever they can: PCR copies trimmed to other lengths and reads with deletions (a family only
partly present at a position), reads ending inside the cluster, low base qualities and N calls (a template
present without a base), UMIs one mismatch apart and duplex UMIs read from either strand (families that depend on
which templates are present), mates not merged, three reads of one name, consensus tags, and reads of one
template that disagree in their fields (the per-position kernel then counts the cluster)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pysam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_same_counts, per_position_flank_molecules, read_name_hash, write_indexed_bam
from mrdtrack.counting import CountSettings, bamscan, count_sample, flank_kernel
from mrdtrack.counting import flanks as counting_flanks
from mrdtrack.counting import sample as counting_sample
from mrdtrack.counting.flanks import flank_contexts, flank_table
from mrdtrack.flank_layout import flank_rows

BASES = "ACGT"
LOCI = (1000, 1040, 2400)  # the first two share their flanks' clusters (a read reaches two of them)
UMIS = ["AACC-GGTT", "GGTT-AACC", "AACC-GGTA", "CCAA-TTGG", "ACGT-ACGT", "AACC"]
SETTINGS = [
    CountSettings(dedup="umi"),
    CountSettings(dedup="umi", umi_mismatches=0, min_baseq=30),
    CountSettings(dedup="umi", umi_duplex=True),
    CountSettings(dedup="umi", umi_duplex=True, duplex_single_strand="keep", min_family_size=2),
    CountSettings(dedup="umi", min_family_size=2, consensus_fraction=1.0),
    CountSettings(dedup="umi", merge_mates=False),
    CountSettings(dedup="coordinates", consensus_fraction=0.5),
    CountSettings(dedup="flag", require_proper_pair=True),
    CountSettings(dedup="none", merge_mates=False, min_mapq=0),
    CountSettings(dedup="consensus", min_family_size=2, min_duplex_strands=2),
]


def random_bam(
    tmp_path,
    rng: np.random.Generator,
    irregular: bool,
    consensus: bool = False,
    loci: tuple[int, ...] = LOCI,
    length: int = 3000,
) -> tuple[str, str, pd.DataFrame]:
    """Read pairs of random fragments around `loci` of a contig of `length` bp, with PCR copies; `irregular`:
    some mates carry another UMI or fragment length than their first read; `consensus`: consensus reads' tags
    (cD, aD, bD) on each pair."""
    sequence = "".join(rng.choice(list(BASES), length))
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">chr1\n" + sequence + "\n")
    pysam.faidx(str(fasta))
    header = pysam.AlignmentHeader.from_dict({"SQ": [{"SN": "chr1", "LN": length}]})
    reads = []
    for fragment in range(160):
        locus = int(rng.choice(loci))
        length = int(rng.integers(70, 220))
        start = locus - int(rng.integers(-30, length + 30))  # some fragments end or start inside the flanks
        umi = str(rng.choice(UMIS))
        errors = {int(rng.integers(0, length)): BASES[rng.integers(4)] for _ in range(int(rng.poisson(2)))}
        for copy in range(int(rng.integers(1, 5))):
            name = f"f{fragment}c{copy}"
            trimmed = int(rng.integers(40, 100)) if rng.random() < 0.3 else 100
            second_strand = rng.random() < 0.5  # read 1 is the right-hand read, on the reverse strand
            tags = (
                {"cD": int(rng.integers(1, 4)), "aD": int(rng.integers(0, 3)), "bD": 1} if consensus else {}
            )
            for mate in (0, 1):
                read_start = start if mate == 0 else start + length - min(trimmed, length)
                fields = {"umi": umi, "tlen": length, "tags": tags, "read1": (mate == 0) != second_strand}
                if irregular and mate == 1 and rng.random() < 0.1:
                    fields = {**fields, "umi": str(rng.choice(UMIS)), "tlen": length + 1}
                reads.append(_read(header, sequence, rng, name, mate, read_start, start, trimmed, length, errors,
                                   copy, fields))  # fmt: skip
                if rng.random() < 0.02:  # a third read of this name
                    reads.append(_read(header, sequence, rng, name, mate, read_start, start, trimmed, length,
                                       errors, copy, fields))  # fmt: skip
    bam = write_indexed_bam(tmp_path / "s.bam", reads, header)
    panel = pd.DataFrame({"patient_id": "P1", "chrom": "chr1", "pos": list(loci), "context": "NNN",
                          "weight": 1.0, "ref": [sequence[p - 1] for p in loci]})  # fmt: skip
    panel["alt"] = ["A" if r != "A" else "C" for r in panel["ref"]]
    return bam, str(fasta), panel


def _read(header, sequence, rng, name, mate, read_start, start, trimmed, length, errors, copy, fields):
    """One read of a pair: substitutions of its fragment (in both mates, or in one: discordant), sometimes an N,
    low base qualities, a 2 bp deletion or a soft clip."""
    read_length = min(trimmed, length)
    bases = list(sequence[read_start : read_start + read_length])
    for at, base in errors.items():
        if 0 <= at - (read_start - start) < read_length and (mate == 0 or rng.random() < 0.7):
            bases[at - (read_start - start)] = base
    if rng.random() < 0.05:
        bases[int(rng.integers(0, read_length))] = "N"
    cigar = f"{read_length}M"
    if rng.random() < 0.08 and read_length > 40:  # a deletion: no base of this read at two positions
        cigar = f"20M2D{read_length - 20}M"
        bases = list(
            sequence[read_start : read_start + 20] + sequence[read_start + 22 : read_start + read_length + 2]
        )
    elif rng.random() < 0.1 and mate == 1:  # the first read's start is the fragment's left end
        cigar = f"3S{read_length - 3}M"
        read_start += 3
    qualities = np.where(rng.random(len(bases)) < 0.04, 5, 37)
    read = pysam.AlignedSegment(header)
    read.query_name = name
    read.query_sequence = "".join(bases)
    strands = 0x20 if mate == 0 else 0x10
    read.flag = 0x1 | 0x2 | strands | (0x40 if fields["read1"] else 0x80) | (0x400 if copy else 0)
    read.reference_id = read.next_reference_id = 0
    read.reference_start = max(read_start, 0)
    read.next_reference_start = start + length - read_length if mate == 0 else start
    read.mapping_quality = 60
    read.cigarstring = cigar
    read.template_length = fields["tlen"] if mate == 0 else -fields["tlen"]
    read.query_qualities = pysam.qualitystring_to_array("".join(chr(33 + int(q)) for q in qualities))
    read.set_tag("RX", fields["umi"])
    for tag, value in fields["tags"].items():
        read.set_tag(tag, value)
    return read


def per_position_flanks(bam: str, fasta: str, panel: pd.DataFrame, settings: CountSettings) -> pd.DataFrame:
    """The flank table of the per-position kernel: each flank position's molecules formed on their own."""
    positions, found = per_position_flank_molecules(bam, fasta, panel, settings)
    return flank_table(flank_contexts(positions), found)


def _never(*args, **kwargs):
    raise AssertionError("the per-position kernel counted a cluster of flank positions")


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(
    "count_settings", SETTINGS, ids=lambda s: f"{s.dedup}-{s.umi_duplex}-{s.merge_mates}"
)
def test_shared_families_give_the_per_position_flank_table(tmp_path, monkeypatch, seed, count_settings):
    """Reads whose templates agree in their fields: the flank kernel counts every cluster itself."""
    consensus = count_settings.dedup == "consensus"
    bam, fasta, panel = random_bam(
        tmp_path, np.random.default_rng(seed), irregular=False, consensus=consensus
    )
    compiled = replace(count_settings, engine="compiled")
    expected = per_position_flanks(bam, fasta, panel, compiled)
    assert flank_rows(expected)["alt_molecules"].sum() > 10
    assert expected["discordant_molecules"].sum() > 0 or not count_settings.merge_mates
    monkeypatch.setattr(flank_kernel, "_molecules", _never)
    flanks = count_sample("S1", bam, fasta, panel, compiled, patient_id="P1").flanks
    pd.testing.assert_frame_equal(flanks, expected)
    reference = count_sample(
        "S1", bam, fasta, panel, replace(count_settings, engine="pysam"), patient_id="P1"
    )
    pd.testing.assert_frame_equal(flanks, reference.flanks)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("count_settings", SETTINGS[::3], ids=lambda s: f"{s.dedup}-{s.min_family_size}")
def test_flanks_read_in_the_panel_loci_pass_leave_their_counts_and_qc_as_they_were(
    tmp_path, monkeypatch, count_settings, threads
):
    """The flank positions are read in the same pass of the file as the panel loci, their clusters interleaved
    with other patients' loci (P2's locus at 1015 lies inside P1's flanks of 1000, and its loci at 2390-2396
    inside those of 2400) and with the pieces of a dense cluster (pieces of 2 loci here, flank clusters of 16
    positions): the panel loci's counts, fragments and QC are those of a pass without flanks, and the flanks
    those of a pass of their own."""
    consensus = count_settings.dedup == "consensus"
    bam, fasta, panel = random_bam(tmp_path, np.random.default_rng(4), irregular=False, consensus=consensus)
    sequence = pysam.FastaFile(fasta).fetch("chr1")
    others = [1015, 2390, 2392, 2394, 2396]
    other = pd.DataFrame({"patient_id": "P2", "chrom": "chr1", "pos": others, "context": "NNN", "weight": 1.0,
                          "ref": [sequence[p - 1] for p in others]})  # fmt: skip
    other["alt"] = ["A" if r != "A" else "C" for r in other["ref"]]
    panel = pd.concat([panel, other], ignore_index=True)
    monkeypatch.setattr(counting_sample, "CLUSTER_PIECE", 2)
    # clusters of flank positions between the pieces
    monkeypatch.setattr(counting_flanks, "FLANK_CLUSTER", 16)
    compiled = replace(count_settings, engine="compiled")
    together = count_sample("S1", bam, fasta, panel, compiled, threads=threads, patient_id="P1")
    assert_same_counts(together, count_sample("S1", bam, fasta, panel, compiled, threads=threads))
    assert together.counts["ref_molecules"].sum() > 0
    pd.testing.assert_frame_equal(together.flanks, per_position_flanks(bam, fasta, panel, compiled))
    assert not together.flanks["pos"].between(1013, 1017).any()


@pytest.mark.parametrize("count_settings", SETTINGS[:3], ids=lambda s: f"{s.dedup}-{s.umi_duplex}")
def test_templates_whose_reads_disagree_are_counted_position_by_position(tmp_path, count_settings):
    bam, fasta, panel = random_bam(tmp_path, np.random.default_rng(3), irregular=True)
    compiled = replace(count_settings, engine="compiled")
    flanks = count_sample("S1", bam, fasta, panel, compiled, patient_id="P1").flanks
    pd.testing.assert_frame_equal(flanks, per_position_flanks(bam, fasta, panel, compiled))
    reference = count_sample(
        "S1", bam, fasta, panel, replace(count_settings, engine="pysam"), patient_id="P1"
    )
    pd.testing.assert_frame_equal(flanks, reference.flanks)


def test_a_family_partly_present_at_a_position_is_formed_there():
    """Four templates at one pair of fragment coordinates, UMIs AAAA - AAAT (twice) - AATT, each one mismatch
    from the next: where all are present, the AAAT pair seeds one family of all four; at the last position the
    AAAT reads have ended, and AAAA and AATT (two mismatches apart) are two molecules there."""
    reads = [
        ([0, 1, 2], b"AAAA", b"a"),
        ([0, 1], b"AAAT", b"b"),
        ([0, 1], b"AAAT", b"c"),
        ([0, 1, 2], b"AATT", b"d"),
    ]
    ints, hashes, names, umis = _table(reads, base=ord("C"))
    params = _params(mode=3, mismatches=1)
    molecules, status = molecules_per_position(ints, hashes, names, umis, params)
    assert status == flank_kernel.SHARED and molecules == [1, 1, 2]
    reads[1:3] = [([0, 1, 2], b"AAAT", b"b"), ([0, 1, 2], b"AAAT", b"c")]  # AAAT reaches it: one family there
    ints, hashes, names, umis = _table(reads, base=ord("C"))
    assert molecules_per_position(ints, hashes, names, umis, params)[0] == [1, 1, 1]


def molecules_per_position(ints, hashes, names, umis, params) -> tuple[list[int], int]:
    """The C molecules at the three positions (REF A) of a cluster's observations, and the kernel's status."""
    tally = np.zeros((3, flank_kernel.T_COLUMNS), dtype=np.int64)  # REF: A at each position (base index 0)
    non_reference = np.empty((len(ints), 3), dtype=np.int64)
    m, status = flank_kernel._flank_tally(
        ints, hashes, names, umis, len(ints), 0, params, 0.6, tally, non_reference
    )
    assert (non_reference[:m, 1] == 1).all() and m == tally[:, 1].sum()
    return tally[:, 1].tolist(), status


def _table(reads, base):
    rows = sum(len(positions) for positions, _, _ in reads)
    ints = np.zeros((rows, bamscan.N_COLUMNS), dtype=np.int64)
    hashes = np.zeros(rows, dtype=np.uint64)
    names, umis = bytearray(), bytearray()
    row = 0
    for positions, umi, name in reads:
        for position in positions:
            ints[row, [bamscan.O_LOCUS, bamscan.O_BASE, bamscan.O_LEFT, bamscan.O_LENGTH, bamscan.O_R1FWD,
                       bamscan.O_SIZE, bamscan.O_NAME, bamscan.O_NAME_LEN, bamscan.O_UMI,
                       bamscan.O_UMI_LEN]] = (position, base, 100, 150, 1, 1, len(names), len(name), len(umis),
                                              len(umi))  # fmt: skip
            hashes[row] = hash(name) & (2**63 - 1)
            row += 1
        names += name
        umis += umi
    as_array = [np.frombuffer(bytes(data), dtype=np.uint8).copy() for data in (names, umis)]
    return ints, hashes, *as_array


def _params(mode: int, mismatches: int) -> np.ndarray:
    params = np.zeros(13, dtype=np.int64)
    params[[bamscan.P_MODE, bamscan.P_MISMATCHES, bamscan.P_MERGE_MATES, bamscan.P_MIN_FAMILY]] = (mode, mismatches,
                                                                                                 1, 1)  # fmt: skip
    return params


@st.composite
def observation_table(draw) -> tuple:
    """A cluster's observation rows as the record kernel writes them (a read's rows together, one per position
    it covers), with the settings array: reads of a few names (mates, copies, a third read), templates at a few
    fragment coordinates, UMIs a mismatch apart or duplex, bases of either kind, no call, and now and then a
    read whose fields differ from its template's first read."""
    n_positions = draw(st.integers(1, 6))
    merge_mates = draw(st.booleans())
    templates = {}
    reads = []
    for _ in range(draw(st.integers(0, 40))):
        name, key_bit = draw(st.integers(0, 12)), 0 if merge_mates else draw(st.integers(0, 1))
        fields = templates.setdefault(
            (name, key_bit),
            (draw(st.sampled_from([100, 120])), draw(st.sampled_from([150, 151])), draw(st.integers(0, 1)),
             draw(st.integers(1, 3)), draw(st.integers(0, 3)), draw(st.sampled_from(["AAAA", "AAAT", "AATT", "AC-GT",
             "GT-AC", ""]))),
        )  # fmt: skip
        if draw(st.integers(0, 30)) == 0:  # a read whose fields differ from its template's
            fields = (*fields[:5], "CCCC")
        first = draw(st.integers(0, n_positions - 1))
        last = draw(st.integers(first, n_positions - 1))
        covered = [p for p in range(first, last + 1) if draw(st.integers(0, 9)) > 0]  # a deletion's gap
        bases = [draw(st.sampled_from([0, 65, 65, 65, 67, 84, 78])) for _ in covered]
        reads.append((name, key_bit, fields, covered, bases))
    params = np.zeros(13, dtype=np.int64)
    params[[bamscan.P_MODE, bamscan.P_MISMATCHES, bamscan.P_DUPLEX, bamscan.P_MERGE_MATES, bamscan.P_MIN_FAMILY,
            bamscan.P_KEEP_SINGLE]] = (draw(st.integers(0, 4)), draw(st.integers(0, 1)), draw(st.integers(0, 1)),
                                       int(merge_mates), draw(st.integers(1, 3)), draw(st.integers(0, 1)))  # fmt: skip
    fraction = draw(st.sampled_from([0.5, 0.6, 1.0, 1.1]))
    return (*_rows(reads), n_positions, params, fraction)


def _rows(reads: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = sum(len(covered) for *_, covered, _ in reads)
    ints = np.zeros((n, bamscan.N_COLUMNS), dtype=np.int64)
    hashes = np.zeros(n, dtype=np.uint64)
    names, umis = bytearray(), bytearray()
    row = 0
    for name, key_bit, (left, length, forward, size, short, umi), covered, bases in reads:
        text = f"read{name}".encode()
        for position, base in zip(covered, bases, strict=True):
            ints[row, COLUMNS] = (position, base, left, length, forward, size, len(names), len(text), len(umis),
                                  len(umi), key_bit, short)  # fmt: skip
            hashes[row] = read_name_hash(text, key_bit)
            row += 1
        names += text
        umis += umi.encode()
    as_arrays = [np.frombuffer(bytes(data) or b"\0", dtype=np.uint8).copy() for data in (names, umis)]
    return ints, hashes, *as_arrays


COLUMNS = [bamscan.O_LOCUS, bamscan.O_BASE, bamscan.O_LEFT, bamscan.O_LENGTH, bamscan.O_R1FWD, bamscan.O_SIZE,
           bamscan.O_NAME, bamscan.O_NAME_LEN, bamscan.O_UMI, bamscan.O_UMI_LEN, bamscan.O_KEYBIT,
           bamscan.O_SHORT]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(table=observation_table())
def test_the_flank_kernel_counts_what_the_per_position_kernel_finds(table):
    ints, hashes, names, umis, n_positions, params, fraction = table
    refs = np.full(n_positions, ord("A"), dtype=np.int64)
    counted = flank_kernel.cluster_flank_tally(
        ints, hashes, names, umis, np.arange(n_positions), refs, params, fraction
    )
    rows, _dropped, collision = bamscan._molecules(ints, hashes, names, umis, len(ints), params, fraction)
    assert not collision and counted is not None
    expected = np.zeros((n_positions, flank_kernel.T_COLUMNS), dtype=np.int64)  # REF A: base index 0
    non_reference = np.empty((len(rows), 3), dtype=np.int64)
    m = flank_kernel._count_rows(rows, 0, expected, non_reference)
    assert counted.counts.tolist() == expected[:, :4].tolist()
    assert counted.f1r2.tolist() == expected[:, 4:8].tolist()
    assert counted.discordant.tolist() == expected[:, flank_kernel.T_DISCORDANT].tolist()
    assert sorted(map(tuple, counted.non_reference.tolist())) == sorted(
        map(tuple, non_reference[:m].tolist())
    )


def test_flank_clusters_close_together_in_the_file_are_read_as_one_with_the_same_table(tmp_path, monkeypatch):
    """Loci in 16 kb windows 0, 1, 2 and 3 of the index, few reads each: the flank clusters of the first three
    are read as one; the last one's window is the index's last, whose reads' end it does not give."""
    loci = (1000, 17000, 34000, 51000)
    bam, fasta, panel = random_bam(tmp_path, np.random.default_rng(5), False, loci=loci, length=60_000)
    compiled = CountSettings(dedup="umi", engine="compiled")
    monkeypatch.setattr(bamscan, "FLANK_JOIN_POSITIONS", 1)  # none joined
    apart = count_sample("S1", bam, fasta, panel, compiled, patient_id="P1")
    monkeypatch.undo()
    joined_sizes = []
    join = bamscan.joined_flank_clusters

    def spy(linear, clusters, panel_positions):
        joined = join(linear, clusters, panel_positions)
        joined_sizes.append((len(clusters), len(joined)))
        return joined

    monkeypatch.setattr(bamscan, "joined_flank_clusters", spy)
    together = count_sample("S1", bam, fasta, panel, compiled, patient_id="P1")
    assert joined_sizes == [(4, 2)]
    pd.testing.assert_frame_equal(together.flanks, apart.flanks)
    assert_same_counts(together, apart)
