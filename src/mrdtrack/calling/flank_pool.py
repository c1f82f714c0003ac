"""A sample's flank positions as the pool its own null draws from (own_null.py), and the matching of each real
panel locus to the flank positions of its substitution and trinucleotide context (pyrimidine strand) and of
similar depth (within `calling.synthetic_depth_fold`).

Positions whose ALT share is far above noise are germline or clonal-hematopoiesis sites or noisy artifacts, not
the library's noise, and never enter the pool (`flank_pool`): at least 2 ALT molecules of one base and an ALT
share of at least `flank_max_vaf`, or a binomial tail below `flank_noise_max_p` against the sample's own rate of
the class over its other positions (`variant_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mrdtrack.calling.inference import binomial_tail
from mrdtrack.calling.locus_classes import pyrimidine_class, rate_group
from mrdtrack.calling.settings import CallSettings
from mrdtrack.flank_layout import (
    BASE_INDEX,
    F1R2_COLUMNS,
    LENGTH_COLUMNS,
    MOLECULE_COLUMNS,
    base_counts,
    flank_row_index,
)

SNV_BASES = frozenset("ACGT")


@dataclass(frozen=True)
class FlankPool:
    """A sample's usable flank rows: one per position and ALT base (the long layout of the flank table,
    `mrdtrack.flank_layout.flank_rows`), with its class and molecules."""

    substitution: np.ndarray  # pyrimidine-strand substitution, e.g. C>T
    context: np.ndarray  # pyrimidine-strand trinucleotide
    n: np.ndarray  # informative molecules (REF + this ALT)
    a: np.ndarray  # ALT molecules
    alt_lengths: np.ndarray  # text, as the flank table has it
    dropped_positions: int  # germline or CHIP-like positions left out
    key: np.ndarray  # each row's index in `classes`
    classes: tuple[tuple[str, str], ...]  # the (substitution, context) classes of the rows
    # Of `n` and `a`, those in F1R2 molecules (reference strand, as the flank table); `flipped`: a purine
    # reference, whose orientations swap on the pyrimidine strand.
    n_f1r2: np.ndarray
    a_f1r2: np.ndarray
    flipped: np.ndarray

    def __len__(self) -> int:
        return len(self.n)


def flank_pool(flanks: pd.DataFrame, settings: CallSettings) -> FlankPool:
    """The sample's flank rows that can enter a synthetic panel: covered, and not at a germline or CHIP-like
    position (a position where any ALT base has at least 2 molecules and either an ALT share of at least
    `flank_max_vaf` or a binomial tail against the sample's own rate of that class below `flank_noise_max_p`).

    Parameters
    ----------
    flanks : pandas.DataFrame
        The sample's flank table (`flanks` contract).
    settings : CallSettings
        `flank_max_vaf` and `flank_noise_max_p` are used.

    Returns
    -------
    FlankPool
        The usable rows, classed on the pyrimidine strand.
    """
    # The table's rows per position and ALT base, as arrays: only the columns used (a genome-wide table is
    # millions of rows), and those only at the covered rows (REF or this ALT seen).
    position, ref, alt = flank_row_index(flanks)
    molecules, f1r2 = base_counts(flanks, MOLECULE_COLUMNS), base_counts(flanks, F1R2_COLUMNS)
    a, ref_n = molecules[position, alt], molecules[position, ref]
    covered = np.flatnonzero(a + ref_n)
    position, ref, alt, a, ref_n = position[covered], ref[covered], alt[covered], a[covered], ref_n[covered]
    context = _base_code_matrix(flanks["context"].to_numpy(), 3)[position]
    key, classes = _pyrimidine_classes(np.column_stack([ref, alt, context]))
    substitution = np.array([c[0] for c in classes], dtype=object)[key]
    pyrimidine_context = np.array([c[1] for c in classes], dtype=object)[key]
    n = ref_n + a
    variant = variant_rows(key, a, n, settings)
    dropped = np.zeros(len(flanks), dtype=bool)
    dropped[position[variant]] = True  # a position with any variant row leaves with all its rows
    keep = ~dropped[position]
    a_f1r2 = f1r2[position, alt]
    lengths = flanks[LENGTH_COLUMNS].to_numpy(dtype=object).reshape(len(flanks), 4)
    return FlankPool(
        substitution=substitution[keep],
        context=pyrimidine_context[keep],
        n=n[keep],
        a=a[keep],
        alt_lengths=lengths[position[keep], alt[keep]],
        dropped_positions=int(dropped.sum()),
        key=key[keep],
        classes=classes,
        n_f1r2=(a_f1r2 + f1r2[position, ref])[keep],
        a_f1r2=a_f1r2[keep],
        flipped=~np.isin(ref[keep], (BASE_C, BASE_T)),
    )


# Rounds of flagging and re-estimating the class rates without the flagged rows (they settle in 2-3).
MAX_NOISE_ROUNDS = 10


def variant_rows(key: np.ndarray, a: np.ndarray, n: np.ndarray, settings: CallSettings) -> np.ndarray:
    """The rows (position x ALT base) that are germline, CHIP-like or noisy artifacts: at least 2 ALT molecules
    and an ALT share of at least `flank_max_vaf`, or a binomial tail below `flank_noise_max_p` against the
    sample's rate of the row's class (`key`) over its other, unflagged rows.

    The class rate leaves the flagged rows out and the rows are judged again until the flags settle, as the
    background's noisy loci are (background.find_noisy_loci): against a class rate that holds them, a class's
    artifacts raise its rate and hide one another. These rows also set the sample's own factors
    (sample_rates.py), which multiply the panel loci's rates, and the background excludes noisy panel loci: an
    artifact left in reads as library noise. In benchmarks/detection.py (2% of positions 300 times noisier
    than their class, library factors of mean 1) the samples' overall factors averaged 1.29 with the class
    rate holding the artifacts and a tail cut of 1e-6, 1.23 without them in the rate, 1.05 with the cut at
    1e-3 too (median 1.02): at plasma depth an artifact with 2 or 3 molecules is not below 1e-6. At 1e-3 a
    clean row is flagged only with 2 or more ALT molecules where its class expects a few hundredths of one,
    which takes at most a few percent of the rarest classes' errors with it.
    """
    share = a / np.maximum(n, 1)
    some = np.flatnonzero(a >= 2)
    variant = np.zeros(len(a), dtype=bool)
    variant[some] = share[some] >= settings.flank_max_vaf
    for _ in range(MAX_NOISE_ROUNDS):
        clean = ~variant
        alt_sum = np.bincount(key[clean], a[clean], minlength=key.max(initial=0) + 1)[key]
        n_sum = np.bincount(key[clean], n[clean], minlength=key.max(initial=0) + 1)[key]
        # Pseudo-counted, so that a class without errors does not make one ALT molecule look impossible.
        rate = (alt_sum + 1.0) / (n_sum + 1.0)
        flagged = variant.copy()
        flagged[some] |= binomial_tail(a[some], n[some], rate[some]) < settings.flank_noise_max_p
        if np.array_equal(flagged, variant):
            break
        variant = flagged
    return variant


# Bases as codes 0-3 (their index in ACGT, as the flank table's base columns), anything else (N, padding) 4.
_BASE_CODES = np.where(BASE_INDEX >= 0, BASE_INDEX, 4)
BASE_C, BASE_T = 1, 3


def _pyrimidine_classes(codes: np.ndarray) -> tuple[np.ndarray, tuple[tuple[str, str], ...]]:
    """Each row's (substitution, context) class on the pyrimidine strand, as an index into the distinct classes,
    from its REF, ALT and trinucleotide context as base codes (rows x 5).

    A genome-wide panel's flanks are millions of rows of a few hundred (ref, alt, context): each combination
    present is classed once (`pyrimidine_class`)."""
    combination = np.zeros(len(codes), dtype=np.int64)
    for column in codes.T:
        combination = combination * 5 + column
    found: dict[tuple[str, str], int] = {}
    class_of = np.zeros(5**5, dtype=np.int64)
    for code in np.flatnonzero(np.bincount(combination, minlength=5**5)):
        letters = "".join("ACGTN"[(code // 5**power) % 5] for power in range(4, -1, -1))
        name = pyrimidine_class(letters[0], letters[1], letters[2:])[:2]
        class_of[code] = found.setdefault(name, len(found))
    return class_of[combination], tuple(found)


def _base_code_matrix(column: np.ndarray, width: int) -> np.ndarray:
    """The column's text as base codes, rows x `width` (shorter text padded with 4)."""
    text = np.asarray(column, dtype=object).astype(f"S{width}")
    return _BASE_CODES[np.frombuffer(text.tobytes(), dtype=np.uint8)].reshape(-1, width)


def matched_candidates(
    pool: FlankPool, ref: np.ndarray, alt: np.ndarray, context: np.ndarray, n: np.ndarray, fold: float
) -> tuple[list[np.ndarray], int, str]:
    """For each real locus, the pool rows of its substitution and context (pyrimidine strand) whose depth is
    within `fold` of its own (all rows of its class when none is).

    A class without any flank position (CpG contexts are rare in a few kb) falls back to the rows of its rate
    group, the substitution with C>N at CpG on its own (locus_classes.rate_group): the group the background
    model shrinks the context toward.

    Returns
    -------
    tuple of (list of numpy.ndarray, int, str)
        The candidates per locus, how many loci fell back to their group, and "" or why some locus has no
        match at all (then no candidates).
    """
    matched = match_loci(pool, ref, alt, context, n, fold)
    return matched.candidates, matched.fallbacks, matched.reason


@dataclass(frozen=True)
class Matched:
    """Each real locus's candidate pool rows (`matched_candidates`) with their ALT and informative molecules
    summed (from running sums over the depth-sorted rows: a genome-wide locus has tens of thousands)."""

    candidates: list[np.ndarray]
    alt: np.ndarray
    n: np.ndarray
    fallbacks: int
    reason: str


def match_loci(
    pool: FlankPool, ref: np.ndarray, alt: np.ndarray, context: np.ndarray, n: np.ndarray, fold: float
) -> Matched:
    """`matched_candidates`, with the candidates' molecules summed per locus."""
    names = [f"{s}:{c}" for s, c in pool.classes]
    group, group_names = pd.factorize(np.array([rate_group(s, c) for s, c in pool.classes], dtype=object))
    by_class = dict(zip(names, _by_depth(pool.key, len(names), pool, fold), strict=True))
    by_group = dict(zip(group_names, _by_depth(group[pool.key], len(group_names), pool, fold), strict=True))
    candidates, fallbacks = [], 0
    sums = np.zeros((len(ref), 2))
    for i, (locus_ref, locus_alt, locus_context, depth) in enumerate(zip(ref, alt, context, n, strict=True)):
        if len(locus_ref) != 1 or len(locus_alt) != 1 or not {locus_ref, locus_alt} <= SNV_BASES:
            why = f"indel locus {locus_ref}>{locus_alt}: flank positions match SNVs only"
            return Matched([], np.zeros(0), np.zeros(0), 0, why)
        substitution, ctx, _ = pyrimidine_class(locus_ref, locus_alt, locus_context)
        rows = by_class.get(f"{substitution}:{ctx}")
        if rows is None:
            rows = by_group.get(rate_group(substitution, ctx))
            fallbacks += 1
        if rows is None:
            why = f"no flank position of class {substitution} at {ctx}, nor of its group"
            return Matched([], np.zeros(0), np.zeros(0), 0, why)
        ordered, depths, folded, running = rows
        # Depths within `fold` of the locus's: n * fold >= depth and n <= depth * fold, a run of the sorted rows.
        low, high = np.searchsorted(folded, depth, "left"), np.searchsorted(depths, depth * fold, "right")
        if high <= low:
            low, high = 0, len(ordered)
        candidates.append(ordered[low:high])
        sums[i] = running[high] - running[low]
    return Matched(candidates, sums[:, 0], sums[:, 1], fallbacks, "")


def _by_depth(
    code: np.ndarray, count: int, pool: FlankPool, fold: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The rows of each code (0..count-1) by increasing depth (ties in row order), with their depths, their
    depths times the fold, and the running sums of their ALT and informative molecules (rows + 1 x 2, from 0)."""
    small = code.astype(np.int16) if count < 2**15 else code  # 16-bit codes: a radix sort
    order = np.argsort(small, kind="stable")
    bounds = np.searchsorted(code[order], np.arange(count + 1))
    found = []
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[first:last]
        rows = rows[np.argsort(pool.n[rows], kind="stable")]
        running = np.zeros((len(rows) + 1, 2))
        running[1:] = np.cumsum(np.stack([pool.a[rows], pool.n[rows]], axis=1), axis=0)
        found.append((rows, pool.n[rows], pool.n[rows] * fold, running))
    return found
