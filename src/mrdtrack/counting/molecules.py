"""Reading alignments into molecules at panel loci.

One cfDNA fragment is one molecule. Reads are filtered, each read's base at a locus is looked up through its
CIGAR, the two mates of a fragment are merged into one observation (mates that disagree give no call), and read
pairs that are PCR copies of one molecule (same fragment coordinates and UMI) are collapsed by consensus.

A locus is an SNV (one base each) or an indel in VCF style (REF and ALT share their first base, the anchor; a
deletion `CAT>C`, an insertion `C>CTT`). At an indel locus a read shows REF (it covers the anchor and the
deleted bases, or the anchor and the next base, with no indel between them), ALT (exactly that indel right
after the anchor, then an aligned base), another indel there, or nothing (it ends or is clipped inside); see
`indel_call`. Reads, mates and families then merge as at SNVs, on those calls instead of bases.

With duplex UMIs (`umi_duplex`) a family holds the read pairs of both strands of one fragment: each strand's
consensus is built from its own read pairs (read 1 forward, F1R2: one strand; read 1 reverse, F2R1: the other),
then the duplex: the molecule shows a base only when both strands call that base (strands that disagree give
DISCORDANT); a molecule only one strand calls is dropped or kept by `duplex_single_strand` (see
`duplex_consensus`).

Consensus BAMs (fgbio CallMolecularConsensusReads / CallDuplexConsensusReads) are already one read pair per
molecule: they are recognised by their @PG lines or their cD/cM/aD/bD tags and never grouped again.

The BAM/CRAM is streamed one cluster of nearby loci at a time, so memory depends on depth, not on file size.

This is the reference implementation of the counting rules, and the engine for CRAM. `mrdtrack.counting.bamscan` applies
the same rules to indexed BAMs in compiled code; tests/test_bamscan.py holds the two to identical output, so a
change to a rule here must be made there too.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pysam

from mrdtrack.logs import UserFacingError
from mrdtrack.settings import StepSettings

log = logging.getLogger(__name__)

DISCORDANT = "-"  # a pair or family that gives no call
# What a read shows at an indel locus (at an SNV locus a read's base stands for itself): REF, ALT, another indel.
INDEL_REF, INDEL_ALT, INDEL_OTHER = "r", "a", "o"
CLUSTER_GAP = 1000  # loci closer than this are fetched together
PEEK_READS = 10_000  # reads looked at to choose `dedup: auto` and to find UMIs
# Per-read tags of fgbio consensus reads (depth, minimum depth, depth of the duplex's A and B strands), and the
# fgbio tools that write them.
CONSENSUS_TAGS = ("cD", "cM", "aD", "bD")
CONSENSUS_PROGRAMS = ("CallMolecularConsensusReads", "CallDuplexConsensusReads", "CallCodecConsensusReads")
# Why a consensus molecule is dropped (bits): fewer raw reads than min_family_size, fewer strands than
# min_duplex_strands.
BELOW_FAMILY_SIZE, BELOW_DUPLEX_STRANDS = 1, 2

# CIGAR operations that consume the reference and the read (M, =, X), only the read (I, S), only the reference (D, N).
_ALIGNED = {0, 7, 8}
_READ_ONLY = {1, 4}
_REFERENCE_ONLY = {2, 3}


@dataclass(frozen=True)
class CountSettings(StepSettings):
    """The `counting:` config section: which reads count and how duplicates become molecules.

    Parameters
    ----------
    min_mapq, min_baseq : int
        Lowest mapping quality of a read and base quality of a base that count.
    require_proper_pair : bool
        Drop paired reads not flagged as properly paired.
    dedup : str
        How duplicates become one molecule: auto, umi, coordinates, flag, consensus or none.
    umi_tag, umi_source, umi_read_name_separator : str
        Where a read's UMI is: its tag, or the end of its read name after the separator.
    umi_mismatches : int
        UMIs this many mismatches apart at the same coordinates are one family.
    umi_duplex : bool
        `A-B` and `B-A` are the two strands of one molecule.
    duplex_single_strand : str
        Raw duplex UMI families: `drop` or `keep` a molecule that only one strand calls at a locus.
    consensus_fraction : float
        A family's base needs this share of its calls.
    merge_mates : bool
        The two mates of a fragment are one observation.
    min_family_size : int
        Raw reads a molecule needs: a consensus read's cD, or a raw UMI family's read pairs (both strands).
    min_duplex_strands : int
        Consensus BAMs: strands (aD, bD) a consensus molecule needs.
    flank_window, flank_gap : int
        Flank positions (counting/flanks.py): up to `flank_window` bp either side of the sample's own panel
        loci, none within `flank_gap` bp of any patient's panel locus.
    engine : str
        auto, compiled or pysam.

    config/README.md documents each key in full.
    """

    SECTION: ClassVar[str] = "counting"

    min_mapq: int = 20
    min_baseq: int = 20
    require_proper_pair: bool = False
    dedup: str = "auto"
    umi_tag: str = "RX"
    umi_mismatches: int = 1
    umi_duplex: bool = False
    # fgbio CallDuplexConsensusReads' default (--min-reads 1 = "1 1 1"): duplex molecules only. Kept single-strand
    # molecules would carry a single-strand error rate that calling does not model apart.
    duplex_single_strand: str = "drop"
    umi_source: str = "tag"
    umi_read_name_separator: str = ":"
    consensus_fraction: float = 0.6
    merge_mates: bool = True
    min_family_size: int = 1
    min_duplex_strands: int = 0
    # compiled: mrdtrack.counting.bamscan for indexed BAMs; pysam: this module everywhere; auto: compiled
    # for BAMs >= 1.5 MB
    engine: str = "auto"
    flank_window: int = 25  # bp either side of each own panel locus counted as flank positions (0: none)
    flank_gap: int = 2  # no flank position within this many bp of any patient's panel locus

    def check_combination(self) -> list[str]:
        if not self.merge_mates and self.dedup not in ("none", "flag"):
            return ["merge_mates: false counts reads, so it needs dedup 'none' or 'flag'"]
        return []


@dataclass(frozen=True, slots=True)  # slots: a genome-wide cohort panel makes hundreds of thousands of them
class Locus:
    """A panel variant: an SNV, or an indel in VCF style (`pos` is the anchor base, the first of REF and ALT)."""

    chrom: str  # the contig name as the alignment file spells it
    pos: int  # 1-based
    ref: str
    alt: str

    @property
    def is_indel(self) -> bool:
        return len(self.ref) != len(self.alt)

    @property
    def deleted(self) -> int:
        """Reference bases the ALT deletes after the anchor (0 for insertions and SNVs)."""
        return max(len(self.ref) - len(self.alt), 0)

    @property
    def inserted(self) -> str:
        """Bases the ALT inserts after the anchor ('' for deletions and SNVs)."""
        return self.alt[len(self.ref) :] if len(self.alt) > len(self.ref) else ""


def allele_problem(ref: str, alt: str) -> str | None:
    """Why counting cannot count a locus with these alleles, or None: it counts SNVs and simple indels whose REF
    and ALT share their first base, one of them being that base alone (what `bcftools norm` writes)."""
    if not ref or not alt or set(ref + alt) - set("ACGT"):
        return "its alleles must be A, C, G and T only"
    if len(ref) == len(alt):
        return None if len(ref) == 1 and ref != alt else "it is neither an SNV nor an indel (an MNP?)"
    if ref[0] != alt[0] or min(len(ref), len(alt)) != 1:
        return "REF and ALT of an indel must share their first base, and one of them must be that base alone"
    return None


def allele_codes(locus: Locus) -> tuple[int, int]:
    """The codes a molecule's call has when it shows REF and when it shows ALT at `locus`."""
    if locus.is_indel:
        return ord(INDEL_REF), ord(INDEL_ALT)
    return ord(locus.ref), ord(locus.alt)


