"""Per-locus molecule counts of one sample: the count table, fragment-length histogram and QC summary."""

from __future__ import annotations

import bisect
import collections
import contextlib
import functools
import itertools
import logging
import operator
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pysam

from mrdtrack.counting import molecules as molecule_rules
from mrdtrack.counting.flanks import (
    FlankCluster,
    FlankTally,
    FlankWindow,
    FlankWork,
    cluster_flank_table,
    flank_work,
    joined_flanks,
    no_flanks,
)
from mrdtrack.counting.molecules import (
    DISCORDANT,
    ROW_BASE,
    ROW_FRAGMENT,
    ROW_LENGTH,
    ROW_LOCUS,
    ROW_R1FWD,
    ROW_SIZE,
    ClusterRows,
    CountSettings,
    Locus,
    LocusMolecules,
    ReadStats,
    allele_codes,
    allele_problem,
    cluster_rows_of,
    loci_clusters,
    molecules_at_loci,
    resolve_dedup_mode,
)
from mrdtrack.counting.reference_match import COMPARED_FIELDS, mismatch_problem, reference_mismatch_rate
from mrdtrack.inputs.alignments import (
    AlignmentInputError,
    cram_reference_mismatch,
    open_alignments,
    reference_differences,
)
from mrdtrack.inputs.panel import compact_panel, contig_map, unique_loci
from mrdtrack.logs import UserFacingError
from mrdtrack.processes import fork_pool
from mrdtrack.tables import columns_of, tsv_writer

if TYPE_CHECKING:
    from mrdtrack.counting.bamscan import BamScanner

log = logging.getLogger(__name__)
# A warning when more raw duplex families than this share are dropped as single-strand: a duplex library
# sequenced for duplex calling sees both strands of a good share of its molecules; 90% single-strand hints at
# UMIs that are not duplex, or far too few read pairs per molecule.
SINGLE_STRAND_WARNING = 0.9

# Below this size `engine: auto` counts a BAM with pysam: measured break-even of the two engines, whose difference
# is then the ~0.3 s the compiled engine needs to import numba and load its cached kernels.
AUTO_COMPILED_MIN_BYTES = 1_500_000

COUNT_COLUMNS = columns_of("counts")  # mrdtrack.tables.CONTRACTS


class PanelLocusError(UserFacingError):
    """A panel locus whose alleles counting cannot count (neither an SNV nor a normalised indel)."""


FRAGMENT_COLUMNS = columns_of("fragments")  # mrdtrack.tables.CONTRACTS


@dataclass
class SampleCounts:
    """What counting one sample gives: its tables (docs/tables.md) and its QC.

    Parameters
    ----------
    counts : pandas.DataFrame or None
        Molecules per panel locus (COUNT_COLUMNS); None when count_sample wrote them to a file.
    fragment_lengths : pandas.DataFrame
        Molecules per fragment length, mutant and wild-type.
    qc : dict
        Reads and molecules kept and dropped, the dedup mode used and how often the reads disagree with the
        reference (the sample's qc.json).
    fragments : pandas.DataFrame
        Fragments informative at two or more panel loci (FRAGMENT_COLUMNS).
    flanks : pandas.DataFrame
        Molecules at the flank positions around the sample's own panel loci (`flanks` contract; flanks.py).
    """

    counts: pd.DataFrame | None
    fragment_lengths: pd.DataFrame
    qc: dict[str, Any]
    fragments: pd.DataFrame  # FRAGMENT_COLUMNS: fragments informative at two or more panel loci
    flanks: pd.DataFrame = field(default_factory=no_flanks)


