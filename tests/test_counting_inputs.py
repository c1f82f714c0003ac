"""Input variants of real MRD labs: raw duplex UMIs, fgbio consensus BAMs, UMIs in read names, and the errors for
a wrong input.

One simulated duplex-UMI library is written three ways: raw reads with the UMI in RX (PCR copies of both strands
of each molecule, `A-B` on one strand and `B-A` on the other, as fgbio's paired strategy expects), the consensus
BAM that fgbio's GroupReadsByUmi + CallDuplexConsensusReads (+ ZipperBams) would make of it (one read pair per
molecule, cD/cM/aD/bD tags, RX kept, an @PG line), and the raw reads with the UMI at the end of the read name
(umi_tools `NAME_UMI`, bcl-convert `NAME:A+B`). Counting any of them must give the same molecules. fgbio itself
(Java) is not installed here: `consensus_reads` writes what CallDuplexConsensusReads writes for these reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
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
                 "CL": "CallDuplexConsensusReads --input grouped.bam --output consensus.bam --min-reads 1 1 0"}  # fmt: skip
MOLECULE_COLUMNS = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]
ENGINES = ["pysam", "compiled"]


@dataclass(frozen=True)
class Molecule:
    start: int  # 0-based leftmost position
    length: int
    umi: tuple[str, str]  # the UMIs of the two ends: strand A reads "A-B", strand B "B-A"
    base: str  # what the molecule carries at LOCUS
    copies: tuple[int, int]  # read pairs of strand A and of strand B
    # What the first copies of strand A and of strand B show at LOCUS instead of `base`, one letter per copy:
    # every copy of a strand (damage on that strand before PCR, e.g. 8-oxoG), or one copy (a PCR or sequencing
    # error). Never a tie within a strand, so each strand's consensus is plain, for fgbio's model as for counting.
    misread: tuple[str, str] = ("", "")

    def strand_bases(self, strand: int) -> str:
        """What each copy of strand 0 (A) or 1 (B) shows at LOCUS."""
        wrong = self.misread[strand]
        return wrong + self.base * (self.copies[strand] - len(wrong))

    def strand_call(self, strand: int) -> str | None:
        """The strand's consensus at LOCUS (its copies' most frequent base), None without a copy."""
        bases = self.strand_bases(strand)
        return max("ACGT", key=bases.count) if bases else None

    def duplex_call(self) -> str | None:
        """What fgbio's duplex consensus read shows at LOCUS: the strands' common base, N where they disagree
        (DuplexConsensusCaller masks it to N at Q2; FilterConsensusReads --require-single-strand-agreement does
        the same at any quality), the one strand's call for a single-strand molecule."""
        calls = {c for c in (self.strand_call(0), self.strand_call(1)) if c is not None}
        return calls.pop() if len(calls) == 1 else "N"

    @property
    def duplex(self) -> bool:
        return min(self.copies) > 0


def library(seed: int = 5, n: int = 80, noisy: bool = False) -> list[Molecule]:
    """Molecules with 0-3 read pairs per strand (one strand only for some); `noisy`: about one in five with
    every copy of one strand misread (strand damage: the strands disagree) and one in five with one misread copy
    among three or more of a strand (a PCR error the strand's consensus corrects)."""
    rng = np.random.default_rng(seed)
    molecules = []
    for _ in range(n):
        copies = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
        if sum(copies) == 0:
            copies = (1, 0)
        umi = tuple("".join(rng.choice(list("ACGT"), 6)) for _ in range(2))
        base = "T" if rng.random() < 0.2 else "A"
        misread = ["", ""]
        strand = int(rng.integers(0, 2))
        wrong = "A" if base == "T" else "T"
        if noisy and copies[strand] and rng.random() < 0.2:
            misread[strand] = wrong * copies[strand]
        elif noisy and copies[strand] >= 3 and rng.random() < 0.5:
            misread[strand] = wrong
        molecules.append(Molecule(int(rng.integers(900, 990)), int(rng.integers(150, 230)), umi, base, copies,
                                  tuple(misread)))  # fmt: skip
    return molecules


