"""Layers 2 and 3 of a simulated sample: the PCR copies of each molecule (read pairs sharing its UMI, one
copy occasionally with a UMI error), and their paired-end reads: adapter-trimmed, Illumina-binned base
qualities with sequencing errors at the matching rates, the molecule's variants, a few 3' soft clips."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mrdtrack.simulation.molecules import Molecules, Variants
from mrdtrack.simulation.records import (
    DUPLICATE,
    MATE_REVERSE,
    PAIRED,
    PROPER,
    QCFAIL,
    READ1,
    READ2,
    REVERSE,
    Records,
    SimulationSettings,
    flat_ranges,
)
from mrdtrack.simulation.reference import BASE_BYTES, COMPLEMENT, ENCODE, Reference, padded_codes

# Residual Illumina adapter seen when the trimmer misses a read-through (the read-1 adapter start).
ADAPTER = "AGATCGGAAGAGCACACGTCTGAACTCCAGTCAC"

# Illumina binned qualities (NovaSeq RTA3 style) and the error probability each one stands for.
QUALITY_BINS = (2, 12, 23, 37)
_ERROR_PROB = np.zeros(64, np.float32)
_ERROR_PROB[list(QUALITY_BINS)] = [0.63, 10**-1.2, 10**-2.3, 10**-3.7]


@dataclass
class Pairs:
    """Read pairs, each one PCR copy of a molecule: the molecule, the copy's number, its UMI codes, its name."""

    mol: np.ndarray
    copy: np.ndarray
    umi: np.ndarray  # (n_pairs, umi_len) codes
    qid: np.ndarray


def draw_pairs(mol: Molecules, settings: SimulationSettings, rng: np.random.Generator) -> Pairs:
    n = mol.locus.size
    extra = settings.family_size_mean - 1
    shape = settings.family_size_shape
    fam = 1 + (rng.negative_binomial(shape, shape / (shape + extra), n) if extra > 0 else np.zeros(n, int))
    fam[mol.kind != 0] = 1
    pair_mol = np.repeat(np.arange(n), fam)
    first = np.concatenate([[0], np.cumsum(fam)[:-1]])
    copy = np.arange(pair_mol.size) - first[pair_mol]
    umi = mol.umi[pair_mol].copy()
    # At most one mis-read UMI per family: a second one would make the truth depend on clustering order.
    p_err = 1 - (1 - settings.umi_error_rate) ** np.maximum(fam - 1, 0)
    err_mol = np.flatnonzero(rng.random(n) < p_err)
    err_pair = first[err_mol] + 1 + np.floor(rng.random(err_mol.size) * (fam[err_mol] - 1)).astype(np.int64)
    col = rng.integers(0, umi.shape[1], err_pair.size)
    umi[err_pair, col] = (umi[err_pair, col] + rng.integers(1, 4, err_pair.size)) % 4
    # Names follow molecule order (read names carry no meaning); numbering a molecule's copies together keeps
    # them adjacent in the sorted file, which makes the BAM about 15% smaller than random names do.
    qid = np.arange(pair_mol.size)
    return Pairs(pair_mol, copy, umi, qid)


