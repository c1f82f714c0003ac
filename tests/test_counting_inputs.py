"""Input variants of real MRD labs: fgbio consensus BAMs, UMIs in read names, and the errors for a wrong input.

One simulated duplex-UMI library is written three ways: raw reads with the UMI in RX (PCR copies of both strands
of each molecule, `A-B` on one strand and `B-A` on the other, as fgbio's paired strategy expects), the consensus
BAM that fgbio's GroupReadsByUmi + CallDuplexConsensusReads (+ ZipperBams) would make of it (one read pair per
molecule, cD/cM/aD/bD tags, RX kept, an @PG line), and the raw reads with the UMI at the end of the read name
(umi_tools `NAME_UMI`, bcl-convert `NAME:A+B`). Counting any of them must give the same molecules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from conftest import toy_panel, write_indexed_bam
from mrdtrack.counting import CountSettings, UmiSourceError, count_sample
from mrdtrack.counting.molecules import resolve_dedup_mode

LOCUS = 1000  # REF A, ALT T
PANEL = toy_panel([LOCUS])
READ_LENGTH = 100
HEADER = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 3000}]}
FGBIO_PROGRAM = {"ID": "fgbio.CallDuplexConsensusReads", "PN": "fgbio", "VN": "2.3.0",
                 "CL": "CallDuplexConsensusReads --input grouped.bam --output consensus.bam --min-reads 1"}  # fmt: skip
MOLECULE_COLUMNS = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]
ENGINES = ["pysam", "compiled"]


@dataclass(frozen=True)
class Molecule:
    start: int  # 0-based leftmost position
    length: int
    umi: tuple[str, str]  # the UMIs of the two ends: strand A reads "A-B", strand B "B-A"
    base: str  # what the molecule carries at LOCUS
    copies: tuple[int, int]  # read pairs of strand A and of strand B


def library(seed: int = 5, n: int = 80) -> list[Molecule]:
    rng = np.random.default_rng(seed)
    molecules = []
    for _ in range(n):
        copies = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
        if sum(copies) == 0:
            copies = (1, 0)
        umi = tuple("".join(rng.choice(list("ACGT"), 6)) for _ in range(2))
        molecules.append(Molecule(int(rng.integers(900, 990)), int(rng.integers(150, 230)), umi,
                                  "T" if rng.random() < 0.2 else "A", copies))  # fmt: skip
    return molecules


def _pair(
    header, name: str, molecule: Molecule, read1_forward: bool, tags: dict
) -> list[pysam.AlignedSegment]:
    left, right = molecule.start, molecule.start + molecule.length - READ_LENGTH
    reads = []
    for first in (True, False):
        forward = read1_forward if first else not read1_forward
        start = left if forward else right
        read = pysam.AlignedSegment(header)
        read.query_name = name
        read.flag = (
            0x1 | 0x2 | (0x40 if first else 0x80) | (0 if forward else 0x10) | (0x20 if forward else 0)
        )
        read.reference_id = read.next_reference_id = 0
        read.reference_start, read.next_reference_start = start, right if forward else left
        read.mapping_quality = 60
        read.cigarstring = f"{READ_LENGTH}M"
        sequence = ["C"] * READ_LENGTH
        if 0 <= LOCUS - 1 - start < READ_LENGTH:
            sequence[LOCUS - 1 - start] = molecule.base
        read.query_sequence = "".join(sequence)
        read.query_qualities = pysam.qualitystring_to_array("I" * READ_LENGTH)
        read.template_length = molecule.length if forward else -molecule.length
        for tag, value in tags.items():
            read.set_tag(tag, value)
        reads.append(read)
    return reads


def raw_reads(header, molecules: list[Molecule]) -> list[pysam.AlignedSegment]:
    """Every PCR copy of both strands: strand A with read 1 forward and RX `A-B`, strand B the other way."""
    reads = []
    for m_index, molecule in enumerate(molecules):
        a, b = molecule.umi
        for strand, (read1_forward, umi) in enumerate(((True, f"{a}-{b}"), (False, f"{b}-{a}"))):
            for copy in range(molecule.copies[strand]):
                reads += _pair(header, f"m{m_index}s{strand}c{copy}", molecule, read1_forward, {"RX": umi})
    return reads


def consensus_reads(header, molecules: list[Molecule], tags: bool = True) -> list[pysam.AlignedSegment]:
    """One consensus read pair per molecule, as fgbio's duplex caller writes it (RX and MI kept)."""
    reads = []
    for m_index, molecule in enumerate(molecules):
        a, b = molecule.umi
        depth = {"cD": sum(molecule.copies), "cM": sum(molecule.copies), "aD": molecule.copies[0],
                 "bD": molecule.copies[1]} if tags else {}  # fmt: skip
        reads += _pair(
            header, f"consensus:{m_index}", molecule, True, {**depth, "RX": f"{a}-{b}", "MI": str(m_index)}
        )
    return reads