def _pair(
    header, name: str, molecule: Molecule, read1_forward: bool, tags: dict, base: str | None = None
) -> list[pysam.AlignedSegment]:
    """A read pair of `molecule` showing `base` (default: its own) at LOCUS, N at Q2 for an N."""
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
        qualities = ["I"] * READ_LENGTH
        if 0 <= LOCUS - 1 - start < READ_LENGTH:
            sequence[LOCUS - 1 - start] = base or molecule.base
            qualities[LOCUS - 1 - start] = "#" if base == "N" else "I"
        read.query_sequence = "".join(sequence)
        read.query_qualities = pysam.qualitystring_to_array("".join(qualities))
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
            for copy, base in enumerate(molecule.strand_bases(strand)):
                name = f"m{m_index}s{strand}c{copy}"
                reads += _pair(header, name, molecule, read1_forward, {"RX": umi}, base)
    return reads


def consensus_reads(
    header, molecules: list[Molecule], tags: bool = True, single_strand: bool = True
) -> list[pysam.AlignedSegment]:
    """One consensus read pair per molecule, as fgbio's CallDuplexConsensusReads writes it from the raw reads
    (RX and MI kept): the duplex base at LOCUS (`Molecule.duplex_call`, N at Q2 where the strands disagree),
    cD the read pairs of both strands, aD and bD those of each; single-strand molecules only with
    `single_strand` (fgbio's `--min-reads 1 1 0`; its default `1` = `1 1 1` writes duplex molecules only)."""
    reads = []
    for m_index, molecule in enumerate(molecules):
        if not single_strand and not molecule.duplex:
            continue
        a, b = molecule.umi
        depth = {"cD": sum(molecule.copies), "cM": sum(molecule.copies), "aD": molecule.copies[0],
                 "bD": molecule.copies[1]} if tags else {}  # fmt: skip
        reads += _pair(
            header, f"consensus:{m_index}", molecule, True, {**depth, "RX": f"{a}-{b}", "MI": str(m_index)},
            molecule.duplex_call(),
        )  # fmt: skip
    return reads


def write(path: Path, reads: list[pysam.AlignedSegment], header: dict = HEADER) -> str:
    return write_indexed_bam(path, reads, pysam.AlignmentHeader.from_dict(header))


def raw_bam(folder: Path, molecules: list[Molecule], name: str = "raw") -> str:
    return write(folder / f"{name}.bam", raw_reads(pysam.AlignmentHeader.from_dict(HEADER), molecules))


def consensus_bam(
    folder: Path,
    molecules: list[Molecule],
    program: bool = True,
    tags: bool = True,
    single_strand: bool = True,
) -> str:
    header = HEADER | ({"PG": [_program(single_strand)]} if program else {})
    reads = consensus_reads(pysam.AlignmentHeader.from_dict(header), molecules, tags, single_strand)
    return write(folder / f"consensus_{program}_{tags}_{single_strand}.bam", reads, header)


def _program(single_strand: bool) -> dict:
    if single_strand:
        return FGBIO_PROGRAM
    return FGBIO_PROGRAM | {"CL": FGBIO_PROGRAM["CL"].replace("--min-reads 1 1 0", "--min-reads 1")}


def counted(bam: str, engine: str, **settings) -> tuple[pd.Series, dict]:
    result = count_sample("s", bam, "", PANEL, CountSettings(engine=engine, **settings))
    return result.counts.iloc[0][MOLECULE_COLUMNS].astype(np.int64), result.qc


def expected(molecules: list[Molecule]) -> pd.Series:
    ref = sum(m.base == "A" for m in molecules)
    return pd.Series([ref, len(molecules) - ref, 0, 0], index=MOLECULE_COLUMNS)


