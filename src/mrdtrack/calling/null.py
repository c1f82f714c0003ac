"""The null distribution of the likelihood-ratio statistic, its p-values, and the threshold from null scores.

Under f = 0 the statistic's asymptotic law is a 50:50 mixture of chi-square 0 and 1 (chi-bar). With the few
expected background molecules typical of MRD it is discrete and the asymptotics are off, so when the expected
null ALT count is small the p-value comes from the exact null distribution of the same statistic, drawn by Monte
Carlo with a seed fixed per sample and panel (`seeded_rng`). The threshold is calibrated on null scores only
when there are enough to resolve the target false-positive rate (`threshold_from_null`).
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from mrdtrack.calling.drawn import SharedColumns, drawn_statistics
from mrdtrack.calling.fraglen import LengthClasses
from mrdtrack.calling.inference import chibar_p_value
from mrdtrack.calling.likelihood import LikelihoodTerms, as_counts
from mrdtrack.calling.settings import CallSettings

log = logging.getLogger(__name__)


def seeded_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator fixed by the base seed and the keys: reruns, and any spread over processes, draw the same.

    Parameters
    ----------
    seed : int
        The base seed (`calling.seed`).
    *keys : str
        What the draws are for (sample, panel, "lod", ...).

    Returns
    -------
    numpy.random.Generator
        A generator of its own for these keys.
    """
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(keys).encode())])


@dataclass
class NullDistribution:
    """How a statistic becomes a p-value: chi-bar asymptotics or the sorted Monte Carlo null statistics.

    Parameters
    ----------
    method : str
        "asymptotic", "monte_carlo", or "none" (not computed: the statistic was 0, p = 1).
    statistics : numpy.ndarray
        The sorted null statistics (Monte Carlo only).
    min_exceedances : int
        Fewer draws beyond a statistic than this, and the chi-bar tail may refine its p-value.
    """

    method: str  # "asymptotic", "monte_carlo", or "none" (not computed: the statistic was 0, p = 1)
    statistics: np.ndarray = field(default_factory=lambda: np.zeros(0))  # sorted, Monte Carlo only
    min_exceedances: int = 10

    def p_value(self, statistic: Any) -> Any:
        """The p-value of a statistic, or of each of an array of them.

        Parameters
        ----------
        statistic : float or numpy.ndarray
            Likelihood-ratio statistics.

        Returns
        -------
        float or numpy.ndarray
            Their p-values (1 for a statistic of 0).
        """
        statistic = np.asarray(statistic, dtype=float)
        if self.method == "none" and (statistic > 0).any():
            raise ValueError("no null distribution was computed for a positive statistic")
        asymptotic = chibar_p_value(statistic)
        if self.method == "asymptotic":
            return asymptotic
        draws = len(self.statistics)
        # A tolerance so that a draw equal to the observed table (same statistic up to rounding) counts.
        tol = 1e-9 * np.maximum(1.0, statistic)
        exceed = draws - np.searchsorted(self.statistics, statistic - tol, side="left")
        p = (1 + exceed) / (1 + draws)
        # Beyond the draws' reach the p-value can only be bounded; the chi-bar tail refines it there.
        p = np.where(exceed < self.min_exceedances, np.minimum(p, asymptotic), p)
        p = np.where(statistic > 0, p, 1.0)
        return float(p) if p.ndim == 0 else p

    def critical_statistic(self, threshold: float) -> float:
        """The smallest statistic with p-value <= `threshold` (p-values only fall as the statistic grows).

        Parameters
        ----------
        threshold : float
            The p-value cut, in (0, 0.5].

        Returns
        -------
        float
        """
        asymptotic = float(special.chdtri(1, min(2 * threshold, 1.0)))
        if self.method != "monte_carlo":
            return asymptotic
        low, high = 0.0, max(asymptotic, float(self.statistics[-1]) if len(self.statistics) else 0.0) * 2 + 1
        for _ in range(200):
            middle = (low + high) / 2
            if self.p_value(middle) <= threshold:
                high = middle
            else:
                low = middle
            if high - low <= 1e-9 * max(1.0, high):
                break
        return high


