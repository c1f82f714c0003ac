"""How well a sample's reads agree with the reference: mismatches per aligned base around the panel loci.

A file aligned to another genome build, or whose reads were shifted while its header was kept, passes every
header check, yet its reads disagree with the reference almost everywhere. Counted as it is, such a sample
brings thousands of "errors" into the background model, which then marks loci noisy for every patient. Reads
of a correctly aligned sample disagree with the reference at sequencing errors, damage and germline variants:
well under 1% of the bases that pass counting's quality filters. Misplaced reads disagree at about 3 in 4.

The measure is a sample, not a census: up to `READS_PER_LOCUS` reads at each of up to `MAX_LOCI` panel loci
spread over the panel, every aligned base of good quality compared with the reference FASTA except at the panel
positions themselves (where tumor, CHIP or germline alleles are expected). It reads a few thousand reads, so it
costs a fraction of counting.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pysam

# Above this rate the reads are not aligned to this reference: the workflow stops the sample (config/README.md,
# "Checks of the alignments"). Correctly aligned cfDNA reads show 0.1-1% after the base-quality filter.
MAX_REFERENCE_MISMATCH_RATE = 0.02
# Fewer compared bases than this say too little to stop a sample on (the rate is still recorded).
MIN_BASES_JUDGED = 2000
MAX_LOCI = 50
READS_PER_LOCUS = 10

# The SAM fields the comparison reads (htslib's SAM_FLAG, RNAME, POS, MAPQ, CIGAR, SEQ, QUAL): a CRAM decodes
# only these when asked (its `required_fields` option).
COMPARED_FIELDS = 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x200 | 0x400

# CIGAR operations that consume the reference and the read (M, =, X), only the read (I, S), only the reference (D, N).
_ALIGNED, _READ_ONLY, _REFERENCE_ONLY = (0, 7, 8), (1, 4), (2, 3)
_SKIPPED_FLAGS = 0x4 | 0x100 | 0x200 | 0x400 | 0x800  # unmapped, secondary, QC fail, duplicate, supplementary
_N = ord("N")


def reference_mismatch_rate(
    alignments: pysam.AlignmentFile,
    fasta: pysam.FastaFile,
    loci: pd.DataFrame,
    contig_names: Mapping[str, str],
    min_mapq: int,
    min_baseq: int,
) -> tuple[int, int]:
    """(mismatching bases, compared bases) of a sample of the reads at the panel `loci`.

    Parameters
    ----------
    alignments, fasta
        The open BAM/CRAM and the reference FASTA it should be aligned to.
    loci
        Unique panel loci (`chrom` as the reference spells it, 1-based `pos`, `ref`).
    contig_names
        Reference contig -> the alignment file's name for it.
    min_mapq, min_baseq
        Counting's read and base filters: only what counting would use is compared.

    Returns
    -------
    tuple of int
        Bases that differ from the reference, and bases compared.
    """
    mismatches = compared = 0
    excluded = _panel_positions(loci)
    in_reference = set(fasta.references)
    for locus in _spread(loci[loci["chrom"].isin(in_reference)]).itertuples(index=False):
        reads = _good_reads(alignments, contig_names[locus.chrom], int(locus.pos), min_mapq)
        if reads:
            differ, seen = _locus_mismatches(reads, fasta, locus.chrom, excluded[locus.chrom], min_baseq)
            mismatches += differ
            compared += seen
    return mismatches, compared


def mismatch_problem(sample_id: str, path: str, mismatches: int, compared: int) -> str | None:
    """Why a sample with these mismatch counts must not be used, or None when it agrees with the reference."""
    if compared < MIN_BASES_JUDGED or mismatches <= MAX_REFERENCE_MISMATCH_RATE * compared:
        return None
    return (
        f"sample {sample_id}: {mismatches / compared:.1%} of the {compared:,} aligned bases checked around the "
        f"panel loci in '{path}' differ from the reference (more than {MAX_REFERENCE_MISMATCH_RATE:.0%}): "
        "aligned to another reference? The sample is not counted, so that its reads do not enter the "
        "background model. Fix: re-align it to the configured `reference`, or remove it from its sample sheet"
    )


def _spread(loci: pd.DataFrame) -> pd.DataFrame:
    """At most MAX_LOCI loci evenly spread over the panel (all of a small panel)."""
    if len(loci) <= MAX_LOCI:
        return loci
    picks = np.linspace(0, len(loci) - 1, MAX_LOCI).round().astype(int)
    return loci.iloc[np.unique(picks)]


def _panel_positions(loci: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per contig, the 0-based reference positions every panel locus covers (an indel's REF span), sorted, each
    once; array operations, as a genome-wide panel has hundreds of thousands of loci."""
    contig, names = pd.factorize(loci["chrom"])
    spans = np.maximum(loci["ref"].astype(str).str.len().to_numpy(dtype=np.int64), 1)
    starts = loci["pos"].to_numpy(dtype=np.int64) - 1
    before = np.cumsum(spans) - spans  # positions of the loci before each one
    covered = np.repeat(starts - before, spans) + np.arange(spans.sum())
    of_contig = np.repeat(contig, spans)
    return {str(chrom): np.unique(covered[of_contig == k]) for k, chrom in enumerate(names)}