@dataclass
class ReadStats:
    """Per-sample read accounting for the QC table, and the molecules dropped by min_family_size,
    min_duplex_strands and duplex_single_strand (per locus, as the `molecules` figure counts them)."""

    reads_seen: int = 0
    filtered_unmapped: int = 0
    filtered_secondary: int = 0
    filtered_supplementary: int = 0
    filtered_qcfail: int = 0
    filtered_duplicate_flag: int = 0
    filtered_low_mapq: int = 0
    filtered_improper_pair: int = 0
    bases_low_quality: int = 0
    molecules_below_min_family_size: int = 0
    molecules_below_min_duplex_strands: int = 0
    molecules_single_strand_dropped: int = 0


@dataclass(slots=True)
class Molecule:
    """One collapsed molecule at one locus."""

    base: str  # A/C/G/T (indel loci: INDEL_REF, INDEL_ALT, INDEL_OTHER), or DISCORDANT
    read1_forward: bool
    fragment_length: int
    family_size: int
    fragment: int = 0  # the same number at every locus the molecule's fragment covers (see `fragment_id`)


@dataclass
class LocusMolecules:
    """One locus's molecules as arrays: base (ASCII code; DISCORDANT as ord('-')), read 1 on the forward strand,
    fragment length, family size, fragment identity (equal at every locus of one cluster that the molecule's
    fragment covers); and the number of reads with a base at the locus."""

    bases: np.ndarray
    read1_forward: np.ndarray
    lengths: np.ndarray
    family_sizes: np.ndarray
    reads: int
    fragments: np.ndarray

    @classmethod
    def from_molecules(cls, molecules: Sequence[Molecule], reads: int) -> LocusMolecules:
        return cls(
            bases=np.array([ord(m.base) for m in molecules], dtype=np.int64),
            read1_forward=np.array([m.read1_forward for m in molecules], dtype=bool),
            lengths=np.array([m.fragment_length for m in molecules], dtype=np.int64),
            family_sizes=np.array([m.family_size for m in molecules], dtype=np.int64),
            reads=reads,
            fragments=np.array([m.fragment for m in molecules], dtype=np.int64),
        )