def null_distribution(
    terms: LikelihoodTerms,
    settings: CallSettings,
    rng: np.random.Generator,
    classes: LengthClasses | None = None,
) -> NullDistribution:
    """The null distribution of the likelihood-ratio statistic for these terms: exact (Monte Carlo) when few
    background ALTs are expected, or as `settings.p_value_method` says.

    Parameters
    ----------
    terms : LikelihoodTerms
        Where the sample's fragments fall at its loci.
    settings : CallSettings
        `p_value_method`, `monte_carlo_max_expected`, `null_draws` and `min_exceedances` are used.
    rng : numpy.random.Generator
        The draws' generator (`seeded_rng`).
    classes : LengthClasses, optional
        The sample's fragment-length classes, when lengths weigh in.

    Returns
    -------
    NullDistribution
        What turns the sample's statistic into a p-value.
    """
    method = settings.p_value_method
    if method == "auto":
        expected = terms.expected_background()
        method = "monte_carlo" if expected < settings.monte_carlo_max_expected else "asymptotic"
    if method == "asymptotic":
        return NullDistribution("asymptotic", min_exceedances=settings.min_exceedances)
    return NullDistribution(
        "monte_carlo",
        simulate_null_statistics(terms, settings.null_draws, rng, classes),
        settings.min_exceedances,
    )


def simulate_null_statistics(
    terms: LikelihoodTerms,
    draws: int,
    rng: np.random.Generator,
    classes: LengthClasses | None = None,
) -> np.ndarray:
    """Sorted LRT statistics of `draws` tables drawn exactly under f = 0.

    Null tables are sparse: each kind's ALT counts are drawn only for the draws where it has any (those
    draws are a Bernoulli process, the counts a zero-truncated binomial); all other draws have statistic 0.
    With length `classes`, background ALT fragments fall into the classes as non-tumor fragments do.
    """
    size, alpha = terms.kind_size, terms.alpha
    q = -np.expm1(size * np.log1p(-alpha))  # P(at least one ALT of the kind)
    rows = [_bernoulli_positions(q[i], draws, rng) for i in range(len(size))]
    kind = np.repeat(np.arange(len(size)), [r.size for r in rows])
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    value = _positive_binomial(kind, size, alpha, rng).astype(np.int64)
    stat = np.zeros(draws)
    tables_with_alt, where = np.unique(row, return_inverse=True)
    if tables_with_alt.size:
        if classes is None:
            cells = Cells(where, kind, np.zeros(len(kind), dtype=np.int64), value)
        else:
            cells = Cells.split(where, kind, value, classes.normal, rng)
        stat[: tables_with_alt.size] = cells.statistics(tables_with_alt.size, terms, length_ratios(classes))
    return np.sort(stat)


def length_ratios(classes: LengthClasses | None) -> np.ndarray:
    return np.ones(1) if classes is None else classes.ratio