def write(path: Path, reads: list[pysam.AlignedSegment], header: dict = HEADER) -> str:
    return write_indexed_bam(path, reads, pysam.AlignmentHeader.from_dict(header))


def raw_bam(folder: Path, molecules: list[Molecule]) -> str:
    return write(folder / "raw.bam", raw_reads(pysam.AlignmentHeader.from_dict(HEADER), molecules))


def consensus_bam(folder: Path, molecules: list[Molecule], program: bool = True, tags: bool = True) -> str:
    header = HEADER | ({"PG": [FGBIO_PROGRAM]} if program else {})
    reads = consensus_reads(pysam.AlignmentHeader.from_dict(header), molecules, tags)
    return write(folder / f"consensus_{program}_{tags}.bam", reads, header)


def counted(bam: str, engine: str, **settings) -> tuple[pd.Series, dict]:
    result = count_sample("s", bam, "", PANEL, CountSettings(engine=engine, **settings))
    return result.counts.iloc[0][MOLECULE_COLUMNS].astype(np.int64), result.qc


def expected(molecules: list[Molecule]) -> pd.Series:
    ref = sum(m.base == "A" for m in molecules)
    return pd.Series([ref, len(molecules) - ref, 0, 0], index=MOLECULE_COLUMNS)


# --- consensus BAMs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_consensus_bam_counts_the_molecules_the_raw_reads_collapse_to(tmp_path, engine):
    molecules = library()
    raw, qc = counted(raw_bam(tmp_path, molecules), engine, umi_duplex=True)
    assert qc["dedup_mode"] == "umi"
    pd.testing.assert_series_equal(raw, expected(molecules), check_names=False)
    consensus, qc = counted(consensus_bam(tmp_path, molecules), engine)
    assert qc["dedup_mode"] == "consensus"
    pd.testing.assert_series_equal(consensus, raw)
    assert qc["mean_family_size"] == pytest.approx(np.mean([sum(m.copies) for m in molecules]))


@pytest.mark.parametrize(("program", "tags"), [(True, False), (False, True)], ids=["@PG only", "tags only"])
def test_a_consensus_bam_is_known_by_its_program_line_or_its_tags(tmp_path, program, tags):
    bam = consensus_bam(tmp_path, library(n=5), program=program, tags=tags)
    with pysam.AlignmentFile(bam) as alignments:
        assert resolve_dedup_mode(alignments, CountSettings()) == "consensus"  # though every read has RX


@pytest.mark.parametrize("engine", ENGINES)
def test_consensus_molecules_are_never_grouped_again_by_their_umi(tmp_path, engine, caplog):
    """Two molecules with the same coordinates and UMI (fgbio told them apart by its MI) stay two, also when
    `dedup: umi` is asked for (a warning says so)."""
    twins = [Molecule(950, 180, ("AAAAAA", "CCCCCC"), base, (2, 1)) for base in "AT"]
    bam = consensus_bam(tmp_path, twins)
    for settings in ({}, {"dedup": "umi"}, {"dedup": "coordinates"}):
        with caplog.at_level(logging.WARNING):
            counts, qc = counted(bam, engine, **settings)
        assert counts.tolist() == [1, 1, 0, 0], settings
        assert qc["dedup_mode"] == "consensus"
    assert "not grouped again" in caplog.text


@pytest.mark.parametrize("engine", ENGINES)
def test_min_family_size_and_duplex_strands_drop_molecules_and_say_how_many(tmp_path, engine):
    molecules = library()
    bam = consensus_bam(tmp_path, molecules)
    large = [m for m in molecules if sum(m.copies) >= 3]
    counts, qc = counted(bam, engine, min_family_size=3)
    pd.testing.assert_series_equal(counts, expected(large), check_names=False)
    assert qc["molecules_below_min_family_size"] == len(molecules) - len(large)
    duplex = [m for m in molecules if min(m.copies) > 0]
    counts, qc = counted(bam, engine, min_duplex_strands=2)
    pd.testing.assert_series_equal(counts, expected(duplex), check_names=False)
    assert qc["molecules_below_min_duplex_strands"] == len(molecules) - len(duplex)
    assert 0 < len(duplex) < len(molecules) and 0 < len(large) < len(molecules)
    counts, qc = counted(bam, engine, min_duplex_strands=1)  # every consensus read has one strand at least
    pd.testing.assert_series_equal(counts, expected(molecules), check_names=False)


