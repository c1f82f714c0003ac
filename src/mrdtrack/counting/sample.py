"""Per-locus molecule counts of one sample: the count table, fragment-length histogram and QC summary."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pysam

from mrdtrack.counting.flanks import (
    FlankTally,
    FlankWindow,
    FlankWork,
    count_flanks,
    flank_work,
    joined_flanks,
    no_flanks,
)
from mrdtrack.counting.molecules import (
    DISCORDANT,
    CountSettings,
    Locus,
    LocusMolecules,
    ReadStats,
    allele_codes,
    allele_problem,
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
from mrdtrack.inputs.panel import contig_map, unique_loci
from mrdtrack.logs import UserFacingError
from mrdtrack.processes import fork_pool
from mrdtrack.tables import columns_of

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
    counts : pandas.DataFrame
        Molecules per panel locus (COUNT_COLUMNS).
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

    counts: pd.DataFrame
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
) -> SampleCounts:
    """Count molecules at every unique locus of the cohort panel in one BAM/CRAM, and at the flank positions
    around the sample's own patient's panel loci (flanks.py).

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

    Returns
    -------
    SampleCounts
        The sample's count, fragment-length, fragment and flank tables and its QC.

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
    loci = unique_loci(panel)
    _check_alleles(loci)
    if check_reference:
        _require_matching_header(sample_id, alignment_path, reference, loci)
    try:
        with open_alignments(alignment_path, reference) as alignments:
            mode = resolve_dedup_mode(alignments, settings)
            names = _bam_contig_names(alignments, loci["chrom"].unique(), alignment_path)
            mismatches = _reference_mismatches(alignments, reference, loci, names, settings)
            problem = mismatch_problem(sample_id, alignment_path, *mismatches)
            if check_reference and problem:
                raise AlignmentInputError(problem)
            units = _work_units(loci, names)
            chunks = _chunks(units, threads)
            window = FlankWindow(settings.flank_window, settings.flank_gap)
            flanks_to_count = flank_work(alignments, reference, panel, patient_id, window)
            flank_chunks = _chunks(flanks_to_count.units, threads) if flanks_to_count.units else []
            pool = fork_pool(min(threads, len(chunks) + len(flank_chunks)))  # a few chunks per worker
            if pool is None:
                parts = [_count_units(alignments, units, settings, mode)]
                flank_parts = [_count_flanks(alignments, flanks_to_count, settings, mode)]
        if pool is not None:
            with pool:
                futures = [
                    pool.submit(_count_units_in_file, alignment_path, reference, chunk, settings, mode)
                    for chunk in chunks
                ]
                flank_futures = [
                    pool.submit(
                        _count_flanks_in_file,
                        alignment_path,
                        reference,
                        flanks_to_count.part(chunk),
                        settings,
                        mode,
                    )
                    for chunk in flank_chunks
                ]
                parts = [future.result() for future in futures]
                flank_parts = [future.result() for future in flank_futures]
        flanks = joined_flanks(flank_parts)
    except OSError:  # htslib reports truncated or corrupt blocks while reading (and closing)
        reference_mismatch = cram_reference_mismatch(alignment_path, reference, list(loci["chrom"].unique()))
        if reference_mismatch:
            raise AlignmentInputError(f"sample {sample_id}: {reference_mismatch}") from None
        raise AlignmentInputError(
            f"'{alignment_path}' is truncated or corrupt, or its index belongs to another version of the file "
            "(htslib could not decode it): re-index it (samtools index); if that does not help, re-create it "
            "from the source data"
        ) from None
    stats = ReadStats()
    by_locus: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    lengths: Counter[tuple[str, int]] = Counter()
    shared: Counter[tuple[str, str, str, int]] = Counter()
    for part in parts:
        by_locus.update(part.by_locus)
        lengths.update(part.lengths)
        shared.update(part.shared)
        for name, value in asdict(part.stats).items():
            setattr(stats, name, getattr(stats, name) + value)
    counts = _count_table(sample_id, loci, by_locus)
    qc = _qc(stats, counts, lengths, mode) | _mismatch_qc(*mismatches)
    if qc["molecules"] == 0:
        log.warning("%s: no molecule at any panel locus in '%s' (failed capture, wrong file or wrong panel?); "
                    "its calls will be indeterminate", sample_id, alignment_path)  # fmt: skip
    single = qc["molecules_single_strand_dropped"]
    if single > SINGLE_STRAND_WARNING * (single + qc["molecules"]):
        log.warning("%s: %d of %d UMI families in '%s' have read pairs of one strand only (one read 1 "
                    "orientation) and were dropped (counting.duplex_single_strand: drop): are its UMIs duplex "
                    "(umi_duplex), and deep enough in read pairs to see both strands?", sample_id, single,
                    single + qc["molecules"], alignment_path)  # fmt: skip
    return SampleCounts(counts, _length_table(lengths), qc, _fragment_table(shared, loci), flanks)


