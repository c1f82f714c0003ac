"""Reading alignments into molecules at panel loci.

One cfDNA fragment is one molecule. Reads are filtered, each read's base at a locus is looked up through its
CIGAR, the two mates of a fragment are merged into one observation (mates that disagree give no call), and read
pairs that are PCR copies of one molecule (same fragment coordinates and UMI) are collapsed by consensus.

The BAM/CRAM is streamed one cluster of nearby loci at a time, so memory depends on depth, not on file size.

This is the reference implementation of the counting rules, and the engine for CRAM. `mrdtrack.bamscan` applies
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
from typing import Any

import numpy as np
import pysam

log = logging.getLogger(__name__)

DEDUP_MODES = ("auto", "umi", "coordinates", "flag", "consensus", "none")
# compiled: mrdtrack.bamscan for indexed BAMs; pysam: this module everywhere; auto: compiled for BAMs >= 1.5 MB
ENGINES = ("auto", "compiled", "pysam")
DISCORDANT = "-"  # a pair or family that gives no call
CLUSTER_GAP = 1000  # loci closer than this are fetched together
PEEK_READS = 5000

# CIGAR operations that consume the reference and the read (M, =, X), only the read (I, S), only the reference (D, N).
_ALIGNED = {0, 7, 8}
_READ_ONLY = {1, 4}
_REFERENCE_ONLY = {2, 3}


@dataclass(frozen=True)
class CountSettings:
    """The counting rules; config/README.md documents each."""

    min_mapq: int = 20
    min_baseq: int = 20
    require_proper_pair: bool = False
    dedup: str = "auto"
    umi_tag: str = "RX"
    umi_mismatches: int = 1
    umi_duplex: bool = False
    consensus_fraction: float = 0.6
    merge_mates: bool = True
    engine: str = "auto"

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> CountSettings:
        settings = cls(**(section or {}))
        if settings.dedup not in DEDUP_MODES:
            raise ValueError(
                f"counting.dedup must be one of {', '.join(DEDUP_MODES)}, not '{settings.dedup}'"
            )
        if settings.engine not in ENGINES:
            raise ValueError(f"counting.engine must be one of {', '.join(ENGINES)}, not '{settings.engine}'")
        if not settings.merge_mates and settings.dedup not in ("none", "flag"):
            raise ValueError("counting.merge_mates: false counts reads, so it needs dedup 'none' or 'flag'")
        return settings


@dataclass(frozen=True)
class Locus:
    chrom: str  # the contig name as the alignment file spells it
    pos: int  # 1-based
    ref: str
    alt: str


@dataclass
class ReadStats:
    """Per-sample read accounting for the QC table."""

    reads_seen: int = 0
    filtered_unmapped: int = 0
    filtered_secondary: int = 0
    filtered_supplementary: int = 0
    filtered_qcfail: int = 0
    filtered_duplicate_flag: int = 0
    filtered_low_mapq: int = 0
    filtered_improper_pair: int = 0
    bases_low_quality: int = 0


@dataclass(slots=True)
class Molecule:
    """One collapsed molecule at one locus."""

    base: str  # A/C/G/T, or DISCORDANT
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


# What one read pair (or one read, when mates are not merged) shows at one locus: [info, bases], with info =
# (fragment key, UMI, family size, read name) taken from the first of its reads seen there and bases the called
# bases of its reads at the locus (one character each, in reading order). Lists, not objects: there is one per
# read and locus.
_Template = list


def _observation(bases: str) -> str | None:
    """A template's call: None without a base, DISCORDANT when its two mates disagree, else its (first) base."""
    if not bases:
        return None
    if len(bases) == 2 and bases[0] != bases[1]:
        return DISCORDANT
    return bases[0]


def resolve_dedup_mode(alignments: pysam.AlignmentFile, settings: CountSettings) -> str:
    """`auto` becomes umi (reads carry UMIs), consensus (fgbio consensus reads), flag (duplicates are marked)
    or coordinates, judged from the first reads of the file."""
    if settings.dedup != "auto":
        return settings.dedup
    has_duplicate_flag = False
    for read in itertools.islice(alignments.fetch(until_eof=True), PEEK_READS):
        if read.has_tag(settings.umi_tag):
            return "umi"
        if read.has_tag("cD"):
            return "consensus"
        has_duplicate_flag = has_duplicate_flag or read.is_duplicate
    return "flag" if has_duplicate_flag else "coordinates"


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