# One cluster's molecules as one table, as the compiled engine builds them: an int64 row per molecule (ROW_*
# columns: the locus's index in the cluster, base, read 1 forward, fragment length, family size, fragment
# identity), sorted by locus and, within a locus, in the order LocusMolecules would hold them; and each locus's
# read depth. Tallying many loci at once from it costs a few numpy passes instead of Python per locus.
ClusterRows = tuple[np.ndarray, np.ndarray]
ROW_LOCUS, ROW_BASE, ROW_R1FWD, ROW_LENGTH, ROW_SIZE, ROW_FRAGMENT = range(6)


def cluster_rows_of(molecules: Sequence[LocusMolecules]) -> ClusterRows:
    """A cluster's per-locus molecules (the reference engine's) as one table."""
    sizes = [m.bases.size for m in molecules]
    rows = np.empty((sum(sizes), 6), dtype=np.int64)
    rows[:, ROW_LOCUS] = np.repeat(np.arange(len(molecules)), sizes)
    for column, name in ((ROW_BASE, "bases"), (ROW_R1FWD, "read1_forward"), (ROW_LENGTH, "lengths"),
                         (ROW_SIZE, "family_sizes"), (ROW_FRAGMENT, "fragments")):  # fmt: skip
        if molecules:
            rows[:, column] = np.concatenate([getattr(m, name) for m in molecules])
    return rows, np.array([m.reads for m in molecules], dtype=np.int64)


# What one read pair (or one read, when mates are not merged) shows at one locus: [info, bases, shortfall], with
# info = (fragment key, UMI, family size, read name, shortfall bits) taken from the first of its reads seen there,
# bases the calls of its reads at the locus (one character each, in reading order: a base, or at an indel locus
# INDEL_REF/ALT/OTHER) and shortfall the BELOW_* bits of any of its reads (consensus mode). Lists, not objects:
# there is one per read and locus.
_Template = list


def _observation(bases: str) -> str | None:
    """A template's call: None without a base, DISCORDANT when its two mates disagree, else its (first) base."""
    if not bases:
        return None
    if len(bases) == 2 and bases[0] != bases[1]:
        return DISCORDANT
    return bases[0]


class UmiSourceError(UserFacingError):
    """The configured UMI source finds no UMI in a file's first reads."""


def resolve_dedup_mode(alignments: pysam.AlignmentFile, settings: CountSettings) -> str:
    """The dedup mode for one file: `auto` becomes consensus (fgbio consensus reads, known from the @PG lines or
    the cD/cM/aD/bD tags), umi (reads carry UMIs from `umi_source`), flag (duplicates are marked) or
    coordinates, judged from the first PEEK_READS reads. A consensus file is never grouped again: `umi` or
    `coordinates` asked for one counts it as `consensus`, with a warning. Raises UmiSourceError when UMIs are
    expected (dedup `umi`, or umi_source `read_name`) but none of the first reads has one."""
    if settings.dedup in ("flag", "consensus", "none"):
        return settings.dedup
    path = alignments.filename.decode()
    program = consensus_program(alignments.header)
    peek = _Peek() if program is not None else _peek(alignments, settings)
    if program is not None or peek.consensus_tag is not None:
        if settings.dedup != "auto":
            log.warning("'%s' holds fgbio consensus reads (%s): each read pair is one molecule, so it is counted "
                        "as dedup: consensus, not grouped again by %s", path,
                        program or f"tag {peek.consensus_tag}", settings.dedup)  # fmt: skip
        return "consensus"
    if settings.dedup == "coordinates":
        return "coordinates"
    if peek.umi_read is not None:
        return "umi"
    if settings.dedup == "umi" or settings.umi_source == "read_name":
        raise _no_umi_error(path, peek.first_name, settings)
    return "flag" if peek.duplicate_flag else "coordinates"


def consensus_program(header: pysam.AlignmentHeader) -> str | None:
    """The @PG line (its ID) of an fgbio consensus caller in the header, or None."""
    for program in header.to_dict().get("PG", []):
        fields = " ".join(str(program.get(key, "")) for key in ("ID", "PN", "CL"))
        if any(name in fields for name in CONSENSUS_PROGRAMS):
            return str(program.get("ID", ""))
    return None


@dataclass
class _Peek:
    """What the first reads of a file show."""

    consensus_tag: str | None = None  # a consensus tag that a read carries
    umi_read: str | None = None  # the first read with a UMI
    duplicate_flag: bool = False
    first_name: str | None = None