def _count_flanks_in_file(
    path: str, reference: str, work: FlankWork, settings: CountSettings, mode: str
) -> pd.DataFrame:
    with open_alignments(path, reference) as alignments:
        return _count_flanks(alignments, work, settings, mode)


def _count_flanks(
    alignments: pysam.AlignmentFile, work: FlankWork, settings: CountSettings, mode: str
) -> pd.DataFrame:
    """The flank table of `work`'s positions: their molecules by the engine that counts the panel loci (the
    compiled one builds each cluster's families once for all its positions)."""

    def molecules_of(units: list[_Unit], stats: ReadStats) -> Iterator[tuple]:
        return cluster_molecules(alignments, units, settings, mode, stats, flanks=True)

    return count_flanks(work, molecules_of)


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
    for locus in loci.itertuples(index=False):
        problem = allele_problem(str(locus.ref), str(locus.alt))
        if problem is not None:
            raise PanelLocusError(
                f"panel locus {locus.chrom}:{locus.pos} {locus.ref}>{locus.alt} (patients {locus.panel_patients}) "
                f"cannot be counted: {problem}; normalise the panel VCF (bcftools norm -m -any -f reference)"
            )


# One unit of work: the loci of one cluster (contig as the table and as the file spell it, loci sorted by position).
_Unit = tuple[str, str, list[Locus]]


def _work_units(loci: pd.DataFrame, names: dict[str, str]) -> list[_Unit]:
    units = []
    for chrom, group in loci.groupby("chrom", sort=False):
        bam_loci = [Locus(names[chrom], int(r.pos), r.ref, r.alt) for r in group.itertuples()]
        bam_loci.sort(key=lambda locus: locus.pos)
        units.extend((chrom, names[chrom], cluster) for cluster in loci_clusters(bam_loci))
    return units