def test_a_molecule_is_dropped_when_either_mate_falls_short(tmp_path):
    """As fgbio's FilterConsensusReads drops a template when R1 or R2 fails: one mate with cD 1 of two."""
    molecule = Molecule(950, 120, ("AAAAAA", "CCCCCC"), "T", (1, 1))  # both mates cover LOCUS
    header = pysam.AlignmentHeader.from_dict(HEADER)
    reads = consensus_reads(header, [molecule])
    reads[1].set_tag("cD", 1)
    bam = write(tmp_path / "mates.bam", reads)
    for engine in ENGINES:
        counts, qc = counted(bam, engine, min_family_size=2)
        assert counts.sum() == 0 and qc["molecules_below_min_family_size"] == 1, engine


# --- UMIs in read names -------------------------------------------------------------------------------------


def renamed(folder: Path, bam: str, separator: str, dual: str) -> str:
    """The raw reads with the RX UMI moved to the end of the name (its halves joined by `dual`)."""
    with pysam.AlignmentFile(bam) as alignments:
        reads = []
        for read in alignments.fetch(until_eof=True):
            read.query_name = f"{read.query_name}{separator}{read.get_tag('RX').replace('-', dual)}"
            read.set_tag("RX", None)
            reads.append(read)
    return write(folder / f"named{separator}.bam", reads)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("separator", "dual"), [("_", "-"), (":", "+")], ids=["umi_tools", "bcl-convert"])
def test_umis_in_read_names_count_as_umis_in_tags(tmp_path, engine, separator, dual):
    molecules = library()
    tagged = raw_bam(tmp_path, molecules)
    named = renamed(tmp_path, tagged, separator, dual)
    read_name = {"umi_source": "read_name", "umi_read_name_separator": separator}
    for duplex in (False, True):
        by_tag = count_sample("s", tagged, "", PANEL, CountSettings(engine=engine, umi_duplex=duplex))
        by_name = count_sample(
            "s", named, "", PANEL, CountSettings(engine=engine, umi_duplex=duplex, **read_name)
        )
        assert by_name.qc["dedup_mode"] == "umi"
        pd.testing.assert_frame_equal(by_name.counts, by_tag.counts)
        pd.testing.assert_frame_equal(by_name.fragments, by_tag.fragments)


def test_a_umi_source_that_finds_no_umi_is_an_error_naming_the_file_and_a_read(tmp_path):
    molecules = library(n=10)
    tagged = raw_bam(tmp_path, molecules)
    illumina = write(tmp_path / "illumina.bam", [
        _rename(read, f"M00123:45:000000000-ABCDE:1:1101:{i}:1331")
        for i, read in enumerate(consensus_reads(pysam.AlignmentHeader.from_dict(HEADER), molecules, tags=False))
    ])  # fmt: skip
    for bam, settings in (
        (tagged, {"umi_source": "read_name"}),  # names without a UMI
        (illumina, {"umi_source": "read_name"}),  # the last field is Illumina's read number, not a UMI
        (illumina, {"dedup": "umi", "umi_tag": "BX"}),  # no such tag
    ):
        with pytest.raises(UmiSourceError, match=rf"'{bam}': none of the first 10,000 reads .*first read: '"):
            count_sample("s", bam, "", PANEL, CountSettings(**settings))
    # auto with the UMI tag absent is no error: coordinates (or duplicate flags) do the work
    assert (
        count_sample("s", illumina, "", PANEL, CountSettings(umi_tag="BX")).qc["dedup_mode"] == "coordinates"
    )


def _rename(read: pysam.AlignedSegment, name: str) -> pysam.AlignedSegment:
    read.query_name = name
    read.set_tag("RX", None)
    return read


@pytest.mark.parametrize(
    "setting",
    [
        {"umi_source": "name"},
        {"umi_read_name_separator": "::"},
        {"min_family_size": 0},
        {"min_duplex_strands": 3},
    ],
)
def test_bad_counting_settings_are_config_errors(setting):
    with pytest.raises(ValueError, match=f"counting.{next(iter(setting))}"):
        CountSettings.from_config(setting)