def _peek(alignments: pysam.AlignmentFile, settings: CountSettings) -> _Peek:
    """What the first PEEK_READS reads show. It stops at the first read with a consensus tag (consensus reads
    can keep RX, so the tags are looked at first) or, without one, with a UMI."""
    peek = _Peek()
    for read in itertools.islice(alignments.fetch(until_eof=True), PEEK_READS):
        if peek.first_name is None:
            peek.first_name = read.query_name
        peek.consensus_tag = next((tag for tag in CONSENSUS_TAGS if read.has_tag(tag)), None)
        if peek.consensus_tag is not None:
            return peek
        if _has_umi(read, settings):
            peek.umi_read = read.query_name
            return peek
        peek.duplicate_flag = peek.duplicate_flag or read.is_duplicate
    return peek


def _has_umi(read: pysam.AlignedSegment, settings: CountSettings) -> bool:
    """A UMI tag (any value), or a read name that ends in a UMI: bases, or two runs of bases joined by '-' or
    '+' (not the read number Illumina puts last, `...:1101:15589:1331`)."""
    if settings.umi_source == "tag":
        return read.has_tag(settings.umi_tag)
    halves = read_name_umi(read.query_name, settings.umi_read_name_separator).upper().split("-")
    return len(halves) <= 2 and all(half and not set(half) - set("ACGTN") for half in halves)


def read_umi(read: pysam.AlignedSegment, settings: CountSettings) -> str:
    """A read's UMI as `umi_source` gives it ('' when it has none)."""
    if settings.umi_source == "read_name":
        return read_name_umi(read.query_name, settings.umi_read_name_separator)
    try:
        return str(read.get_tag(settings.umi_tag))
    except KeyError:
        return ""


def read_name_umi(name: str, separator: str) -> str:
    """The UMI at the end of a read name, after its last `separator` (umi_tools: `NAME_ACGT`; fastp and
    bcl-convert: `NAME:ACGT`); a dual UMI's `+` (bcl-convert: `ACGT+TTCA`) becomes `-`, as in fgbio's RX."""
    _, found, umi = name.rpartition(separator)
    return umi.replace("+", "-") if found else ""


def _no_umi_error(path: str, first_name: str | None, settings: CountSettings) -> UmiSourceError:
    if first_name is None:
        return UmiSourceError(f"'{path}' holds no reads, so no UMI (counting.dedup: umi)")
    if settings.umi_source == "read_name":
        where = f"a UMI after the last '{settings.umi_read_name_separator}' of its name"
        fix = ("set counting.umi_read_name_separator to the character before the UMI (umi_tools: '_'), or "
               "umi_source: tag if the UMIs are in a tag")  # fmt: skip
    else:
        where = f"a UMI in tag {settings.umi_tag}"
        fix = ("set counting.umi_tag to the tag that holds them, umi_source: read_name if they are at the end of "
               "the read names, or dedup: auto (coordinates or duplicate flags without UMIs)")  # fmt: skip
    return UmiSourceError(
        f"'{path}': none of the first {PEEK_READS:,} reads has {where} (the first read: '{first_name}'): {fix}"
    )


def filter_reason(read: pysam.AlignedSegment, settings: CountSettings, mode: str) -> str | None:
    """Why a read is not used, or None when it is."""
    if read.is_unmapped:
        return "filtered_unmapped"
    if read.is_secondary:
        return "filtered_secondary"
    if read.is_supplementary:
        return "filtered_supplementary"
    if read.is_qcfail:
        return "filtered_qcfail"
    if mode == "flag" and read.is_duplicate:
        return "filtered_duplicate_flag"
    if read.mapping_quality < settings.min_mapq:
        return "filtered_low_mapq"
    if settings.require_proper_pair and read.is_paired and not read.is_proper_pair:
        return "filtered_improper_pair"
    return None


def query_position(read: pysam.AlignedSegment, ref_pos0: int) -> int | None:
    """Index in the read's sequence of the base aligned to `ref_pos0` (0-based); None in a deletion or clip."""
    ref = read.reference_start
    query = 0
    for operation, length in read.cigartuples:
        if operation in _ALIGNED:
            if ref_pos0 < ref + length:
                return query + ref_pos0 - ref if ref_pos0 >= ref else None
            ref += length
            query += length
        elif operation in _READ_ONLY:
            query += length
        elif operation in _REFERENCE_ONLY:
            if ref_pos0 < ref + length:
                return None
            ref += length
    return None