def _chunks(units: list[_Unit], threads: int) -> list[list[_Unit]]:
    """Contiguous chunks of about equal numbers of loci, a few per worker (so that one slow chunk does not
    leave the other workers idle); one chunk with one thread."""
    if threads <= 1 or len(units) < 2:
        return [units]
    n_loci = sum(len(unit[2]) for unit in units)
    target = max(n_loci // (4 * threads), 1)
    chunks: list[list[_Unit]] = [[]]
    size = 0
    for unit in units:
        if size >= target:
            chunks.append([])
            size = 0
        chunks[-1].append(unit)
        size += len(unit[2])
    return chunks


@dataclass
class _Part:
    """What one worker counted: per locus, the length histogram, multi-locus fragments and read statistics."""

    by_locus: dict[tuple[str, int, str, str], dict[str, Any]]
    lengths: Counter[tuple[str, int]]
    shared: Counter[tuple[str, str, str, int]]
    stats: ReadStats


def _count_units_in_file(
    path: str, reference: str, units: list[_Unit], settings: CountSettings, mode: str
) -> _Part:
    with open_alignments(path, reference) as alignments:
        return _count_units(alignments, units, settings, mode)


def _count_units(
    alignments: pysam.AlignmentFile, units: list[_Unit], settings: CountSettings, mode: str
) -> _Part:
    part = _Part({}, Counter(), Counter(), ReadStats())
    by_locus, lengths = part.by_locus, part.lengths
    for chrom, cluster, molecules in cluster_molecules(alignments, units, settings, mode, part.stats):
        for locus, at_locus in zip(cluster, molecules, strict=True):
            alleles = _alleles(at_locus.bases, locus)
            by_locus[(chrom, locus.pos, locus.ref, locus.alt)] = tally(locus, at_locus, alleles)
            _add_lengths(lengths, at_locus, alleles)
        part.shared.update(shared_fragments(chrom, cluster, molecules))
    return part


def cluster_molecules(
    alignments: pysam.AlignmentFile,
    units: list[_Unit],
    settings: CountSettings,
    mode: str,
    stats: ReadStats,
    flanks: bool = False,
) -> Iterator[tuple[str, list[Locus], list[LocusMolecules] | FlankTally]]:
    """(contig as the table spells it, cluster, molecules per locus) of each unit, by the compiled engine
    where it can and the reference engine elsewhere: the one way loci are counted. With `flanks`, the compiled
    engine gives a cluster's molecules counted, as one FlankTally (flanks.py)."""
    scanner = _scanner(alignments, settings, mode)
    try:
        for (chrom, bam_chrom), group in itertools.groupby(units, key=lambda unit: unit[:2]):
            clusters = [unit[2] for unit in group]
            found: Iterable[list[LocusMolecules] | FlankTally | None] = [None] * len(clusters)
            if scanner is not None:  # yields cluster by cluster, so that memory stays flat
                found = scanner.molecules(alignments.get_tid(bam_chrom), clusters, stats, flanks=flanks)
            for cluster, molecules in zip(clusters, found, strict=True):
                if molecules is None:  # the reference engine
                    molecules = [
                        LocusMolecules.from_molecules(locus_molecules, depth)
                        for _locus, locus_molecules, depth in molecules_at_loci(
                            alignments, bam_chrom, cluster, settings, mode, stats
                        )
                    ]
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


def _add_lengths(lengths: Counter[tuple[str, int]], molecules: LocusMolecules, alleles: np.ndarray) -> None:
    if not alleles.size:
        return
    for allele in ("ref", "alt"):
        values, counts = np.unique(molecules.lengths[alleles == allele], return_counts=True)
        lengths.update({(allele, int(v)): int(c) for v, c in zip(values, counts, strict=True)})


def shared_fragments(
    chrom: str, cluster: list[Locus], molecules: list[LocusMolecules]
) -> Counter[tuple[str, str, str, int]]:
    """Fragments informative (REF or ALT) at two or more loci of one cluster, as (chrom, loci, alleles, length):
    loci `pos:ref:alt` joined by `,`, alleles one letter per locus (R or A), length that of a fragment with an
    ALT (-1 for REF-only fragments, which are tallied together).

    One fragment is one piece of evidence, however many panel loci it covers: the caller needs to know which
    molecules of different loci are one fragment. Two loci at one position (two ALTs of a multi-allelic site)
    are one base of the fragment: it is kept at the first locus where it is informative.
    """
    found: Counter[tuple[str, str, str, int]] = Counter()
    if len(cluster) < 2:
        return found
    keys, where, alleles, lengths = [], [], [], []
    for index, (locus, at_locus) in enumerate(zip(cluster, molecules, strict=True)):
        ref_code, alt_code = allele_codes(locus)
        ref, alt = at_locus.bases == ref_code, at_locus.bases == alt_code
        informative = ref | alt
        keys.append(at_locus.fragments[informative])
        where.append(np.full(int(informative.sum()), index))
        alleles.append(alt[informative])
        lengths.append(at_locus.lengths[informative])
    key = np.concatenate(keys)
    _, inverse, times = np.unique(key, return_inverse=True, return_counts=True)
    multi = np.flatnonzero(times[inverse] >= 2)
    if not multi.size:
        return found
    locus_index, is_alt = np.concatenate(where)[multi], np.concatenate(alleles)[multi]
    length, fragment = np.concatenate(lengths)[multi], inverse[multi]
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
    sample_id: str, loci: pd.DataFrame, by_locus: dict[tuple[str, int, str, str], dict]
) -> pd.DataFrame:
    rows = []
    for locus in loci.itertuples(index=False):
        counts = by_locus[(locus.chrom, int(locus.pos), locus.ref, locus.alt)]
        rows.append({"sample_id": sample_id, **locus._asdict(), **counts})
    return pd.DataFrame(rows, columns=COUNT_COLUMNS)


def _length_table(lengths: Counter[tuple[str, int]]) -> pd.DataFrame:
    rows = [{"allele": a, "length": n, "molecules": c} for (a, n), c in sorted(lengths.items())]
    return pd.DataFrame(rows, columns=["allele", "length", "molecules"])


def _qc(
    stats: ReadStats, counts: pd.DataFrame, lengths: Counter[tuple[str, int]], mode: str
) -> dict[str, Any]:
    molecule_columns = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]
    molecules = int(counts[molecule_columns].to_numpy().sum())
    templates = float((counts[molecule_columns].sum(axis=1) * counts["mean_family_size"]).sum())
    all_lengths = np.repeat([n for (_a, n) in lengths], list(lengths.values())) if lengths else np.array([])
    informative = counts["ref_molecules"] + counts["alt_molecules"]
    return asdict(stats) | {
        "molecules": molecules,
        "mean_family_size": templates / molecules if molecules else 0.0,
        "duplicate_rate": 1 - molecules / templates if templates else 0.0,
        "median_fragment_length": float(np.median(all_lengths)) if all_lengths.size else None,
        "mean_molecules_per_locus": float(informative.mean()) if len(informative) else 0.0,
        "dedup_mode": mode,
    }