def count_sample(
    sample_id: str,
    alignment_path: str,
    reference: str,
    panel: pd.DataFrame,
    settings: CountSettings,
    threads: int = 1,
    check_reference: bool = False,
    patient_id: str | None = None,
    counts_path: str | os.PathLike[str] | None = None,
) -> SampleCounts:
    """Count molecules at every unique locus of the cohort panel in one BAM/CRAM, and at the flank positions
    around the sample's own patient's panel loci (flanks.py).

    The loci are counted a block of BLOCK_LOCI at a time (a sorted panel, as results/panel/loci.tsv is), each
    block's count rows made and handed on before the next block's loci are: with `counts_path` they go
    straight to that file, so that memory does not grow with a genome-wide cohort panel's loci.
    With `threads` > 1 the clusters of nearby loci, and those of flank positions, are split into contiguous
    chunks counted by that many worker processes (each opens the file itself); the results are the same, byte
    for byte, whatever `threads` is.
    The QC summary holds how often the reads around the panel loci disagree with `reference`
    (`reference_mismatch_rate`, config/README.md "Checks of the alignments against the reference").

    Parameters
    ----------
    sample_id : str
        The sample, written in every row.
    alignment_path : str
        An indexed BAM or CRAM.
    reference : str
        The reference FASTA (decodes a CRAM; a BAM's contigs are matched to its names).
    panel : pandas.DataFrame
        The cohort panel (results/panel/loci.tsv); each distinct locus is counted once.
    settings : CountSettings
        The counting rules.
    threads : int
        Worker processes.
    check_reference : bool
        Stop on a file that does not match the reference: its header's panel contigs, lengths or MD5s, or reads
        that disagree with it far beyond sequencing errors (before anything is counted).
    patient_id : str, optional
        The sample's patient: its panel loci's flanks are counted too (none when None).
    counts_path : path, optional
        Write the count table there, block by block and atomically (as `write_tsv` writes it), instead of
        returning it.

    Returns
    -------
    SampleCounts
        The sample's count, fragment-length, fragment and flank tables and its QC; its `counts` is None when
        they went to `counts_path`.

    Raises
    ------
    AlignmentInputError
        The file cannot be read, or is truncated or corrupt, or (CRAM) was encoded against another reference;
        with `check_reference`, it does not match the reference.
    PanelLocusError
        A panel locus is neither an SNV nor a normalised indel.
    UmiSourceError
        UMIs are expected but none of the first reads carries one.
    """
    loci = compact_panel(unique_loci(panel))  # held throughout: a genome-wide panel's loci as categories
    _check_alleles(loci)
    if check_reference:
        _require_matching_header(sample_id, alignment_path, reference, loci)
    blocks: list[pd.DataFrame] = []
    with contextlib.ExitStack() as stack:
        add_counts = (
            blocks.append
            if counts_path is None
            else stack.enter_context(tsv_writer(counts_path, COUNT_COLUMNS))
        )
        try:
            with open_alignments(alignment_path, reference) as alignments:
                mode = resolve_dedup_mode(alignments, settings)
                names = _bam_contig_names(alignments, loci["chrom"].unique(), alignment_path)
                mismatches = _reference_mismatches(alignments, reference, loci, names, settings)
                problem = mismatch_problem(sample_id, alignment_path, *mismatches)
                if check_reference and problem:
                    raise AlignmentInputError(problem)
                window = FlankWindow(settings.flank_window, settings.flank_gap)
                flanks_to_count = flank_work(alignments, reference, panel, patient_id, window)
                job = _Job(sample_id, alignment_path, reference, names, settings, mode, threads)
                totals = _count_blocks(job, alignments, loci, flanks_to_count, add_counts)
        except OSError:  # htslib and bgzf.py report truncated or corrupt blocks while reading (and closing)
            reference_mismatch = cram_reference_mismatch(
                alignment_path, reference, list(loci["chrom"].unique())
            )
            if reference_mismatch:
                raise AlignmentInputError(f"sample {sample_id}: {reference_mismatch}") from None
            raise AlignmentInputError(
                f"'{alignment_path}' is truncated or corrupt, or its index belongs to another version of the "
                "file (its blocks could not be decoded): re-index it (samtools index); if that does not help, "
                "re-create it from the source data"
            ) from None
    qc = totals.qc(mode) | _mismatch_qc(*mismatches)
    if qc["molecules"] == 0:
        log.warning("%s: no molecule at any panel locus in '%s' (failed capture, wrong file or wrong panel?); "
                    "its calls will be indeterminate", sample_id, alignment_path)  # fmt: skip
    single = qc["molecules_single_strand_dropped"]
    if single > SINGLE_STRAND_WARNING * (single + qc["molecules"]):
        log.warning("%s: %d of %d UMI families in '%s' have read pairs of one strand only (one read 1 "
                    "orientation) and were dropped (counting.duplex_single_strand: drop): are its UMIs duplex "
                    "(umi_duplex), and deep enough in read pairs to see both strands?", sample_id, single,
                    single + qc["molecules"], alignment_path)  # fmt: skip
    counts = None
    if counts_path is None:
        counts = pd.concat(blocks, ignore_index=True) if len(blocks) > 1 else blocks[0]
    flanks = flanks_to_count.in_order(joined_flanks(totals.flank_tables))
    return SampleCounts(
        counts, _length_table(totals.lengths), qc, _fragment_table(totals.shared, loci), flanks
    )


# Cohort loci counted at a time: a block's loci are made objects, counted and turned into count rows before the
# next block's are, so that a genome-wide cohort panel's hundreds of thousands of loci are never all held as
# objects, count columns and rows at once. Blocks end between clusters (molecules.CLUSTER_GAP), so a cluster of
# dense loci is in one block however long it is.
BLOCK_LOCI = 16_384


@dataclass(frozen=True)
class _Job:
    """What counting one sample's blocks shares."""

    sample_id: str
    path: str
    reference: str
    names: dict[str, str]  # contig as the table spells it -> as the file does
    settings: CountSettings
    mode: str
    threads: int


@dataclass
class _Totals:
    """What the blocks of one sample add up to: read statistics, the fragment-length histogram, fragments
    shared between loci, the flank tables, and per locus what the QC summary is computed from."""

    stats: ReadStats = field(default_factory=ReadStats)
    lengths: Counter[tuple[str, int]] = field(default_factory=Counter)
    shared: Counter[tuple[str, str, str, int]] = field(default_factory=Counter)
    flank_tables: list[pd.DataFrame] = field(default_factory=list)
    molecules: list[np.ndarray] = field(default_factory=list)  # per locus, all four kinds
    family_sizes: list[np.ndarray] = field(default_factory=list)  # per locus, the mean
    informative: list[np.ndarray] = field(default_factory=list)  # per locus, REF + ALT

    def add(self, part: _Part, flank_table: pd.DataFrame) -> None:
        self.lengths.update(part.lengths)
        self.shared.update(part.shared)
        for name, value in asdict(part.stats).items():
            setattr(self.stats, name, getattr(self.stats, name) + value)
        self.flank_tables.append(flank_table)

    def add_counts(self, counts: pd.DataFrame) -> None:
        self.molecules.append(counts[list(_MOLECULE_COLUMNS)].to_numpy().sum(axis=1))
        self.family_sizes.append(counts["mean_family_size"].to_numpy(dtype=float))
        self.informative.append((counts["ref_molecules"] + counts["alt_molecules"]).to_numpy())

    def qc(self, mode: str) -> dict[str, Any]:
        molecules = pd.Series(np.concatenate(self.molecules), dtype=np.int64)
        templates = float((molecules * pd.Series(np.concatenate(self.family_sizes), dtype=float)).sum())
        total = int(molecules.sum())
        informative = pd.Series(np.concatenate(self.informative), dtype=np.int64)
        return asdict(self.stats) | {
            "molecules": total,
            "mean_family_size": templates / total if total else 0.0,
            "duplicate_rate": 1 - total / templates if templates else 0.0,
            "median_fragment_length": _median_length(self.lengths),
            "mean_molecules_per_locus": float(informative.mean()) if len(informative) else 0.0,
            "dedup_mode": mode,
        }