def indel_call(
    cigar: Sequence[tuple[int, int]], start: int, anchor0: int, deleted: int, inserted: str, sequence: str
) -> tuple[str | None, int, int]:
    """What a read shows at an indel locus with its anchor at `anchor0` (0-based) and ALT deleting `deleted`
    bases or inserting `inserted` right after it: (call, index of the anchor in the read, length of an insertion
    right after the anchor, whose bases' qualities count with the anchor's). The call is

    - INDEL_ALT: the anchor is aligned and followed by exactly that deletion or insertion, then an aligned base;
    - INDEL_OTHER: another deletion or insertion starts right after the anchor or inside the deleted bases
      (or the ALT is followed by a second indel);
    - INDEL_REF: the anchor and the next max(deleted, 1) reference bases are aligned, with no indel between;
    - None: the anchor is not aligned, or the read ends, is clipped or spliced before that (it cannot tell).
    """
    ref, query, index = start, 0, 0
    n_operations = len(cigar)
    while index < n_operations:  # find the operation that aligns the anchor
        operation, length = cigar[index]
        if operation in _ALIGNED:
            if anchor0 < ref + length:
                break
            ref += length
            query += length
        elif operation in _READ_ONLY:
            query += length
        elif operation in _REFERENCE_ONLY:
            if anchor0 < ref + length:
                return None, 0, 0
            ref += length
        index += 1
    else:
        return None, 0, 0
    if anchor0 < ref:
        return None, 0, 0
    anchor_query = query + anchor0 - ref
    aligned_left = ref + length - anchor0 - 1  # aligned bases after the anchor in its operation
    position, query = anchor0 + 1, anchor_query + 1  # the next reference base and read base
    last = anchor0 + max(deleted, 1)  # the last reference base a REF read must show
    while position <= last:
        if aligned_left > 0:
            step = min(aligned_left, last - position + 1)
            position += step
            query += step
            aligned_left -= step
            continue
        index += 1
        if index == n_operations:
            return None, 0, 0
        operation, length = cigar[index]
        if operation in _ALIGNED:
            aligned_left = length
        elif operation in (1, 2):  # an insertion or a deletion in the window
            right_after_anchor = position == anchor0 + 1
            inserted_length = length if operation == 1 and right_after_anchor else 0
            if right_after_anchor and _is_alt(operation, length, deleted, inserted, sequence, query):
                return _after_alt(cigar, index), anchor_query, inserted_length
            return INDEL_OTHER, anchor_query, inserted_length
        else:  # a clip, splice or padding: the read cannot tell
            return None, 0, 0
    return INDEL_REF, anchor_query, 0


def _is_alt(operation: int, length: int, deleted: int, inserted: str, sequence: str, query: int) -> bool:
    if operation == 2:
        return deleted == length
    return len(inserted) == length and sequence[query : query + length] == inserted


def _after_alt(cigar: Sequence[tuple[int, int]], index: int) -> str | None:
    """The ALT indel is at cigar[index]: ALT when an aligned base follows, another indel when one follows (a
    complex event), None when the read ends or is clipped there."""
    if index + 1 == len(cigar):
        return None
    following = cigar[index + 1][0]
    if following in _ALIGNED:
        return INDEL_ALT
    return INDEL_OTHER if following in (1, 2) else None


def fragment_key(read: pysam.AlignedSegment) -> tuple[int, int, bool]:
    """(leftmost aligned position of the pair, fragment length, read 1 on the forward strand)."""
    if read.is_paired and not read.mate_is_unmapped and read.reference_id == read.next_reference_id:
        start = min(read.reference_start, read.next_reference_start)
        length = abs(read.template_length) or (read.reference_end - start)
        read1_reverse = read.is_reverse if read.is_read1 else read.mate_is_reverse
    else:
        start, length = read.reference_start, read.reference_end - read.reference_start
        read1_reverse = read.is_reverse if (read.is_read1 or not read.is_paired) else not read.is_reverse
    return start, length, not read1_reverse


def cluster_umis(umis: Counter[str], max_mismatches: int, duplex: bool = False) -> dict[str, str]:
    """Map each UMI to the seed of its cluster: seeds are taken by decreasing count, then name; a UMI joins the
    first seed within `max_mismatches` (Hamming, same length). With `duplex` UMIs (canonical, see
    `canonical_duplex_umi`) a UMI is also within reach of a seed whose halves, swapped, are that close: an error
    can change which strand's reading is the canonical one."""
    seeds: list[str] = []
    assignment = {}
    for umi, _count in sorted(umis.items(), key=lambda item: (-item[1], item[0])):
        seed = next((s for s in seeds if _reaches(s, umi, max_mismatches, duplex)), None)
        if seed is None:
            seeds.append(umi)
            seed = umi
        assignment[umi] = seed
    return assignment


def canonical_duplex_umi(umi: str) -> str:
    """One fragment's duplex UMI as both strands read it: "A-B" on one strand's read pairs is "B-A" on the
    other's (fgbio's paired UMIs); the smaller of the two readings. A UMI without exactly one '-' is kept."""
    swapped = _swap_halves(umi)
    return swapped if swapped < umi else umi


def _swap_halves(umi: str) -> str:
    first, dash, second = umi.partition("-")
    return f"{second}-{first}" if dash and "-" not in second else umi


def _reaches(seed: str, umi: str, max_mismatches: int, duplex: bool) -> bool:
    return _within(seed, umi, max_mismatches) or (duplex and _within(_swap_halves(seed), umi, max_mismatches))


