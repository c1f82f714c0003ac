"""Reading alignments into molecules at panel loci.

One cfDNA fragment is one molecule. Reads are filtered, each read's base at a locus is looked up through its
CIGAR, the two mates of a fragment are merged into one observation (mates that disagree give no call), and read
pairs that are PCR copies of one molecule (same fragment coordinates and UMI) are collapsed by consensus.

The BAM/CRAM is streamed one cluster of nearby loci at a time, so memory depends on depth, not on file size.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pysam

log = logging.getLogger(__name__)

DEDUP_MODES = ("auto", "umi", "coordinates", "flag", "consensus", "none")
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
    consensus_fraction: float = 0.6
    merge_mates: bool = True

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> CountSettings:
        settings = cls(**(section or {}))
        if settings.dedup not in DEDUP_MODES:
            raise ValueError(
                f"counting.dedup must be one of {', '.join(DEDUP_MODES)}, not '{settings.dedup}'"
            )
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


@dataclass
class Molecule:
    """One collapsed molecule at one locus."""

    base: str  # A/C/G/T, or DISCORDANT
    read1_forward: bool
    fragment_length: int
    family_size: int


@dataclass
class _Template:
    """What one read pair (or one read, when mates are not merged) shows at one locus."""

    family_key: tuple[int, int, bool]
    umi: str
    family_size: int
    bases: list[str] = field(default_factory=list)

    def observation(self) -> str | None:
        if not self.bases:
            return None
        if len(self.bases) == 2 and self.bases[0] != self.bases[1]:
            return DISCORDANT
        return self.bases[0]


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


def cluster_umis(umis: Counter[str], max_mismatches: int) -> dict[str, str]:
    """Map each UMI to the seed of its cluster: seeds are taken by decreasing count, then name; a UMI joins the
    first seed within `max_mismatches` (Hamming, same length)."""
    seeds: list[str] = []
    assignment = {}
    for umi, _count in sorted(umis.items(), key=lambda item: (-item[1], item[0])):
        seed = next((s for s in seeds if _within(s, umi, max_mismatches)), None)
        if seed is None:
            seeds.append(umi)
            seed = umi
        assignment[umi] = seed
    return assignment


def _within(a: str, b: str, max_mismatches: int) -> bool:
    if len(a) != len(b):
        return False
    return sum(x != y for x, y in zip(a, b, strict=True)) <= max_mismatches


def family_consensus(observations: Sequence[str], fraction: float) -> str | None:
    """The family's base: the most frequent called base if its share >= fraction and it is not tied; else
    DISCORDANT; None when no read pair of the family observed the locus."""
    if len(observations) == 1:  # most families: one read pair
        return observations[0]
    bases = [o for o in observations if o != DISCORDANT]
    if not bases:
        return DISCORDANT if observations else None
    ranked = Counter(bases).most_common(2)
    top_base, top_count = ranked[0]
    if len(ranked) > 1 and ranked[1][1] == top_count:
        return DISCORDANT
    return top_base if top_count >= fraction * len(bases) else DISCORDANT


def collapse(templates: Mapping[Any, _Template], mode: str, settings: CountSettings) -> list[Molecule]:
    """Group one locus's templates into molecules and call each molecule's base."""
    families: dict[tuple[Any, ...], list[_Template]] = {}
    if mode == "umi":
        by_coordinates: dict[tuple[int, int, bool], list[_Template]] = {}
        for template in templates.values():
            by_coordinates.setdefault(template.family_key, []).append(template)
        for key, members in by_coordinates.items():
            umis = Counter(t.umi for t in members)
            if len(umis) == 1:  # the usual case: no other molecule shares these coordinates
                families[(key,)] = members
                continue
            seeds = cluster_umis(umis, settings.umi_mismatches)
            for template in members:
                families.setdefault((key, seeds[template.umi]), []).append(template)
    elif mode == "coordinates":
        for template in templates.values():
            families.setdefault((template.family_key,), []).append(template)
    else:  # flag, consensus, none: every remaining template is its own molecule
        families = {(name,): [template] for name, template in templates.items()}
    molecules = []
    for members in families.values():
        observations = [o for o in (t.observation() for t in members) if o is not None]
        base = family_consensus(observations, settings.consensus_fraction)
        if base is None:
            continue
        key = members[0].family_key
        size = sum(t.family_size for t in members)
        molecules.append(Molecule(base, key[2], key[1], size))
    return molecules


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
    for cluster in _clusters(loci):
        positions0 = [locus.pos - 1 for locus in cluster]
        per_locus: list[dict[Any, _Template]] = [{} for _ in cluster]
        read_depth = [0] * len(cluster)
        for read in alignments.fetch(chrom, positions0[0], positions0[-1] + 1):
            stats.reads_seen += 1
            reason = filter_reason(read, settings, mode)
            if reason is not None:
                setattr(stats, reason, getattr(stats, reason) + 1)
                continue
            _observe(read, positions0, per_locus, read_depth, settings, mode, stats)
        for locus, templates, depth in zip(cluster, per_locus, read_depth, strict=True):
            yield locus, collapse(templates, mode, settings), depth


def _clusters(loci: Sequence[Locus]) -> Iterator[list[Locus]]:
    cluster: list[Locus] = []
    for locus in loci:
        if cluster and locus.pos - cluster[-1].pos > CLUSTER_GAP:
            yield cluster
            cluster = []
        cluster.append(locus)
    if cluster:
        yield cluster


def _observe(
    read: pysam.AlignedSegment,
    positions0: list[int],
    per_locus: list[dict[Any, _Template]],
    read_depth: list[int],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
) -> None:
    first = bisect.bisect_left(positions0, read.reference_start)
    last = bisect.bisect_left(positions0, read.reference_end)
    if first == last:
        return
    sequence, qualities = read.query_sequence, read.query_qualities
    key = read.query_name if settings.merge_mates else (read.query_name, read.is_read1)
    cigar = read.cigartuples
    ungapped = len(cigar) == 1 and cigar[0][0] in _ALIGNED  # most reads: no clip, indel or splice
    start = read.reference_start
    for index in range(first, last):
        offset = positions0[index] - start if ungapped else query_position(read, positions0[index])
        if offset is None:
            continue
        read_depth[index] += 1
        template = per_locus[index].get(key)
        if template is None:
            template = _new_template(read, settings, mode)
            per_locus[index][key] = template
        if qualities is not None and qualities[offset] < settings.min_baseq:
            stats.bases_low_quality += 1
            continue
        template.bases.append(sequence[offset])


def _new_template(read: pysam.AlignedSegment, settings: CountSettings, mode: str) -> _Template:
    umi = read.get_tag(settings.umi_tag) if mode == "umi" and read.has_tag(settings.umi_tag) else ""
    family_size = int(read.get_tag("cD")) if mode == "consensus" and read.has_tag("cD") else 1
    return _Template(fragment_key(read), str(umi), family_size)