def _count_blocks(
    job: _Job,
    alignments: pysam.AlignmentFile,
    loci: pd.DataFrame,
    flanks: FlankWork,
    add_counts: Callable[[pd.DataFrame], None],
) -> _Totals:
    """Count the loci block by block (`_loci_blocks`), each block with the flank units among its loci, handing
    each block's count table to `add_counts`, in order. With worker processes, the next BLOCKS_AHEAD blocks are
    handed out before a block's results are gathered, so that the workers do not wait for this process."""
    totals = _Totals()
    blocks = _loci_blocks(loci)
    flank_units = _flank_units_of_blocks(loci, blocks, flanks.units)
    pool = fork_pool(min(job.threads, len(loci) + len(flanks.units)))
    pending: collections.deque[tuple[pd.DataFrame, np.ndarray, list]] = collections.deque()

    def gather() -> None:
        block, order, counting = pending.popleft()
        counted = [item.result() for item in counting] if pool is not None else counting
        for part, flank_table in counted:
            totals.add(part, flank_table)
        counts = _count_table(job.sample_id, block, order, [part.columns for part, _ in counted])
        totals.add_counts(counts)
        add_counts(counts)

    with pool if pool is not None else contextlib.nullcontext():
        for (first, end), block_flanks in zip(blocks, flank_units, strict=True):
            block = loci.iloc[first:end]
            units, order = _work_units(block, job.names)
            pending.append((block, order, _count_block(job, alignments, pool, units, block_flanks)))
            if len(pending) > (BLOCKS_AHEAD if pool is not None else 0):
                gather()
        while pending:
            gather()
    return totals


# Blocks handed to the worker processes ahead of the one whose results are gathered.
BLOCKS_AHEAD = 2


def _count_block(
    job: _Job,
    alignments: pysam.AlignmentFile,
    pool: Any,
    units: list[_Unit],
    flank_units: list[_FlankUnit],
) -> list:
    """One block's units counted in this process ((part, flank table) of each), or handed to the pool's workers
    in chunks (`_chunks`; their futures)."""
    if pool is None:
        return [_count_units(alignments, units, FlankWork(flank_units), job.settings, job.mode)]
    return [
        pool.submit(
            _count_units_in_file,
            job.path,
            job.reference,
            chunk,
            FlankWork(flank_chunk),
            job.settings,
            job.mode,
        )
        for chunk, flank_chunk in _chunks(units, flank_units, job.threads)
    ]


def _loci_blocks(loci: pd.DataFrame) -> list[tuple[int, int]]:
    """Row ranges of `loci` of about BLOCK_LOCI loci each, ending between clusters; the whole table as one block
    when it is not sorted by contig (contigs contiguous) and position, as the count table keeps its order."""
    n = len(loci)
    if n <= BLOCK_LOCI:
        return [(0, n)]
    contig, _ = pd.factorize(loci["chrom"])
    pos = loci["pos"].to_numpy(dtype=np.int64)
    new_contig, step = np.diff(contig), np.diff(pos)
    if (new_contig < 0).any() or ((new_contig == 0) & (step < 0)).any():
        return [(0, n)]
    cluster_starts = np.flatnonzero((new_contig != 0) | (step > molecule_rules.CLUSTER_GAP)) + 1
    bounds = [0]
    for start in cluster_starts.tolist():
        if start - bounds[-1] >= BLOCK_LOCI:
            bounds.append(start)
    bounds.append(n)
    return list(itertools.pairwise(bounds))


def _flank_units_of_blocks(
    loci: pd.DataFrame, blocks: list[tuple[int, int]], flank_units: list[_FlankUnit]
) -> list[list[_FlankUnit]]:
    """The flank units counted with each block: each with the last block that starts before it (by contig, in
    the loci's order, and position)."""
    if len(blocks) == 1:
        return [flank_units]
    rank = {chrom: i for i, chrom in enumerate(loci["chrom"].unique())}
    chrom, pos = loci["chrom"].to_numpy(), loci["pos"].to_numpy(dtype=np.int64)
    starts = [(rank[chrom[first]], int(pos[first])) for first, _ in blocks]
    of_block: list[list[_FlankUnit]] = [[] for _ in blocks]
    for unit in flank_units:
        at = bisect.bisect_right(starts, (rank[unit[0]], int(unit[2].pos[0]))) - 1
        of_block[max(at, 0)].append(unit)
    return of_block


def _require_matching_header(sample_id: str, path: str, reference: str, loci: pd.DataFrame) -> None:
    """Stop on a header whose panel contigs differ from the reference. A CRAM's MD5s are left to htslib, which
    checks the reference under every slice it decodes (hashing whole contigs would cost more than counting)."""
    contigs = list(loci["chrom"].unique())
    differences = reference_differences(
        path, reference, contigs, compare_md5=not path.lower().endswith(".cram")
    )
    if differences:
        found = "; ".join(message for _kind, message in differences[:3]) + (
            "; ..." if len(differences) > 3 else ""
        )
        raise AlignmentInputError(
            f"sample {sample_id}: the header of '{path}' does not match the reference '{reference}': {found}. "
            f"The reads were aligned to another genome build: re-align the sample to {reference}, or set "
            "`reference` to the FASTA it was aligned to"
        )


def _reference_mismatches(
    alignments: pysam.AlignmentFile,
    reference: str,
    loci: pd.DataFrame,
    names: dict[str, str],
    settings: CountSettings,
) -> tuple[int, int]:
    if not reference:  # `mrdtrack count` of a BAM without --reference
        return 0, 0
    with pysam.FastaFile(reference) as fasta, _for_comparison(alignments, reference) as reads:
        return reference_mismatch_rate(reads, fasta, loci, names, settings.min_mapq, settings.min_baseq)


def _for_comparison(alignments: pysam.AlignmentFile, reference: str) -> contextlib.AbstractContextManager:
    """The file's reads for the reference comparison: a CRAM is opened again decoding only the fields it reads,
    which halves the cost of its decoding; a BAM's open handle is used as it is."""
    if not alignments.is_cram:
        return contextlib.nullcontext(alignments)
    fields = f"required_fields=0x{COMPARED_FIELDS:X}".encode()
    return pysam.AlignmentFile(
        alignments.filename.decode(), reference_filename=reference, format_options=[fields]
    )


def _mismatch_qc(mismatches: int, compared: int) -> dict[str, Any]:
    return {
        "reference_mismatch_rate": mismatches / compared if compared else None,
        "reference_bases_compared": compared,
    }