@dataclass
class Cells:
    """Drawn tables held sparsely: ALT fragments per (table, kind, length class) that has any."""

    table: np.ndarray
    kind: np.ndarray
    k: np.ndarray
    count: np.ndarray

    @classmethod
    def split(
        cls,
        table: np.ndarray,
        kind: np.ndarray,
        count: np.ndarray,
        probabilities: np.ndarray,
        rng: np.random.Generator,
    ) -> Cells:
        """ALT counts per (table, kind) spread over the length classes with these probabilities."""
        spread = rng.multinomial(count, probabilities)
        i, k = np.nonzero(spread)
        return cls(table[i], kind[i], k, spread[i, k])

    def __add__(self, other: Cells) -> Cells:
        return Cells(
            *(np.concatenate([getattr(self, f), getattr(other, f)]) for f in ("table", "kind", "k", "count"))
        )

    def statistics(
        self, tables: int, terms: LikelihoodTerms, r: np.ndarray, shared: SharedColumns | None = None
    ) -> np.ndarray:
        """LRT statistic of each of `tables` tables (0 for a table without cells); `shared`: the terms'
        `SharedColumns`, when at hand.

        Tables repeat (one ALT at one locus, ...): each distinct table is fitted once. Tables are told apart by
        a random 64-bit hash of their cells (additive, so split cells of one table add up the same way); two
        distinct tables among 10^4 collide with probability about 10^-11.
        """
        stat = np.zeros(tables)
        if not len(self.table):
            return stat
        weights = np.random.default_rng(0).integers(1, 2**62, (len(terms.alpha), len(r)), dtype=np.int64)
        keys = np.zeros(tables, dtype=np.int64)
        np.add.at(keys, self.table, self.count * weights[self.kind, self.k])  # wraps modulo 2**64
        with_alt = np.unique(self.table)
        _, first, inverse = np.unique(keys[with_alt], return_index=True, return_inverse=True)
        fitted = np.full(tables, -1)
        fitted[with_alt[first]] = np.arange(len(first))
        keep = fitted[self.table] >= 0
        fitted_stat = drawn_statistics(
            terms, fitted[self.table[keep]], self.kind[keep], self.k[keep], self.count[keep], len(first), r,
            shared,
        )  # fmt: skip
        stat[with_alt] = fitted_stat[inverse.ravel()]
        return stat

    def supported(self, tables: int, terms: LikelihoodTerms, min_fragments: int, min_loci: int) -> np.ndarray:
        """Per table: at least `min_fragments` ALT fragments at at least `min_loci` loci (each drawn ALT is
        a fragment of its own)."""
        fragments = np.bincount(self.table, self.count, tables)
        if terms.groups:  # each cell's ALT loci: the terms' hits of its kind (hits are sorted by kind)
            starts = np.searchsorted(terms.hit_kind, self.kind)
            lengths = np.searchsorted(terms.hit_kind, self.kind, side="right") - starts
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            table, locus = (
                np.repeat(self.table, lengths),
                terms.hit_locus[np.repeat(starts, lengths) + offsets],
            )
        else:  # one hit per kind, in kind order: its locus (a locus's orientation parts are one locus)
            table, locus = self.table, terms.hit_locus[self.kind]
        loci_per_table = int(terms.hit_locus.max()) + 1 if len(terms.hit_locus) else 1
        pairs = np.unique(table.astype(np.int64) * loci_per_table + locus)  # one per (table, locus with ALT)
        loci = np.bincount(pairs // loci_per_table, minlength=tables)
        return (fragments >= min_fragments) & (loci >= min_loci)


def _bernoulli_positions(q: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices in [0, size) that succeed with probability q each (geometric gaps: cost ~ size q)."""
    if q <= 0:
        return np.zeros(0, dtype=np.int64)
    if q < 1e-12:  # patterns of several errors on one fragment: geometric gaps this long overflow int64
        hits = rng.binomial(size, q)
        return np.sort(rng.choice(size, hits, replace=False)).astype(np.int64)
    if q > 0.05:
        return np.flatnonzero(rng.random(size) < q)
    positions = np.zeros(0, dtype=np.int64)
    start = -1
    while start < size:
        batch = int(size * q + 5 * np.sqrt(size * q) + 10)
        more = start + np.cumsum(rng.geometric(q, batch))
        positions = np.concatenate([positions, more])
        start = int(more[-1])
    return positions[positions < size]


def _positive_binomial(col: np.ndarray, n: np.ndarray, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of Binomial(n_i, p_i) conditioned on >= 1 for each locus index in `col` (inverse CDF)."""
    if col.size == 0:
        return np.zeros(0, dtype=np.int64)
    first = special.bdtr(np.zeros(len(p), dtype=np.int64), as_counts(n), p)  # P(0)
    u = rng.uniform(first[col], 1.0)
    value = binomial_inverse(u, col, n, p, count_ceiling(n, p))
    return np.clip(value, 1, n[col])


# Counts whose binomial CDF is tabulated for every kind at once; rarer, larger counts are searched draw by draw.
TABULATED_COUNTS = 4


def binomial_inverse(u: np.ndarray, kind: np.ndarray, n: np.ndarray, p: np.ndarray, top: int) -> np.ndarray:
    """The Binomial(n_i, p_i) inverse CDF at uniforms `u` of kinds i = `kind`: the smallest count k <= `top`
    with CDF(k) >= u, or top + 1 when there is none (as a search of the CDF table 0..top finds it).

    The CDF of the first few counts is tabulated per kind; draws beyond them (few, at MRD levels) are found
    by bisection on the count. The cost grows with the draws and the kinds, not with kinds x counts.
    """
    counts = as_counts(n)
    head = min(top, TABULATED_COUNTS - 1)
    k = np.zeros(len(u), dtype=np.int64)
    for count in range(head + 1):
        k += special.bdtr(np.full(len(p), count, dtype=np.int64), counts, p)[kind] < u
    deep = np.flatnonzero(k > head)
    if deep.size and top > head:
        low, high = np.full(deep.size, head, dtype=np.int64), np.full(deep.size, top + 1, dtype=np.int64)
        n_deep, p_deep, u_deep = counts[kind[deep]], p[kind[deep]], u[deep]
        while (high - low > 1).any():
            middle = (low + high) // 2
            below = special.bdtr(middle, n_deep, p_deep) < u_deep
            low, high = np.where(below, middle, low), np.where(below, high, middle)
        k[deep] = high
    return k


def count_ceiling(n: np.ndarray, p: np.ndarray) -> int:
    """A count no binomial(n_i, p_i) reaches but with probability < 1e-15 (mean + 12 sd + 40, at most n)."""
    mean = n * p
    return int(min(n.max(), np.ceil((mean + 12 * np.sqrt(mean) + 40).max())))


def calibrate_threshold(null_p: np.ndarray, rate: float) -> float:
    """min(rate, the largest p-cut at which at most `rate` of the null scores are called positive).

    Positive means p <= threshold. The cut is an observed null p-value (the conservative end of its gap);
    with too few null scores to allow even one false positive, it is half the smallest null p-value.
    """
    p = np.sort(np.asarray(null_p, dtype=float))
    allowed = int(np.floor(rate * len(p) + 1e-9))
    if len(p) == 0 or np.searchsorted(p, rate, side="right") <= allowed:
        return float(rate)
    below = p[p < p[allowed]]
    if below.size:
        return float(below[-1])
    log.warning(
        "%d null scores cannot show a false-positive rate of %g; threshold set below all", len(p), rate
    )
    return float(p[0] / 2)


def null_scores_needed(false_positive_rate: float, empirical_min_expected: float) -> int:
    """The fewest null scores that set an empirical threshold: enough to show `empirical_min_expected` false
    positives at the target rate.

    At a 1% rate, 100 scores can show one false positive, which says next to nothing about the rate; 1,000 can
    show ten. The report quotes this number beside the threshold the calls used.

    Parameters
    ----------
    false_positive_rate : float
        The target rate of positive calls among null scores (`calling.false_positive_rate`, > 0).
    empirical_min_expected : float
        The false positives the null scores must be able to show (`calling.empirical_min_expected`).

    Returns
    -------
    int
        The smallest n with n x rate >= `empirical_min_expected`, computed as the call computes it.
    """
    needed = max(math.ceil(empirical_min_expected / false_positive_rate - 1e-9), 0)
    # The quotient rounds on its own: settle on the count the product rule itself first accepts.
    while needed * false_positive_rate < empirical_min_expected:
        needed += 1
    while needed > 0 and (needed - 1) * false_positive_rate >= empirical_min_expected:
        needed -= 1
    return needed


def threshold_from_null(null_p: np.ndarray, settings: CallSettings) -> tuple[float, str]:
    """The p-value cut of every call and where it came from.

    The null scores set the threshold only when there are enough of them to resolve the target rate
    (`null_scores_needed`). Fewer, and the threshold is the nominal rate itself, as the p-values are exact or
    asymptotic tests of their own.

    Parameters
    ----------
    null_p : numpy.ndarray
        The calibrating null scores' p-values (1 for a score without the support a positive needs).
    settings : CallSettings
        `false_positive_rate` and `empirical_min_expected` are used.

    Returns
    -------
    tuple of (float, str)
        The threshold (positive: p <= threshold) and "empirical" or "nominal".
    """
    rate = settings.false_positive_rate
    needed = null_scores_needed(rate, settings.empirical_min_expected)
    if len(null_p) >= needed:
        return calibrate_threshold(null_p, rate), "empirical"
    log.warning(
        "only %d null scores: too few to resolve a false-positive rate of %g (%d needed for %g expected "
        "positives); the threshold is the nominal p <= %g",
        len(null_p), rate, needed, settings.empirical_min_expected, rate,
    )  # fmt: skip
    return float(rate), "nominal"