def _good_reads(
    alignments: pysam.AlignmentFile, contig: str, pos: int, min_mapq: int
) -> list[pysam.AlignedSegment]:
    reads = []
    for read in alignments.fetch(contig, pos - 1, pos):
        if read.flag & _SKIPPED_FLAGS or read.mapping_quality < min_mapq:
            continue
        if read.query_sequence is None or read.query_qualities is None or not read.cigartuples:
            continue
        reads.append(read)
        if len(reads) == READS_PER_LOCUS:
            break
    return reads


def _locus_mismatches(
    reads: list[pysam.AlignedSegment],
    fasta: pysam.FastaFile,
    chrom: str,
    excluded: np.ndarray,
    min_baseq: int,
) -> tuple[int, int]:
    """(mismatches, compared bases) of the reads at one locus against the reference contig `chrom`."""
    start, length = min(read.reference_start for read in reads), fasta.get_reference_length(chrom)
    if start >= length:  # reads placed past the reference contig's end
        return 0, 0
    end = min(max(read.reference_end for read in reads), length)
    window = np.frombuffer(fasta.fetch(chrom, start, end).upper().encode(), dtype=np.uint8)
    usable = window != _N
    usable[excluded[(excluded >= start) & (excluded < start + window.size)] - start] = False
    bases, quality, offsets = [], [], []
    for read in reads:
        query_at, reference_at = _aligned_positions(read)
        inside = reference_at - start < window.size  # a read may run past the end of the reference's contig
        bases.append(np.frombuffer(read.query_sequence.encode(), dtype=np.uint8)[query_at[inside]])
        quality.append(np.asarray(read.query_qualities, dtype=np.uint8)[query_at[inside]])
        offsets.append(reference_at[inside] - start)
    base, offset = np.concatenate(bases), np.concatenate(offsets)
    used = (np.concatenate(quality) >= min_baseq) & (base != _N) & usable[offset]
    return int(np.count_nonzero(base[used] != window[offset[used]])), int(np.count_nonzero(used))


def _aligned_positions(read: pysam.AlignedSegment) -> tuple[np.ndarray, np.ndarray]:
    """The read offsets and 0-based reference positions of its aligned (M, =, X) bases."""
    query, reference = [], []
    query_pos, reference_pos = 0, read.reference_start
    for operation, length in read.cigartuples:
        if operation in _ALIGNED:
            query.append(np.arange(query_pos, query_pos + length))
            reference.append(np.arange(reference_pos, reference_pos + length))
            query_pos += length
            reference_pos += length
        elif operation in _READ_ONLY:
            query_pos += length
        elif operation in _REFERENCE_ONLY:
            reference_pos += length
    if not query:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(query), np.concatenate(reference)