def _check_alleles(loci: pd.DataFrame) -> None:
    """Stop at the first locus whose alleles cannot be counted (each distinct REF/ALT pair is judged once)."""
    pairs = zip(loci["ref"].astype(str), loci["alt"].astype(str), strict=True)
    problems = {pair: allele_problem(*pair) for pair in set(pairs)}
    if all(problem is None for problem in problems.values()):
        return
    for locus in loci.itertuples(index=False):
        problem = problems[(str(locus.ref), str(locus.alt))]
        if problem is not None:
            raise PanelLocusError(
                f"panel locus {locus.chrom}:{locus.pos} {locus.ref}>{locus.alt} (patients {locus.panel_patients}) "
                f"cannot be counted: {problem}; normalise the panel VCF (bcftools norm -m -any -f reference)"
            )


# One unit of work: the loci of one cluster (contig as the table and as the file spell it, loci sorted by position).
_Unit = tuple[str, str, list[Locus]]
_FlankUnit = tuple[str, str, FlankCluster]


def _work_units(loci: pd.DataFrame, names: dict[str, str]) -> tuple[list[_Unit], np.ndarray]:
    """The clusters of loci, contig by contig (in the table's order) and by position, and which row of `loci`
    each of the units' loci is, in the units' order (the count table puts the loci back in the table's order)."""
    contig, _ = pd.factorize(loci["chrom"])
    # by contig, then position; lexsort is stable, so loci at one position keep the table's order
    order = np.lexsort((loci["pos"].to_numpy(), contig))
    columns = (loci[name].to_numpy()[order].tolist() for name in ("chrom", "pos", "ref", "alt"))
    units: list[_Unit] = []
    for chrom, group in itertools.groupby(zip(*columns, strict=True), key=lambda row: row[0]):
        bam_loci = [Locus(names[chrom], int(pos), ref, alt) for _, pos, ref, alt in group]
        units.extend((chrom, names[chrom], cluster) for cluster in loci_clusters(bam_loci))
    return units, order