def qualities(
    total: np.ndarray, width: int, settings: SimulationSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Binned base qualities in sequencing orientation (mostly Q37, short runs of lower quality, 3' decay, Q2
    tails) and the length of each read's Q2 tail. Runs rather than independent draws keep BAMs compressible,
    as real binned qualities are."""
    n = total.size
    qual = np.full((n, width), 37, np.uint8)
    rows = np.repeat(np.arange(n), rng.poisson(settings.low_quality_segments, n))
    seg_len = rng.geometric(1 / 3, rows.size)
    starts = np.floor(rng.random(rows.size) * total[rows]).astype(np.int64)
    values = rng.choice(np.array([23, 12, 2], np.uint8), rows.size, p=[0.6, 0.3, 0.1])
    r, c = flat_ranges(rows, starts, seg_len)
    v = np.repeat(values, seg_len)
    ok = c < total[r]
    qual[r[ok], c[ok]] = v[ok]
    tail = np.flatnonzero(rng.random(n) < settings.quality_tail_fraction)
    k = np.minimum(4 + rng.geometric(0.1, tail.size), total[tail])
    r, c = flat_ranges(tail, total[tail] - k, k)
    qual[r, c] = np.minimum(qual[r, c], np.where(c >= total[r] - 3, 12, 23)).astype(np.uint8)
    q2 = rng.random(n) < settings.q2_tail_fraction
    q2len = np.where(q2, np.minimum(rng.integers(3, 26, n), total // 2), 0)
    rows = np.flatnonzero(q2len)
    r, c = flat_ranges(rows, total[rows] - q2len[rows], q2len[rows])
    qual[r, c] = 2
    qual[np.arange(width)[None, :] >= total[:, None]] = 0
    return qual, q2len


def umi_strings(codes: np.ndarray, parts: Sequence[int]) -> np.ndarray:
    """UMI code rows -> RX strings, parts joined by '-' (SAM convention for multi-part UMIs)."""
    chunks, start = [], 0
    for size in parts:
        chunks.append(BASE_BYTES[codes[:, start : start + size]])
        chunks.append(np.full((codes.shape[0], 1), ord("-"), np.uint8))
        start += size
    joined = np.ascontiguousarray(np.concatenate(chunks[:-1], axis=1))
    return joined.view(f"S{joined.shape[1]}").ravel().astype(str).astype(object)


@dataclass
class _ReadLayout:
    """Where each read's bases come from: molecule offsets, adapter bases and 3' clips."""

    mol: np.ndarray
    right: np.ndarray  # reverse-strand read at the fragment's right end
    rl: np.ndarray  # molecule bases read
    s0: np.ndarray  # first molecule offset read
    ka: np.ndarray  # adapter bases appended (soft-clipped)
    kb: np.ndarray  # Q2 tail bases soft-clipped
    total: np.ndarray  # SEQ length


def _read_layout(
    mol: Molecules, pairs: Pairs, settings: SimulationSettings, rng: np.random.Generator
) -> _ReadLayout:
    width = settings.read_length
    m = np.repeat(pairs.mol, 2)
    right = np.tile(np.array([False, True]), pairs.mol.size)
    length = mol.length[m]
    rl = np.minimum(length, width)
    s0 = np.where(right, length - rl, 0)
    room = np.minimum(width - rl, 20)
    through = (rng.random(m.size) < settings.adapter_readthrough_fraction) & (room > 0) & (mol.kind[m] == 0)
    ka = np.where(through, 1 + np.floor(rng.random(m.size) * np.maximum(room, 1)).astype(np.int64), 0)
    return _ReadLayout(m, right, rl, s0, ka, np.zeros(m.size, np.int64), rl + ka)


def _read_sequences(reference: Reference, mol: Molecules, lay: _ReadLayout, width: int) -> np.ndarray:
    """Reference-orientation SEQ of every read before molecule variants and sequencing errors."""
    padded = padded_codes(reference, width)
    lead = np.where(lay.right, lay.ka, 0)
    # Most reads copy a contiguous reference window: take rows of a sliding-window view (a memcpy each).
    first = mol.gstart[lay.mol] + lay.s0 - lead + width
    seq = np.lib.stride_tricks.sliding_window_view(padded, width)[first]
    gapped = np.flatnonzero((mol.dlen[lay.mol] > 0) & (mol.del_at[lay.mol] < lay.s0 + lay.rl))
    if gapped.size:
        seq[gapped] = _gapped_sequences(reference, mol, lay, gapped, width)
    clipped = np.flatnonzero(lay.ka > 0)
    if clipped.size:
        seq[clipped] = _adapter_sequences(seq[clipped], lay, clipped, width)
    seq[np.arange(width)[None, :] >= lay.total[:, None]] = 4
    return seq


def _gapped_sequences(
    reference: Reference, mol: Molecules, lay: _ReadLayout, rows: np.ndarray, width: int
) -> np.ndarray:
    """Reads of molecules with a deletion: map each molecule offset to the reference across the gap."""
    m = lay.mol[rows]
    col = np.arange(width, dtype=np.int64)[None, :]
    lead = np.where(lay.right[rows], lay.ka[rows], 0)[:, None]
    offset = np.clip(lay.s0[rows][:, None] + col - lead, 0, (mol.length[m] - 1)[:, None])
    after = offset >= mol.del_at[m][:, None]
    return reference.codes[mol.gstart[m][:, None] + offset + after * mol.dlen[m][:, None]]


def _adapter_sequences(seq: np.ndarray, lay: _ReadLayout, rows: np.ndarray, width: int) -> np.ndarray:
    """Append the missed adapter at each read's 3' end (left of a reverse read in reference orientation)."""
    adapter = ENCODE[np.frombuffer(ADAPTER.encode(), np.uint8)]
    col = np.arange(width)[None, :]
    total, rl = lay.total[rows][:, None], lay.rl[rows][:, None]
    right, ka = lay.right[rows][:, None], lay.ka[rows][:, None]
    fwd = ~right & (col >= rl) & (col < total)
    seq = np.where(fwd, adapter[np.clip(col - rl, 0, adapter.size - 1)], seq)
    rev = right & (col < ka)
    return np.where(rev, COMPLEMENT[adapter[np.clip(total - 1 - col - rl, 0, adapter.size - 1)]], seq)


def _apply_variants(
    seq: np.ndarray, mol: Molecules, pairs: Pairs, lay: _ReadLayout, variants: Variants
) -> None:
    """Write molecule-level variants into every read (every PCR copy) that covers them."""
    fam = np.bincount(pairs.mol, minlength=mol.locus.size)
    first_read = 2 * np.concatenate([[0], np.cumsum(fam)[:-1]])
    vi, r = flat_ranges(np.arange(variants.mol.size), first_read[variants.mol], 2 * fam[variants.mol])
    m = variants.mol[vi]
    offset = variants.gpos[vi] - mol.gstart[m]
    offset = np.where(offset >= mol.del_at[m] + mol.dlen[m], offset - mol.dlen[m], offset)
    inside = offset - lay.s0[r]
    ok = (inside >= 0) & (inside < lay.rl[r])
    col = inside + np.where(lay.right[r], lay.ka[r], 0)
    seq[r[ok], col[ok]] = variants.base[vi[ok]]


def _to_reference_orientation(qual: np.ndarray, lay: _ReadLayout) -> np.ndarray:
    """Reverse reads store their qualities right-to-left; full-length reads just flip."""
    out = qual.copy()
    width = qual.shape[1]
    full = lay.right & (lay.total == width)
    out[full] = qual[full, ::-1]
    part = np.flatnonzero(lay.right & (lay.total < width))
    col = np.arange(width)[None, :]
    src = np.clip(lay.total[part][:, None] - 1 - col, 0, width - 1)
    out[part] = np.where(col < lay.total[part][:, None], np.take_along_axis(qual[part], src, axis=1), 0)
    return out


def _sequencing_errors(seq: np.ndarray, qual: np.ndarray, rng: np.random.Generator) -> None:
    """Per-read substitution errors at the rate each base quality promises. Q37 errors (the bulk of bases,
    rate 2e-4) are placed by Poisson thinning instead of one random draw per base, which is 5x faster."""
    flat_qual = qual.reshape(-1)
    low = np.flatnonzero((flat_qual > 0) & (flat_qual < 37))
    hit_low = low[rng.random(low.size, dtype=np.float32) < _ERROR_PROB[flat_qual[low]]]
    candidates = rng.integers(0, flat_qual.size, rng.poisson(_ERROR_PROB[37] * flat_qual.size))
    hits = np.unique(np.concatenate([hit_low, candidates[flat_qual[candidates] == 37]]))
    row, col = np.divmod(hits, qual.shape[1])
    seq[row, col] = (seq[row, col] + rng.integers(1, 4, hits.size)) % 4


def build_reads(
    reference: Reference,
    mol: Molecules,
    pairs: Pairs,
    variants: Variants,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> tuple[Records, np.ndarray]:
    """Every read of every molecule, and the locus index each read was captured for."""
    width = settings.read_length
    lay = _read_layout(mol, pairs, settings, rng)
    seq = _read_sequences(reference, mol, lay, width)
    _apply_variants(seq, mol, pairs, lay, variants)
    qual_read, q2len = qualities(lay.total, width, settings, rng)
    qual = _to_reference_orientation(qual_read, lay)
    _sequencing_errors(seq, qual, rng)
    _clip_q2_tails(mol, lay, q2len, settings, rng)
    return _read_records(reference, mol, pairs, lay, seq, qual, settings), mol.locus[lay.mol]


def _clip_q2_tails(
    mol: Molecules,
    lay: _ReadLayout,
    q2len: np.ndarray,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> None:
    """The aligner soft-clips some error-rich Q2 tails (3' end, so fragment coordinates do not move)."""
    a0 = lay.s0
    has_del = (mol.dlen[lay.mol] > 0) & (mol.del_at[lay.mol] > a0) & (mol.del_at[lay.mol] < a0 + lay.rl)
    clip = (rng.random(a0.size) < settings.q2_clip_fraction) & (lay.ka == 0) & ~has_del
    clip &= (q2len > 0) & (q2len <= lay.rl - 30) & (mol.kind[lay.mol] == 0)
    lay.kb = np.where(clip, q2len, 0)


def _read_records(
    reference: Reference,
    mol: Molecules,
    pairs: Pairs,
    lay: _ReadLayout,
    seq: np.ndarray,
    qual: np.ndarray,
    settings: SimulationSettings,
) -> Records:
    m = lay.mol
    a0 = lay.s0 + np.where(lay.right, lay.kb, 0)
    n_al = lay.rl - lay.kb
    del_at, dlen = mol.del_at[m], mol.dlen[m]
    has_del = (dlen > 0) & (del_at > a0) & (del_at < a0 + n_al)
    m1 = np.where(has_del, del_at - a0, n_al)
    gpos = mol.gstart[m] + a0 + (a0 >= del_at) * dlen
    tid = np.searchsorted(reference.offsets, mol.gstart[m], side="right") - 1
    pos = gpos - reference.offsets[tid]
    n = m.size
    mate = np.arange(n) ^ 1  # reads 2p and 2p+1 are mates
    read1 = lay.right != mol.f1r2[m]
    flag = PAIRED | PROPER | np.where(lay.right, REVERSE, MATE_REVERSE) | np.where(read1, READ1, READ2)
    flag = flag | np.where(mol.kind[m] == 2, QCFAIL, 0)
    if settings.duplicate_marked:
        flag = flag | np.where(np.repeat(_duplicate_pairs(pairs, qual), 2), DUPLICATE, 0)
    umi = umi_strings(pairs.umi, settings.umi_lengths)
    zeros = np.zeros(n, np.int64)
    return Records(
        qid=np.repeat(pairs.qid, 2).astype(np.int64),
        flag=flag.astype(np.int64),
        tid=tid.astype(np.int64),
        pos=pos.astype(np.int64),
        mapq=np.where(lay.right, mol.mapq_right[m], mol.mapq_left[m]).astype(np.int64),
        cl=np.where(lay.right, lay.ka + lay.kb, 0).astype(np.int64),
        m1=m1.astype(np.int64),
        dlen=np.where(has_del, dlen, 0).astype(np.int64),
        m2=(n_al - m1).astype(np.int64),
        cr=np.where(lay.right, 0, lay.ka + lay.kb).astype(np.int64),
        hclip=zeros,
        mtid=tid.astype(np.int64)[mate],
        mpos=pos.astype(np.int64)[mate],
        tlen=np.where(lay.right, -mol.span[m], mol.span[m]).astype(np.int64),
        length=lay.total.astype(np.int64),
        seq=seq,
        qual=qual,
        umi=np.repeat(umi, 2),
        sa=np.full(n, "", dtype=object),
        mate_rec=mate.astype(np.int64),
    )


def _duplicate_pairs(pairs: Pairs, qual: np.ndarray) -> np.ndarray:
    """True for every pair but the best one of its family (highest summed base quality, as Picard keeps)."""
    qsum = qual.reshape(pairs.mol.size, -1).sum(axis=1, dtype=np.int64)
    order = np.lexsort((pairs.copy, -qsum, pairs.mol))
    best = np.ones(pairs.mol.size, bool)
    best[order[1:]] = pairs.mol[order[1:]] != pairs.mol[order[:-1]]
    return ~best