def collapse(templates: Mapping[Any, _Template], mode: str, settings: CountSettings) -> list[Molecule]:
    """Group one locus's templates into molecules and call each molecule's base.

    Families share fragment coordinates (leftmost position, length), not read 1's strand: the two strands of one
    fragment (F1R2 and F2R1 pairs) are one molecule, as Picard and fgbio group them, so swapping mates never
    changes a count."""
    molecules = []
    if mode not in ("umi", "coordinates"):  # flag, consensus, none: every template is its own molecule
        for name, (info, bases) in templates.items():
            base = _observation(bases)
            if base is not None:
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
    for members in by_coordinates.values():
        if len(members) == 1:  # the usual case: one read pair at these coordinates
            info, bases = members[0]
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
                    _add_family(molecules, family, fraction, seed)
                continue
        _add_family(molecules, members, fraction, members[0][0][1])
    return molecules


def family_orientation(members: Sequence[tuple[str, bool]]) -> bool:
    """Read 1 forward for a family of (read name, read 1 forward) pairs: the orientation most of its read pairs
    have; on a tie, that of the read pair with the smallest name (any order of the reads gives the same answer)."""
    forward = sum(1 for _, read1_forward in members if read1_forward)
    if 2 * forward != len(members):
        return 2 * forward > len(members)
    return min(members)[1]


def _add_family(molecules: list[Molecule], members: list[_Template], fraction: float, umi: str) -> None:
    """The family's molecule; `umi` is its seed (empty without UMIs), which names the fragment with the
    coordinates."""
    observations = []
    size = 0
    for info, bases in members:
        size += info[2]
        if bases:  # _observation, inline
            observations.append(DISCORDANT if len(bases) == 2 and bases[0] != bases[1] else bases[0])
    base = family_consensus(observations, fraction)
    if base is not None:
        read1_forward = family_orientation([(info[3], info[0][2]) for info, _ in members])
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
    """Yield (locus, molecules, reads with a base there) for the loci of one contig, sorted by position."""
    loci = sorted(loci, key=lambda locus: locus.pos)
    for cluster in loci_clusters(loci):
        positions0 = [locus.pos - 1 for locus in cluster]
        per_locus, read_depth = _read_cluster(alignments, chrom, positions0, settings, mode, stats)
        for locus, templates, depth in zip(cluster, per_locus, read_depth, strict=True):
            yield locus, collapse(templates, mode, settings), depth


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
    positions0: list[int],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
) -> tuple[list[dict[Any, _Template]], list[int]]:
    """Every template at each of a cluster's loci (0-based `positions0`, sorted), and each locus's read depth.

    The hot loop of counting: each read is looked at once, with plain ints and strings (a read that passes the
    cheap flag/MAPQ test is exactly one that `filter_reason` accepts)."""
    per_locus: list[dict[Any, _Template]] = [{} for _ in positions0]
    read_depth = [0] * len(positions0)
    drop_mask = _DROPPED_ALWAYS | (0x400 if mode == "flag" else 0)
    min_mapq, min_baseq = settings.min_mapq, settings.min_baseq
    proper_pair = settings.require_proper_pair
    merge_mates = settings.merge_mates
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
            offset = positions0[index] - start if ungapped else query_position(read, positions0[index])
            if offset is None:
                continue
            read_depth[index] += 1
            templates = per_locus[index]
            template = templates.get(key)
            if template is None:
                if info is None:
                    info = _template_info(read, name, flag, start, end, tid, settings, mode)
                template = templates[key] = [info, ""]
            if qualities is not None and qualities[offset] < min_baseq:
                low_quality += 1
                continue
            template[1] += sequence[offset]
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
) -> tuple[tuple[int, int, bool], str, int, str]:
    """(fragment_key(read), UMI, family size, read name), from the flag and coordinates already read."""
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
    if mode == "umi":
        try:
            umi = str(read.get_tag(settings.umi_tag))
        except KeyError:
            umi = ""
        if settings.umi_duplex:
            umi = canonical_duplex_umi(umi)
    elif mode == "consensus":
        try:
            family_size = int(read.get_tag("cD"))
        except KeyError:
            family_size = 1
    return (left, length, not read1_reverse), umi, family_size, name