def _chunks(
    units: list[_Unit], flank_units: list[_FlankUnit], threads: int
) -> list[tuple[list[_Unit], list[_FlankUnit]]]:
    """Contiguous chunks of the panel units and of the flank units among them, of about equal numbers of loci
    and flank positions, a few per worker (so that one slow chunk does not leave the other workers idle); one
    chunk with one thread. A flank unit goes with the panel units of its contig that start before it."""
    if threads <= 1 or len(units) + len(flank_units) < 2:
        return [(units, flank_units)]
    rank = {contig: i for i, contig in enumerate(dict.fromkeys(unit[:2] for unit in [*units, *flank_units]))}
    both = sorted(
        [(rank[unit[:2]], unit[2][0].pos, False, unit) for unit in units]
        + [(rank[unit[:2]], int(unit[2].pos[0]), True, unit) for unit in flank_units],
        key=lambda item: item[:3],
    )
    target = max(sum(len(item[3][2]) for item in both) // (4 * threads), 1)
    chunks: list[tuple[list[_Unit], list[_FlankUnit]]] = [([], [])]
    size = 0
    for *_, is_flank, unit in both:
        if size >= target:
            chunks.append(([], []))
            size = 0
        chunks[-1][is_flank].append(unit)
        size += len(unit[2])
    return chunks


@dataclass
class _Part:
    """What one worker counted: the count columns of its loci (in the units' order), the length histogram,
    multi-locus fragments and read statistics."""

    columns: dict[str, np.ndarray]
    lengths: Counter[tuple[str, int]]
    shared: Counter[tuple[str, str, str, int]]
    stats: ReadStats


def _count_units_in_file(
    path: str, reference: str, units: list[_Unit], flanks: FlankWork, settings: CountSettings, mode: str
) -> tuple[_Part, pd.DataFrame]:
    with open_alignments(path, reference) as alignments:
        return _count_units(alignments, units, flanks, settings, mode)


def _count_units(
    alignments: pysam.AlignmentFile, units: list[_Unit], flanks: FlankWork, settings: CountSettings, mode: str
) -> tuple[_Part, pd.DataFrame]:
    """Count the units' loci and the flank positions among them, in one pass of the file: the loci's molecules
    are tallied many clusters at a time (LociTally), and only the count columns stay in memory, not per-locus
    objects; the flanks' molecules are tallied into the flank table batch by batch."""
    stats = ReadStats()
    loci_tally = LociTally()
    shared: Counter[tuple[str, str, str, int]] = Counter()

    def flank_clusters() -> Iterator[tuple[str, FlankCluster, list[LocusMolecules] | FlankTally]]:
        for is_flank, chrom, cluster, found in joint_tables(
            alignments, units, flanks.units, settings, mode, stats
        ):
            if is_flank:
                yield chrom, cluster, found
                continue
            codes = _cluster_codes(cluster)
            loci_tally.add(found, codes)
            if len(cluster) > 1:  # a fragment shared between loci needs two of them
                shared.update(shared_fragments(chrom, cluster, found, codes))

    flank_table = cluster_flank_table(flank_clusters())  # drives the panel loci's tally too
    return _Part(loci_tally.columns(), loci_tally.lengths, shared, stats), flank_table


@functools.lru_cache(maxsize=4096)
def _codes(ref: str, alt: str) -> tuple[int, int]:
    """`allele_codes` by the alleles: a genome-wide panel has a few dozen distinct pairs in 100,000s of loci."""
    return allele_codes(Locus("", 0, ref, alt))


@functools.lru_cache(maxsize=4096)
def _one_locus_codes(ref: str, alt: str) -> np.ndarray:
    """`_cluster_codes` of a one-locus cluster, shared (read only): a genome-wide signature's loci are nearly all
    clusters of their own."""
    codes = np.array([_codes(ref, alt)], dtype=np.int64)
    codes.flags.writeable = False
    return codes


def _cluster_codes(cluster: list[Locus]) -> np.ndarray:
    """The (REF, ALT) codes of a cluster's loci, one row per locus (`allele_codes`)."""
    if len(cluster) == 1:
        return _one_locus_codes(cluster[0].ref, cluster[0].alt)
    return np.array([_codes(locus.ref, locus.alt) for locus in cluster], dtype=np.int64)


# Loci per piece of a cluster at most. Loci closer than molecules.CLUSTER_GAP are one cluster, so a genome-wide
# signature's dense loci can make one cluster of thousands; the compiled engine reads such a cluster piece by
# piece (its reads counted as the whole cluster's), so that it holds one piece's reads at once, not the cluster's.
# Should it hand a cluster over to the reference engine after some pieces (a record it leaves alone), a read
# that spans the handover counts twice in the QC's read figures; the molecule counts are the same.
CLUSTER_PIECE = 128


def cluster_tables(
    alignments: pysam.AlignmentFile, units: list[_Unit], settings: CountSettings, mode: str, stats: ReadStats
) -> Iterator[tuple[str, list[Locus], ClusterRows]]:
    """`cluster_molecules` with each cluster's molecules as one table (ClusterRows), as the compiled engine
    builds them; the reference engine's per-locus molecules are joined into one. The compiled engine reads a
    cluster in pieces of CLUSTER_PIECE loci."""
    for _, chrom, cluster, table in joint_tables(alignments, units, [], settings, mode, stats):
        yield chrom, cluster, table


def joint_tables(
    alignments: pysam.AlignmentFile,
    units: list[_Unit],
    flank_units: list[_FlankUnit],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
) -> Iterator[tuple[bool, str, list[Locus] | FlankCluster, ClusterRows | list[LocusMolecules] | FlankTally]]:
    """The clusters of panel loci (`units`, each as one ClusterRows, as `cluster_tables`) and of flank positions
    (`flank_units`: their molecules as `cluster_molecules` gives them), contig by contig in the order of `units`
    and, within a contig, in the order the compiled engine completes them (by the end of each cluster's
    region): (is a flank cluster, contig as the table spells it, cluster, molecules). The compiled
    engine reads both kinds in one pass of the file; only the panel loci's reads count in `stats`. Each kind
    comes in its own order."""
    scanner = _scanner(alignments, settings, mode)
    panel_of, flanks_of = (
        {
            key: [unit[2] for unit in group]
            for key, group in itertools.groupby(kind, key=lambda unit: unit[:2])
        }
        for kind in (units, flank_units)
    )
    try:
        for contig in dict.fromkeys([*panel_of, *flanks_of]):
            yield from _contig_tables(
                alignments, scanner, contig, panel_of.get(contig, []), flanks_of.get(contig, []), settings, mode,
                stats,
            )  # fmt: skip
    finally:
        if scanner is not None:
            scanner.close()


def _contig_tables(
    alignments: pysam.AlignmentFile,
    scanner: BamScanner | None,
    contig: tuple[str, str],
    clusters: list[list[Locus]],
    flank_clusters: list[FlankCluster],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
) -> Iterator[tuple[bool, str, list[Locus] | FlankCluster, ClusterRows | list[LocusMolecules] | FlankTally]]:
    """`joint_tables` of one contig. Panel clusters are read in pieces of CLUSTER_PIECE loci."""
    chrom, bam_chrom = contig
    if scanner is not None and flank_clusters:
        panel_positions = np.fromiter((locus.pos - 1 for c in clusters for locus in c), dtype=np.int64)
        flank_clusters = scanner.joined_flank_clusters(
            alignments.get_tid(bam_chrom), flank_clusters, np.sort(panel_positions)
        )
    # (where its reads end, is flank, cluster index, piece number, piece), sorted, as the scanner completes them:
    # a piece's region reaches the next piece of its cluster, so a cluster's pieces stay in order
    pieces = _panel_pieces(clusters) + [(int(c.pos[-1]), True, i, 0, c) for i, c in enumerate(flank_clusters)]
    pieces.sort(key=operator.itemgetter(0, 1, 2, 3))
    found: Iterable[ClusterRows | FlankTally | None] = [None] * len(pieces)
    if scanner is not None:  # yields piece by piece, so that memory stays flat
        previous = [-1] * len(pieces)
        # where each piece of a cluster in several pieces is, by (cluster index, piece number)
        where = {
            piece[2:4]: k
            for k, piece in enumerate(pieces)
            if not piece[1] and len(clusters[piece[2]]) > CLUSTER_PIECE
        }
        for (i, number), k in where.items():
            if number:
                previous[k] = where[(i, number - 1)]
        found = scanner.joint_rows(
            alignments.get_tid(bam_chrom), [piece[4] for piece in pieces], [piece[1] for piece in pieces],
            stats, previous,
        )  # fmt: skip
    tables: list[ClusterRows | None] = []  # the pieces of a cluster of panel loci so far
    for (_, is_flank, index, number, _), table in zip(pieces, found, strict=True):
        if is_flank:
            cluster = flank_clusters[index]
            yield (
                True,
                chrom,
                cluster,
                _flank_molecules(alignments, bam_chrom, cluster, table, settings, mode),
            )
            continue
        tables.append(table)
        cluster = clusters[index]
        if (number + 1) * CLUSTER_PIECE >= len(cluster):  # its last piece
            yield (
                False,
                chrom,
                cluster,
                _cluster_table(alignments, bam_chrom, cluster, tables, settings, mode, stats),
            )
            tables = []


def _panel_pieces(clusters: list[list[Locus]]) -> list[tuple[int, bool, int, int, list[Locus]]]:
    """The pieces of CLUSTER_PIECE loci of each cluster of panel loci: (where its reads end, False, cluster index,
    piece number, its loci); a cluster of a few loci (nearly all of them) is one piece."""
    pieces = []
    for i, cluster in enumerate(clusters):
        if len(cluster) <= CLUSTER_PIECE:
            pieces.append((cluster[-1].pos, False, i, 0, cluster))
            continue
        for at in range(0, len(cluster), CLUSTER_PIECE):
            piece = cluster[at : at + CLUSTER_PIECE]
            pieces.append((_piece_end(cluster, at), False, i, at // CLUSTER_PIECE, piece))
    return pieces


def _piece_end(cluster: list[Locus], at: int) -> int:
    """The end of the region of the piece of `cluster` from locus `at` (0-based, exclusive: bamscan's): its last
    locus, or where the next piece starts if that is further."""
    end = cluster[min(at + CLUSTER_PIECE, len(cluster)) - 1].pos
    return max(end, cluster[at + CLUSTER_PIECE].pos - 1) if at + CLUSTER_PIECE < len(cluster) else end


def _flank_molecules(
    alignments: pysam.AlignmentFile,
    bam_chrom: str,
    cluster: FlankCluster,
    found: FlankTally | None,
    settings: CountSettings,
    mode: str,
) -> FlankTally | list[LocusMolecules]:
    """A flank cluster's molecules: the compiled engine's tally, or (None) each position's by the reference
    engine (flank positions have no read statistics)."""
    if found is not None:
        return found
    return _reference_molecules(alignments, bam_chrom, cluster, settings, mode, ReadStats())


def _reference_molecules(
    alignments: pysam.AlignmentFile,
    bam_chrom: str,
    cluster: Sequence[Locus],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
) -> list[LocusMolecules]:
    """Each locus's molecules of a cluster, by the reference engine (its reads counted in `stats`)."""
    return [
        LocusMolecules.from_molecules(found, depth)
        for _, found, depth in molecules_at_loci(alignments, bam_chrom, cluster, settings, mode, stats)
    ]


def _cluster_table(
    alignments: pysam.AlignmentFile,
    bam_chrom: str,
    cluster: list[Locus],
    tables: list[ClusterRows | None],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
) -> ClusterRows:
    """One cluster's table from its pieces' tables. Pieces the compiled engine left (None: all of them, or those
    after a record it leaves to pysam) are counted by the reference engine, together."""
    if len(tables) == 1 and tables[0] is not None:  # a cluster in one piece, counted by the compiled engine
        return tables[0]
    done = list(itertools.takewhile(lambda table: table is not None, tables))
    loci_done = sum(len(depth) for _, depth in done)
    if loci_done < len(cluster):
        rest = _reference_molecules(alignments, bam_chrom, cluster[loci_done:], settings, mode, stats)
        done.append(cluster_rows_of(rest))
    if len(done) == 1:
        return done[0]
    first = np.cumsum([0] + [len(depth) for _, depth in done[:-1]])
    rows = np.concatenate([rows for rows, _ in done])
    rows[:, ROW_LOCUS] += np.repeat(first, [len(rows) for rows, _ in done])
    return rows, np.concatenate([depth for _, depth in done])


def cluster_molecules(
    alignments: pysam.AlignmentFile,
    units: list[_Unit],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
) -> Iterator[tuple[str, list[Locus], list[LocusMolecules]]]:
    """(contig as the table spells it, cluster, molecules per locus) of each unit, by the compiled engine
    where it can and the reference engine elsewhere: the one way loci are counted, one object per locus
    (`joint_tables` hands the compiled engine's molecules over as whole tables)."""
    scanner = _scanner(alignments, settings, mode)
    try:
        for (chrom, bam_chrom), group in itertools.groupby(units, key=lambda unit: unit[:2]):
            clusters = [unit[2] for unit in group]
            found: Iterable[list[LocusMolecules] | None] = [None] * len(clusters)
            if scanner is not None:  # yields cluster by cluster, so that memory stays flat
                found = scanner.molecules(alignments.get_tid(bam_chrom), clusters, stats)
            for cluster, molecules in zip(clusters, found, strict=True):
                if molecules is None:  # the reference engine
                    molecules = _reference_molecules(alignments, bam_chrom, cluster, settings, mode, stats)
                yield chrom, cluster, molecules
    finally:
        if scanner is not None:
            scanner.close()


def settings_for_job(alignment_paths: Sequence[str], settings: CountSettings) -> CountSettings:
    """`settings` for counting these alignments one after another in one process (a job of several samples):
    `auto` takes the compiled engine when their sizes add up to AUTO_COMPILED_MIN_BYTES, since its loading is
    then paid once for all of them. The counts are the same with either engine.

    Parameters
    ----------
    alignment_paths : sequence of str
        The job's BAM/CRAM files.
    settings : CountSettings
        The configured counting rules.

    Returns
    -------
    CountSettings
        `settings`, with engine `compiled` where `auto` would pay the compiled engine's loading once for all.
    """
    sizes = sum(os.path.getsize(p) for p in alignment_paths if os.path.isfile(p))
    if settings.engine == "auto" and len(alignment_paths) > 1 and sizes >= AUTO_COMPILED_MIN_BYTES:
        return replace(settings, engine="compiled")
    return settings


def _scanner(alignments: pysam.AlignmentFile, settings: CountSettings, mode: str) -> BamScanner | None:
    """The compiled engine for an indexed BAM, else None (the pysam engine). `auto` leaves BAMs under
    AUTO_COMPILED_MIN_BYTES to pysam: loading the compiled code takes longer than pysam needs for them."""
    path = alignments.filename.decode()
    if settings.engine == "pysam" or alignments.is_cram or not os.path.isfile(path):  # a URL: htslib reads it
        return None
    if settings.engine == "auto" and os.path.getsize(path) < AUTO_COMPILED_MIN_BYTES:
        return None
    from mrdtrack.counting.bamscan import BamScanner  # imports numba (~0.15 s): only when it is used

    scanner = BamScanner(path, alignments, settings, mode)
    return scanner if scanner.available else None


def _bam_contig_names(alignments: pysam.AlignmentFile, contigs: Any, path: str) -> dict[str, str]:
    names = contig_map(contigs, alignments.references)
    missing = [c for c in contigs if c not in names]
    if missing:
        raise AlignmentInputError(
            f"'{path}' has no contig matching {', '.join(missing)} (its contigs: "
            f"{', '.join(alignments.references[:5])}...): was it aligned to another genome build?"
        )
    return names


def tally(locus: Locus, molecules: LocusMolecules, alleles: np.ndarray | None = None) -> dict[str, Any]:
    """Count one locus's molecules by allele and read orientation (`alleles`: their `_alleles`, if known)."""
    if not molecules.bases.size:  # most cohort loci of a sample captured with one pool of panels
        return dict(_NO_MOLECULES, reads=molecules.reads)
    if alleles is None:
        alleles = _alleles(molecules.bases, locus)
    row: dict[str, Any] = {}
    for allele in ("ref", "alt", "other", "discordant"):
        row[f"{allele}_molecules"] = int(np.count_nonzero(alleles == allele))
    for allele in ("ref", "alt"):
        forward = molecules.read1_forward[alleles == allele]
        row[f"{allele}_f1r2"] = int(np.count_nonzero(forward))
        row[f"{allele}_f2r1"] = int(forward.size - np.count_nonzero(forward))
    row["reads"] = molecules.reads
    sizes = molecules.family_sizes
    row["mean_family_size"] = float(np.mean(sizes)) if sizes.size else 0.0
    row["alt_lengths"] = ",".join(str(n) for n in np.sort(molecules.lengths[alleles == "alt"]))
    return {column: row[column] for column in COUNT_COLUMNS[7:]}


def _alleles(bases: np.ndarray, locus: Locus) -> np.ndarray:
    """Each molecule's allele class: ref, alt, other or discordant."""
    ref, alt = allele_codes(locus)
    alleles = np.full(bases.shape, "other", dtype=object)
    alleles[bases == ord(DISCORDANT)] = "discordant"
    alleles[bases == ref] = "ref"
    alleles[bases == alt] = "alt"
    return alleles


_NO_MOLECULES = {
    column: {"mean_family_size": 0.0, "alt_lengths": ""}.get(column, 0) for column in COUNT_COLUMNS[7:]
}


# Molecules tallied at once by LociTally (its arrays and the tally's take about 8 MB).
TALLY_BATCH = 1 << 16
# A molecule's allele class in LociTally's bincounts; the columns of `counts` in this order.
_REF, _ALT, _OTHER, _DISCORDANT = range(4)
_MOLECULE_COLUMNS = ("ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules")


class LociTally:
    """`tally` of many loci at once: clusters' molecule tables are kept until about TALLY_BATCH molecules have
    come, then counted together with np.bincount by (locus, allele) and (locus, allele, read orientation), so a
    locus costs no Python of its own. Holds the count columns of the loci tallied so far (in the order they
    came) and their fragment-length histogram (`lengths`, as `_length_table` reads it)."""

    def __init__(self) -> None:
        self.waiting: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.size = 0
        self.done: list[dict[str, np.ndarray]] = []
        self.lengths: Counter[tuple[str, int]] = Counter()

    def add(self, table: ClusterRows, codes: np.ndarray) -> None:
        """One cluster's molecule table and its loci's (REF, ALT) codes (`allele_codes`), one row per locus."""
        rows, depth = table
        self.waiting.append((rows, depth, codes))
        self.size += len(rows)
        if self.size >= TALLY_BATCH:
            self._tally()

    def columns(self) -> dict[str, np.ndarray]:
        """COUNT_COLUMNS[7:] of every locus added, in the order added."""
        self._tally()
        if not self.done:
            return _tally_columns(*_joined([]), Counter())
        return {name: np.concatenate([batch[name] for batch in self.done]) for name in self.done[0]}

    def _tally(self) -> None:
        if self.waiting:
            self.done.append(_tally_columns(*_joined(self.waiting), self.lengths))
        self.waiting, self.size = [], 0


def _joined(
    tables: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clusters' tables as one: each molecule's locus (numbered across the clusters), its rows, and each
    locus's read depth and allele codes."""
    if not tables:
        return (
            np.zeros(0, np.int64),
            np.zeros((0, 6), np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, 2), np.int64),
        )
    first = np.cumsum([0] + [len(depth) for _, depth, _ in tables[:-1]])
    rows = np.concatenate([rows for rows, _, _ in tables])
    locus = rows[:, ROW_LOCUS] + np.repeat(first, [len(rows) for rows, _, _ in tables])
    depth = np.concatenate([depth for _, depth, _ in tables])
    codes = np.concatenate([codes for _, _, codes in tables])
    return locus, rows, depth, codes


def _tally_columns(
    locus: np.ndarray,
    rows: np.ndarray,
    depth: np.ndarray,
    codes: np.ndarray,
    lengths: Counter[tuple[str, int]],
) -> dict[str, np.ndarray]:
    """The count columns (COUNT_COLUMNS[7:]) of len(depth) loci from their molecules (`locus`: each molecule's
    locus), adding the REF and ALT molecules' fragment lengths to `lengths`. The same numbers as `tally`."""
    n = len(depth)
    bases = rows[:, ROW_BASE]
    is_ref, is_alt = bases == codes[locus, 0], bases == codes[locus, 1]
    allele = np.where(bases == ord(DISCORDANT), _DISCORDANT, _OTHER)
    allele[is_ref], allele[is_alt] = _REF, _ALT
    cell = locus * 4 + allele
    counts = np.bincount(cell, minlength=4 * n).reshape(n, 4)
    f1r2 = np.bincount(cell[rows[:, ROW_R1FWD] != 0], minlength=4 * n).reshape(n, 4)
    molecules = counts.sum(axis=1)
    # np.mean of each locus's family sizes: integer sums, exact in float64, divided as np.mean divides
    size_sums = np.bincount(locus, weights=rows[:, ROW_SIZE], minlength=n)
    mean_size = np.zeros(n)
    np.divide(size_sums, molecules, out=mean_size, where=molecules > 0)
    columns = {name: counts[:, column] for column, name in enumerate(_MOLECULE_COLUMNS)}
    columns |= {
        "alt_f1r2": f1r2[:, _ALT],
        "alt_f2r1": counts[:, _ALT] - f1r2[:, _ALT],
        "ref_f1r2": f1r2[:, _REF],
        "ref_f2r1": counts[:, _REF] - f1r2[:, _REF],
        "reads": depth,
        "mean_family_size": mean_size,
        "alt_lengths": _alt_lengths(n, locus[is_alt], rows[is_alt, ROW_LENGTH]),
    }
    for name, chosen in (("ref", is_ref), ("alt", is_alt)):
        values, times = _histogram(rows[chosen, ROW_LENGTH])
        lengths.update(dict(zip(((name, v) for v in values.tolist()), times.tolist(), strict=True)))
    return {name: columns[name] for name in COUNT_COLUMNS[7:]}


DENSE_LENGTHS = 1 << 16  # fragment lengths below this are counted by np.bincount


def _histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values and how often each occurs, as np.unique(values, return_counts=True) gives them; by
    np.bincount, without a sort, when the values are small non-negative integers (fragment lengths)."""
    if not values.size or values.min() < 0 or values.max() >= DENSE_LENGTHS:
        return np.unique(values, return_counts=True)
    times = np.bincount(values)
    present = np.flatnonzero(times)
    return present, times[present]


def _alt_lengths(n: int, locus: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each locus's ALT fragment lengths, sorted and comma-joined ("" for the many loci without ALT molecules)."""
    text = np.full(n, "", dtype=object)
    if not locus.size:
        return text
    order = np.lexsort((lengths, locus))
    locus, lengths = locus[order], lengths[order]
    bounds = np.flatnonzero(np.diff(locus)) + 1
    starts = np.concatenate([[0], bounds])
    text[locus[starts]] = [",".join(map(str, group)) for group in np.split(lengths, bounds)]
    return text


def shared_fragments(
    chrom: str, cluster: list[Locus], table: ClusterRows, codes: np.ndarray
) -> Counter[tuple[str, str, str, int]]:
    """Fragments informative (REF or ALT) at two or more loci of one cluster, as (chrom, loci, alleles, length):
    loci `pos:ref:alt` joined by `,`, alleles one letter per locus (R or A), length that of a fragment with an
    ALT (-1 for REF-only fragments, which are tallied together). `table` holds the cluster's molecules
    (ClusterRows), `codes` each locus's (REF, ALT) codes (`allele_codes`).

    One fragment is one piece of evidence, however many panel loci it covers: the caller needs to know which
    molecules of different loci are one fragment. Two loci at one position (two ALTs of a multi-allelic site)
    are one base of the fragment: it is kept at the first locus where it is informative.
    """
    found: Counter[tuple[str, str, str, int]] = Counter()
    if len(cluster) < 2:
        return found
    rows = table[0]
    where = rows[:, ROW_LOCUS]
    bases = rows[:, ROW_BASE]
    alt = bases == codes[where, 1]
    informative = alt | (bases == codes[where, 0])
    # each molecule's fragment numbered by a hash table (pd.factorize), not a sort: the numbers only group them
    inverse, _ = pd.factorize(rows[informative, ROW_FRAGMENT])
    multi = np.flatnonzero(np.bincount(inverse)[inverse] >= 2)
    if not multi.size:
        return found
    locus_index, is_alt = where[informative][multi], alt[informative][multi]
    length, fragment = rows[informative, ROW_LENGTH][multi], inverse[multi]
    order = np.lexsort((locus_index, fragment))
    bounds = np.flatnonzero(np.diff(fragment[order])) + 1
    for members in np.split(order, bounds):
        loci, letters, positions = [], [], set()
        for i in members:
            locus = cluster[locus_index[i]]
            if locus.pos in positions:
                continue
            positions.add(locus.pos)
            loci.append(f"{locus.pos}:{locus.ref}:{locus.alt}")
            letters.append("A" if is_alt[i] else "R")
        if len(loci) >= 2:
            fragment_length = int(length[members[0]]) if "A" in letters else -1
            found[(chrom, ",".join(loci), "".join(letters), fragment_length)] += 1
    return found


def _fragment_table(shared: Counter[tuple[str, str, str, int]], loci: pd.DataFrame) -> pd.DataFrame:
    rank = {chrom: i for i, chrom in enumerate(loci["chrom"].unique())}

    def order(item: tuple[tuple[str, str, str, int], int]) -> tuple:
        chrom, loci_text = item[0][:2]
        return rank[chrom], int(loci_text.split(":", 1)[0]), item[0][1:]

    rows = [(*key, count) for key, count in sorted(shared.items(), key=order)]
    frame = pd.DataFrame(rows, columns=FRAGMENT_COLUMNS)
    return frame.astype({"length": np.int64, "fragments": np.int64})


def _count_table(
    sample_id: str, loci: pd.DataFrame, order: np.ndarray, parts: list[dict[str, np.ndarray]]
) -> pd.DataFrame:
    """The count table in the order of `loci`, from the parts' count columns (the units' order: the loci's rows
    `order`)."""
    if loci.empty:
        return pd.DataFrame([], columns=COUNT_COLUMNS)
    frame = loci[list(COUNT_COLUMNS[1:7])].reset_index(drop=True)
    text = [name for name in frame.columns if isinstance(frame[name].dtype, pd.CategoricalDtype)]
    frame = frame.astype({"pos": np.int64} | dict.fromkeys(text, object))
    frame.insert(0, "sample_id", sample_id)
    for name in COUNT_COLUMNS[7:]:
        joined = np.concatenate([part[name] for part in parts])
        values = np.empty_like(joined)
        values[order] = joined
        frame[name] = values
    return frame


def _length_table(lengths: Counter[tuple[str, int]]) -> pd.DataFrame:
    rows = [{"allele": a, "length": n, "molecules": c} for (a, n), c in sorted(lengths.items())]
    return pd.DataFrame(rows, columns=["allele", "length", "molecules"])


def _median_length(lengths: Counter[tuple[str, int]]) -> float | None:
    """The median fragment length of the molecules in the histogram, as np.median of one length per molecule
    gives it (the mean of the two middle ones for an even number), without that array of every molecule."""
    per_length: Counter[int] = Counter()
    for (_allele, length), molecules in lengths.items():
        per_length[length] += molecules
    total = sum(per_length.values())
    if not total:
        return None
    values = np.array(sorted(per_length), dtype=np.int64)
    ends = np.cumsum([per_length[v] for v in values.tolist()])  # molecules up to each length
    low, high = values[np.searchsorted(ends, [(total - 1) // 2, total // 2], side="right")]
    return float(np.mean([low, high]))