def _within(a: str, b: str, max_mismatches: int) -> bool:
    if len(a) != len(b):
        return False
    return sum(x != y for x, y in zip(a, b, strict=True)) <= max_mismatches


def family_consensus(observations: Sequence[str], fraction: float) -> str | None:
    """The family's base: the most frequent called base if its share >= fraction and it is not tied; else
    DISCORDANT; None when no read pair of the family observed the locus."""
    n = len(observations)
    if n == 1:  # most families: one read pair
        return observations[0]
    if n == 0:
        return None
    first = observations[0]
    if first != DISCORDANT and fraction <= 1 and observations.count(first) == n:  # all copies agree
        return first
    bases = [o for o in observations if o != DISCORDANT]
    if not bases:
        return DISCORDANT
    ranked = Counter(bases).most_common(2)
    top_base, top_count = ranked[0]
    if len(ranked) > 1 and ranked[1][1] == top_count:
        return DISCORDANT
    return top_base if top_count >= fraction * len(bases) else DISCORDANT


def fragment_id(*key: Any) -> int:
    """A 64-bit number naming one fragment, the same at every locus it covers: from its read name (a template
    is a molecule) or its coordinates and UMI family seed. Within one process, as one cluster's loci are."""
    return hash(key)


def collapse(
    templates: Mapping[Any, _Template], mode: str, settings: CountSettings, stats: ReadStats | None = None
) -> list[Molecule]:
    """Group one locus's templates into molecules and call each molecule's base.

    Families share fragment coordinates (leftmost position, length), not read 1's strand: the two strands of one
    fragment (F1R2 and F2R1 pairs) are one molecule, as Picard and fgbio group them, so swapping mates never
    changes a count. A consensus molecule with a BELOW_* shortfall is dropped, and counted in `stats`; so is a
    raw UMI family below min_family_size, and (duplex UMIs) one that only one strand calls, unless kept."""
    molecules = []
    if mode not in ("umi", "coordinates"):  # flag, consensus, none: every template is its own molecule
        for name, (info, bases, shortfall) in templates.items():
            base = _observation(bases)
            if base is None:
                continue
            if shortfall:
                _count_shortfall(stats, shortfall)
                continue
            key = info[0]
            molecules.append(Molecule(base, key[2], key[1], info[2], fragment_id(name)))
        return molecules
    by_coordinates: dict[tuple[int, int], list[_Template]] = {}
    for template in templates.values():
        key = template[0][0][:2]
        members = by_coordinates.get(key)
        if members is None:
            by_coordinates[key] = [template]
        else:
            members.append(template)
    fraction = settings.consensus_fraction
    rules = _FamilyRules.of(settings, mode, stats)
    for members in by_coordinates.values():
        if len(members) == 1 and rules is None:  # the usual case: one read pair at these coordinates
            info, bases, _ = members[0]
            base = _observation(bases)
            if base is not None:
                fragment = fragment_id(info[0][0], info[0][1], info[1])
                molecules.append(Molecule(base, info[0][2], info[0][1], info[2], fragment))
            continue
        if mode == "umi":
            umi = members[0][0][1]
            if any(t[0][1] != umi for t in members):  # another molecule shares these coordinates
                umis = Counter(t[0][1] for t in members)
                seeds = cluster_umis(umis, settings.umi_mismatches, settings.umi_duplex)
                families: dict[str, list[_Template]] = {}
                for template in members:
                    families.setdefault(seeds[template[0][1]], []).append(template)
                for seed, family in families.items():
                    _add_family(molecules, family, fraction, seed, rules)
                continue
        _add_family(molecules, members, fraction, members[0][0][1], rules)
    return molecules


@dataclass(frozen=True)
class _FamilyRules:
    """What a raw UMI family must show to be a molecule: min_family_size read pairs, and with duplex UMIs both
    strands calling the locus (unless single-strand molecules are kept); `stats` counts the ones dropped."""

    min_family_size: int
    duplex: bool
    keep_single_strand: bool
    stats: ReadStats | None

    @classmethod
    def of(cls, settings: CountSettings, mode: str, stats: ReadStats | None) -> _FamilyRules | None:
        """The rules of a raw UMI file, None where every family is a molecule (no UMIs, or nothing to check)."""
        if mode != "umi" or (settings.min_family_size <= 1 and not settings.umi_duplex):
            return None
        keep = settings.duplex_single_strand == "keep"
        return cls(settings.min_family_size, settings.umi_duplex, keep, stats)

    def dropped(self, strands: int, size: int) -> bool:
        """Whether a family with a call is dropped (counted under its first reason: size, then strands)."""
        if size < self.min_family_size:
            if self.stats is not None:
                self.stats.molecules_below_min_family_size += 1
            return True
        if self.duplex and strands < 2 and not self.keep_single_strand:
            if self.stats is not None:
                self.stats.molecules_single_strand_dropped += 1
            return True
        return False