# --- raw duplex UMIs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_duplex_family_whose_strands_disagree_gives_no_mutant_molecule(tmp_path, engine):
    """Three read pairs of one strand show T where the other strand's read pair shows the reference A (damage on
    one strand before PCR, as 8-oxoG makes G>T): pooled, 3 of 4 reads (over consensus_fraction) would make a
    mutant molecule. Built strand by strand, the strands disagree: a discordant molecule, no ALT, whether
    single-strand molecules are kept or not. With both strands showing T it is a mutant molecule."""
    damaged = Molecule(950, 180, ("AAAAAA", "CCCCCC"), "A", (3, 1), misread=("TTT", ""))
    mutant = Molecule(950, 180, ("GGGGGG", "TTTTTT"), "T", (1, 2))
    for single_strand in ("drop", "keep"):
        options = {"umi_duplex": True, "duplex_single_strand": single_strand}
        counts, _ = counted(raw_bam(tmp_path, [damaged], "damaged"), engine, **options)
        assert counts.tolist() == [0, 0, 0, 1], single_strand  # ref, alt, other, discordant
        counts, _ = counted(raw_bam(tmp_path, [damaged, mutant], "both"), engine, **options)
        assert counts.tolist() == [0, 1, 0, 1], single_strand
    # the consensus BAM of the same reads: an N (no call) where the strands disagree
    counts, qc = counted(consensus_bam(tmp_path, [damaged, mutant]), engine)
    assert counts.tolist() == [0, 1, 0, 0] and qc["bases_low_quality"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_single_strand_molecules_are_dropped_unless_kept_and_the_qc_says_how_many(tmp_path, engine):
    """fgbio's CallDuplexConsensusReads writes duplex molecules only by default (`--min-reads 1` = `1 1 1`):
    so does counting raw duplex reads, unless `duplex_single_strand: keep` (fgbio's `1 1 0`)."""
    molecules = library()
    duplex = [m for m in molecules if m.duplex]
    bam = raw_bam(tmp_path, molecules)
    counts, qc = counted(bam, engine, umi_duplex=True)
    assert qc["dedup_mode"] == "umi"
    pd.testing.assert_series_equal(counts, expected(duplex), check_names=False)
    assert qc["molecules_single_strand_dropped"] == len(molecules) - len(duplex) > 0
    counts, qc = counted(bam, engine, umi_duplex=True, duplex_single_strand="keep")
    pd.testing.assert_series_equal(counts, expected(molecules), check_names=False)
    assert qc["molecules_single_strand_dropped"] == 0
    counts, qc = counted(bam, engine)  # not declared duplex: A-B and B-A are two molecules, none is dropped
    pd.testing.assert_series_equal(
        counts, expected([m for m in molecules for n in m.copies if n]), check_names=False
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_min_family_size_drops_raw_umi_families_by_their_read_pairs_of_both_strands(tmp_path, engine):
    """A raw duplex family's size is its read pairs of both strands, as a duplex consensus read's cD is: the
    raw reads and their consensus BAM drop the same molecules. Without `umi_duplex` each strand's read pairs are
    a family of their own."""
    molecules = library()
    bam = raw_bam(tmp_path, molecules)
    large = [m for m in molecules if sum(m.copies) >= 3]
    options = {"min_family_size": 3, "duplex_single_strand": "keep"}
    counts, qc = counted(bam, engine, umi_duplex=True, **options)
    pd.testing.assert_series_equal(counts, expected(large), check_names=False)
    assert qc["molecules_below_min_family_size"] == len(molecules) - len(large)
    consensus, consensus_qc = counted(consensus_bam(tmp_path, molecules), engine, min_family_size=3)
    pd.testing.assert_series_equal(consensus, counts)
    assert consensus_qc["molecules_below_min_family_size"] == qc["molecules_below_min_family_size"]
    # below the size first, then single-strand: each dropped molecule is counted once
    counts, qc = counted(bam, engine, umi_duplex=True, min_family_size=3)
    pd.testing.assert_series_equal(counts, expected([m for m in large if m.duplex]), check_names=False)
    assert qc["molecules_single_strand_dropped"] == sum(not m.duplex for m in large)
    counts, qc = counted(bam, engine, min_family_size=3)
    strands = [m for m in molecules for n in m.copies if n >= 3]
    pd.testing.assert_series_equal(counts, expected(strands), check_names=False)
    assert 0 < len(strands) < len(large) < len(molecules)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("single_strand", ["drop", "keep"])
def test_raw_duplex_reads_count_what_their_fgbio_consensus_bam_counts(tmp_path, engine, single_strand):
    """The same reads, raw and as the consensus BAM fgbio's CallDuplexConsensusReads makes of them
    (`consensus_reads`: fgbio is not installed here, so this writes what it writes, one read pair per molecule
    with cD/aD/bD tags and N where the strands disagree): `drop` matches fgbio's default `--min-reads 1`
    (duplex molecules only), and also its `1 1 0` BAM filtered with `min_duplex_strands: 2`; `keep` matches
    `1 1 0`. The library carries strand damage (strands that disagree) and PCR errors on one copy of a strand
    (which the strand's consensus corrects). REF, ALT and other molecules are the same; a molecule whose strands
    disagree is an N in fgbio's read (no call) and a discordant molecule when counted from the raw reads."""
    molecules = library(seed=11, n=150, noisy=True)
    keep = single_strand == "keep"
    raw, raw_qc = counted(
        raw_bam(tmp_path, molecules), engine, umi_duplex=True, duplex_single_strand=single_strand
    )
    consensus, _ = counted(consensus_bam(tmp_path, molecules, single_strand=keep), engine)
    called = MOLECULE_COLUMNS[:3]
    pd.testing.assert_series_equal(raw[called], consensus[called])
    counted_molecules = [m for m in molecules if keep or m.duplex]
    disagree = sum(m.duplex_call() == "N" for m in counted_molecules)
    assert raw["discordant_molecules"] == disagree > 0 and consensus["discordant_molecules"] == 0
    truth = [m.duplex_call() for m in counted_molecules]
    assert raw[called].tolist() == [truth.count("A"), truth.count("T"), 0]
    assert raw_qc["molecules_single_strand_dropped"] == (
        0 if keep else len(molecules) - len(counted_molecules)
    )
    if not keep:
        filtered, _ = counted(consensus_bam(tmp_path, molecules), engine, min_duplex_strands=2)
        pd.testing.assert_series_equal(filtered[called], raw[called])
    # the damage and the PCR errors are there, and pooling the strands' reads would have called some of them
    assert any(m.misread[0] and m.misread[1] == "" and m.duplex and len(m.misread[0]) == m.copies[0]
               for m in molecules)  # fmt: skip
    assert any(len(m.misread[s]) == 1 and m.copies[s] >= 3 for m in molecules for s in (0, 1))


def test_umis_declared_duplex_whose_families_show_one_strand_only_are_warned_about(tmp_path, caplog):
    """UMIs declared duplex that are not (every read pair of a molecule in one orientation, as the simulator
    writes them): every family is single-strand and dropped, and the log says why."""
    molecules = [replace(m, copies=(sum(m.copies), 0)) for m in library(n=20)]
    with caplog.at_level(logging.WARNING):
        counts, qc = counted(raw_bam(tmp_path, molecules), "pysam", umi_duplex=True)
    assert counts.sum() == 0 and qc["molecules_single_strand_dropped"] == 20
    assert "20 of 20 UMI families" in caplog.text and "one strand only" in caplog.text


# --- consensus BAMs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_consensus_bam_counts_the_molecules_the_raw_reads_collapse_to(tmp_path, engine):
    molecules = library()
    raw, qc = counted(raw_bam(tmp_path, molecules), engine, umi_duplex=True, duplex_single_strand="keep")
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