def _count_shortfall(stats: ReadStats | None, shortfall: int) -> None:
    """Count a dropped consensus molecule under its first reason: family size, then strands."""
    if stats is None:
        return
    if shortfall & BELOW_FAMILY_SIZE:
        stats.molecules_below_min_family_size += 1
    else:
        stats.molecules_below_min_duplex_strands += 1


def family_orientation(members: Sequence[tuple[str, bool]]) -> bool:
    """Read 1 forward for a family of (read name, read 1 forward) pairs: the orientation most of its read pairs
    have; on a tie, that of the read pair with the smallest name (any order of the reads gives the same answer)."""
    forward = sum(1 for _, read1_forward in members if read1_forward)
    if 2 * forward != len(members):
        return 2 * forward > len(members)
    return min(members)[1]


def duplex_consensus(
    first_strand: Sequence[str], second_strand: Sequence[str], fraction: float
) -> tuple[str | None, int]:
    """A duplex family's call from its two strands' observations, and how many strands call the locus.

    Each strand's consensus is `family_consensus` of its own read pairs. Both strands calling the same base give
    that base; strands that disagree, or one whose own copies disagree, give DISCORDANT: a base counts only when
    both strands show it, so damage or a PCR error on one strand never makes a mutant molecule (fgbio's
    CallDuplexConsensusReads masks such a base to N). A molecule only one strand calls (the other has no read
    pair there, or only bases below min_baseq) has that strand's call, with strands 1; none: (None, 0)."""
    first = family_consensus(first_strand, fraction)
    second = family_consensus(second_strand, fraction)
    if first is None or second is None:
        call = second if first is None else first
        return call, int(call is not None)
    return (first if first == second else DISCORDANT), 2


def _add_family(
    molecules: list[Molecule],
    members: list[_Template],
    fraction: float,
    umi: str,
    rules: _FamilyRules | None = None,
) -> None:
    """The family's molecule, unless `rules` drop it; `umi` is its seed (empty without UMIs), which names the
    fragment with the coordinates."""
    duplex = rules is not None and rules.duplex
    size = 0
    observations: list[str] = []
    reverse: list[str] = []  # duplex: the F2R1 strand's observations (`observations` holds the F1R2 strand's)
    for info, bases, _ in members:
        size += info[2]
        if bases:  # _observation, inline
            call = DISCORDANT if len(bases) == 2 and bases[0] != bases[1] else bases[0]
            (reverse if duplex and not info[0][2] else observations).append(call)
    if duplex:
        base, strands = duplex_consensus(observations, reverse, fraction)
    else:  # family_consensus does not depend on the order of the observations
        base, strands = family_consensus(observations, fraction), 1
    if base is not None and (rules is None or not rules.dropped(strands, size)):
        read1_forward = family_orientation([(info[3], info[0][2]) for info, _, _ in members])
        left, length = members[0][0][0][:2]
        molecules.append(Molecule(base, read1_forward, length, size, fragment_id(left, length, umi)))


def molecules_at_loci(
    alignments: pysam.AlignmentFile,
    chrom: str,
    loci: Sequence[Locus],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
) -> Iterator[tuple[Locus, list[Molecule], int]]:
    """Yield (locus, molecules, reads with a call there) for the loci of one contig, sorted by position."""
    loci = sorted(loci, key=lambda locus: locus.pos)
    for cluster in loci_clusters(loci):
        per_locus, read_depth = _read_cluster(alignments, chrom, cluster, settings, mode, stats)
        for locus, templates, depth in zip(cluster, per_locus, read_depth, strict=True):
            yield locus, collapse(templates, mode, settings, stats), depth


def loci_clusters(loci: Sequence[Locus]) -> Iterator[list[Locus]]:
    """Runs of loci (sorted by position) closer than CLUSTER_GAP to the previous one: fetched together."""
    cluster: list[Locus] = []
    for locus in loci:
        if cluster and locus.pos - cluster[-1].pos > CLUSTER_GAP:
            yield cluster
            cluster = []
        cluster.append(locus)
    if cluster:
        yield cluster


_DROPPED_ALWAYS = 0x4 | 0x100 | 0x200 | 0x800  # unmapped, secondary, QC fail, supplementary


def _read_cluster(
    alignments: pysam.AlignmentFile,
    chrom: str,
    cluster: list[Locus],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
) -> tuple[list[dict[Any, _Template]], list[int]]:
    """Every template at each of a cluster's loci (sorted by position), and each locus's read depth.

    The hot loop of counting: each read is looked at once, with plain ints and strings (a read that passes the
    cheap flag/MAPQ test is exactly one that `filter_reason` accepts)."""
    positions0 = [locus.pos - 1 for locus in cluster]
    indels = [(locus.deleted, locus.inserted) if locus.is_indel else None for locus in cluster]
    per_locus: list[dict[Any, _Template]] = [{} for _ in positions0]
    read_depth = [0] * len(positions0)
    drop_mask = _DROPPED_ALWAYS | (0x400 if mode == "flag" else 0)
    min_mapq, min_baseq = settings.min_mapq, settings.min_baseq
    proper_pair = settings.require_proper_pair
    merge_mates = settings.merge_mates
    check_mates = mode == "consensus"  # a shortfall of any read of a template drops it
    single = len(positions0) == 1
    only = positions0[0]
    tid = alignments.get_tid(chrom)
    seen = low_quality = 0
    for read in alignments.fetch(chrom, positions0[0], positions0[-1] + 1):
        seen += 1
        flag = read.flag
        if flag & drop_mask or read.mapping_quality < min_mapq or (proper_pair and flag & 0x3 == 0x1):
            reason = filter_reason(read, settings, mode)
            setattr(stats, reason, getattr(stats, reason) + 1)
            continue
        start = read.reference_start
        end = read.reference_end
        if single:
            if only < start or only >= end:
                continue
            first, last = 0, 1
        else:
            first = bisect.bisect_left(positions0, start)
            last = bisect.bisect_left(positions0, end)
            if first == last:
                continue
        cigar = read.cigarstring
        ungapped = cigar[-1] in "M=X" and cigar[:-1].isdigit()  # most reads: no clip, indel or splice
        sequence, qualities = read.query_sequence, read.query_qualities
        name = read.query_name
        key = name if merge_mates else (name, bool(flag & 0x40))
        info = None
        for index in range(first, last):
            indel = indels[index]
            if indel is None:
                offset = positions0[index] - start if ungapped else query_position(read, positions0[index])
                if offset is None:
                    continue
                call = sequence[offset]
                checked = 1  # bases whose quality counts: the locus's own
            else:
                call, offset, inserted = indel_call(
                    read.cigartuples, start, positions0[index], *indel, sequence
                )
                if call is None:
                    continue
                checked = 1 + inserted  # the anchor and an insertion right after it
            read_depth[index] += 1
            templates = per_locus[index]
            template = templates.get(key)
            if template is None or check_mates:
                if info is None:
                    info = _template_info(read, name, flag, start, end, tid, settings, mode)
                if template is None:
                    template = templates[key] = [info, "", info[4]]
                else:
                    template[2] |= info[4]
            if qualities is not None and (
                qualities[offset] < min_baseq
                if checked == 1
                else min(qualities[offset : offset + checked]) < min_baseq
            ):
                low_quality += 1
                continue
            template[1] += call
    stats.reads_seen += seen
    stats.bases_low_quality += low_quality
    return per_locus, read_depth


def _template_info(
    read: pysam.AlignedSegment,
    name: str,
    flag: int,
    start: int,
    end: int,
    tid: int,
    settings: CountSettings,
    mode: str,
) -> tuple[tuple[int, int, bool], str, int, str, int]:
    """(fragment_key(read), UMI, family size, read name, shortfall bits), from the flag and coordinates already
    read."""
    if flag & 0x9 == 0x1 and read.next_reference_id == tid:  # paired, mate mapped on this contig
        mate = read.next_reference_start
        left = start if start <= mate else mate
        length = abs(read.template_length) or (end - left)
        read1_reverse = flag & 0x10 if flag & 0x40 else flag & 0x20
    else:
        left, length = start, end - start
        read1_reverse = flag & 0x10 if flag & 0x41 != 0x1 else not flag & 0x10
    umi = ""
    family_size = 1
    shortfall = 0
    if mode == "umi":
        umi = read_umi(read, settings)
        if settings.umi_duplex:
            umi = canonical_duplex_umi(umi)
    elif mode == "consensus":
        family_size = _int_tag(read, "cD", 1)
        shortfall = consensus_shortfall(read, family_size, settings)
    return (left, length, not read1_reverse), umi, family_size, name, shortfall


def consensus_shortfall(read: pysam.AlignedSegment, family_size: int, settings: CountSettings) -> int:
    """BELOW_* bits of a consensus read: fewer raw reads (cD) than min_family_size; reads from fewer strands
    than min_duplex_strands (a strand counts when its depth, aD or bD, is above 0; a read without either tag
    is a single-strand consensus, one strand)."""
    shortfall = BELOW_FAMILY_SIZE if family_size < settings.min_family_size else 0
    if settings.min_duplex_strands and duplex_strands(read) < settings.min_duplex_strands:
        shortfall |= BELOW_DUPLEX_STRANDS
    return shortfall


def duplex_strands(read: pysam.AlignedSegment) -> int:
    """Strands with reads behind a consensus read: aD > 0 and bD > 0 count one each; neither tag: one."""
    if not read.has_tag("aD") and not read.has_tag("bD"):
        return 1
    return int(_int_tag(read, "aD", 0) > 0) + int(_int_tag(read, "bD", 0) > 0)


def _int_tag(read: pysam.AlignedSegment, tag: str, default: int) -> int:
    try:
        return int(read.get_tag(tag))
    except KeyError:
        return default
