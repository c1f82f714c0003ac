"""The tumor fraction's estimate, test and interval over a sample's tables of fragments (`likelihood.Tables`).

The log-likelihood is concave in f, so the MLE is the root of the score (or a bound), found by safeguarded
Newton; the test of f = 0 is the likelihood ratio on the boundary (chi-bar: half chi2_0, half chi2_1); the
interval is the profile likelihood's, widened by the loci's spread beyond the binomial model (`dispersion`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from mrdtrack.calling.likelihood import Tables, alt_probability, as_counts, tumor_share


def mle_rows(
    a: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    tol: float = 1e-10,
    r: np.ndarray | None = None,
) -> np.ndarray:
    """MLE of f in [0, 1] for every row of ALT counts `a` (rows x loci, or rows x loci x classes with `r`)."""
    return fit(Tables.of(a, n, e, w, r), tol)


def fit(tables: Tables, tol: float = 1e-10) -> np.ndarray:
    """MLE of f in [0, 1] per row, by safeguarded Newton.

    The score decreases in f (concave log-likelihood): f = 0 when the score at 0 is <= 0, f = 1 when the
    score at 1 is >= 0, else Newton steps kept inside a shrinking bracket (bisection when a step leaves it).
    """
    rows = len(tables)
    score0, _ = tables.score_and_curvature(np.zeros(rows))
    score1, _ = tables.score_and_curvature(np.ones(rows))
    f = np.where(score1 >= 0, 1.0, 0.0)
    todo = (score0 > 0) & (score1 < 0)
    if todo.any():
        f[todo] = _newton_in_bracket(tables.subset(todo), tol)
    return f


def _newton_in_bracket(tables: Tables, tol: float) -> np.ndarray:
    lo, hi = np.zeros(len(tables)), np.ones(len(tables))
    x = tables.start()
    active = np.ones(len(tables), dtype=bool)
    for _ in range(200):
        s, h = tables.score_and_curvature(x)
        positive = s > 0
        lo = np.where(active & positive, x, lo)
        hi = np.where(active & ~positive, x, hi)
        step = x - s / h
        # A converged step may sit exactly on the bracket's edge: accept it before the bracket test.
        done = np.abs(s / h) <= tol * np.maximum(x, 1e-12)
        inside = (step > lo) & (step < hi)
        x = np.where(active, np.where(inside | done, step, (lo + hi) / 2), x)
        active &= ~done
        if not active.any():
            break
    return x


def mle(a: np.ndarray, n: np.ndarray, e: np.ndarray, w: np.ndarray, r: np.ndarray | None = None) -> float:
    """Maximum-likelihood tumor fraction in [0, 1] (`a` per locus, or per locus and class with `r`)."""
    return float(mle_rows(np.asarray(a)[None], n, e, w, r=r)[0])


def lr_statistic_rows(
    a: np.ndarray, n: np.ndarray, e: np.ndarray, w: np.ndarray, r: np.ndarray | None = None
) -> np.ndarray:
    """2 (log L(f_hat) - log L(0)) per row (0 when f_hat = 0)."""
    return lr_statistics(Tables.of(a, n, e, w, r))


def lr_statistics(tables: Tables) -> np.ndarray:
    f = fit(tables)
    stat = 2 * (tables.log_likelihood(f) - tables.log_likelihood(np.zeros(len(tables))))
    return np.where(f > 0, np.maximum(stat, 0.0), 0.0)


def binomial_tail(k: Any, n: Any, p: Any) -> Any:
    """P(X >= k) for X ~ Binomial(n, p) (1 for k <= 0): scipy.stats.binom.sf(k - 1, n, p), through
    scipy.special, which starts far faster than scipy.stats (one call job per sample)."""
    k = np.asarray(k)
    return np.where(k <= 0, 1.0, special.bdtrc(np.maximum(k - 1, 0), as_counts(n), p))


def chibar_p_value(statistic: Any) -> Any:
    """P-value of the boundary LRT: P(0.5 chi2_0 + 0.5 chi2_1 >= statistic); 1 at statistic 0."""
    statistic = np.asarray(statistic, dtype=float)
    p = np.where(statistic > 0, 0.5 * special.chdtrc(1, statistic), 1.0)
    return float(p) if p.ndim == 0 else p


def profile_ci(
    a: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    level: float = 0.95,
    r: np.ndarray | None = None,
) -> tuple[float, float]:
    """Profile-likelihood interval of one-locus fragments: the f with 2 (log L(f_hat) - log L(f)) <= the
    chi2_1 quantile, within [0, 1]."""
    return profile_interval(Tables.of(np.asarray(a)[None], n, e, w, r), level)


def profile_interval(tables: Tables, level: float = 0.95, dispersion: float = 1.0) -> tuple[float, float]:
    """The f whose likelihood drop 2 (log L(f_hat) - log L(f)) is at most `dispersion` x the chi2_1 quantile,
    within [0, 1]: the profile interval, widened as a quasi-likelihood's is when the data vary more than the
    model says (`dispersion` > 1)."""
    cut = dispersion * special.chdtri(1, 1 - level)  # the chi2_1 quantile
    f_hat = float(fit(tables)[0])
    top = float(tables.log_likelihood(np.array([f_hat]))[0])

    def excess(f: float) -> float:
        return 2 * (top - float(tables.log_likelihood(np.array([f]))[0])) - cut

    low = 0.0 if excess(0.0) <= 0 else root_in_bracket(excess, 0.0, f_hat)
    high = 1.0 if excess(1.0) <= 0 else root_in_bracket(excess, f_hat, 1.0)
    return float(low), float(high)


def root_in_bracket(
    function: Any, low: float, high: float, xtol: float = 1e-14, rtol: float = 1e-10, steps: int = 200
) -> float:
    """The root of a monotone `function` that changes sign on [low, high], by regula falsi with the Illinois
    modification (superlinear), kept in the bracket.

    Not scipy.optimize.brentq: importing scipy.optimize costs about a second of CPU, which every per-sample
    call job would pay (thousands on a cluster) for one root-finder.
    """
    f_low, f_high = function(low), function(high)
    side = 0
    for _ in range(steps):
        x = (low * f_high - high * f_low) / (f_high - f_low)
        if not low < x < high:
            x = (low + high) / 2
        value = function(x)
        if value == 0 or high - low <= xtol + rtol * abs(x):
            return x
        if (value < 0) == (f_low < 0):
            low, f_low = x, value
            if side == -1:
                f_high /= 2
            side = -1
        else:
            high, f_high = x, value
            if side == 1:
                f_low /= 2
            side = 1
    return (low + high) / 2


def dispersion(
    f: float, a: np.ndarray, n: np.ndarray, e: np.ndarray, w: np.ndarray, level: float = 0.95
) -> float:
    """Between-locus overdispersion at tumor fraction `f`: the factor by which the profile interval's chi2_1
    cut is widened (at least 1).

    Loci of one tumor do not share one VAF (subclonal variants, copy-number changes, a weight estimated from
    a biopsy): their ALT counts spread more than binomially around f, and the interval must widen with them.
    Each locus's score s_i and information I_i at f give the robust (sandwich, HC3) variance of the estimate,
    sum(s_i^2 / (1 - h_i)^2) / (sum I_i)^2 with h_i = I_i / sum I the locus's leverage, against the binomial
    model's 1 / sum I. Unlike Pearson's X^2 over its degrees of freedom, it weighs each locus by what it
    contributes to the estimate, so deep loci, whose VAF spread dominates their variance, count as much as
    they should.

    Only the spread beyond the binomial counts widens the interval, and it must show in the counts: from each
    locus's squared residual its binomial part is taken out as estimated from its own ALT count (a_i (1 - p_i),
    unbiased for n_i p_i (1 - p_i)), so that a lone mutant molecule where a tenth of one was expected, which
    the binomial model explains, adds nothing, while a cluster of them at one locus still does. The factor is
    1 + E, with E that excess over sum I when positive, else 0; with no tumor fraction estimated (f = 0) there
    are no tumor molecules whose VAFs could spread and the factor is 1. The excess is estimated from the
    sample's own L loci, so the cut is F(1, df)'s quantile, not chi2_1's: df = nu (1 + E) / E, with nu the
    excess terms' effective number (at most L - 1). A spread that dominates the variance is as uncertain as nu
    loci make it; one small beside the known binomial part hardly moves the cut, so the widening fades to none
    as the excess does. (Satterthwaite's df for a known part plus an estimated one, nu ((1 + E) / E)^2, gave 90%
    coverage at TF 3e-3 and 1e-2 in benchmarks/detection.py under VAF spread: the residuals the binomial part
    is taken from are estimated too.) Below 3 loci with molecules nothing can be estimated and the factor is 1.
    """
    covered = n > 0
    loci = int(covered.sum())
    if loci < 3 or f <= 0:
        return 1.0
    a, n, e, w = a[covered], n[covered], e[covered], w[covered]
    p, c = alt_probability(f, e, w), tumor_share(e, w)
    q = 1 - p
    information = n * c**2 / (p * q)
    leverage = np.minimum(information / information.sum(), 0.9)
    # HC3 squared residual minus its expectation under the binomial model, (1 - h) n p q / (1 - h)^2, with
    # n p q estimated by a q: zero on average without spread, and never large for a single molecule.
    residual = (a - n * p) ** 2 / (1 - leverage) ** 2 - a * q / (1 - leverage)
    excess_terms = (c / (p * q)) ** 2 * residual
    excess = max(0.0, float(excess_terms.sum() / information.sum()))
    if excess == 0:
        return 1.0
    ratio = 1 + excess
    spread_df = float(np.clip(effective_terms(np.maximum(excess_terms, 0)), 1.0, loci - 1))
    df = spread_df * ratio / excess
    quantiles = special.fdtri(1, df, level) / special.chdtri(1, 1 - level)
    return max(1.0, ratio * quantiles)


def effective_terms(variances: np.ndarray) -> float:
    """Satterthwaite's effective number of terms of a variance estimate summed from unequal terms,
    (sum v)^2 / sum v^2: all of them when they are equal, about one when one term dominates. A sandwich
    variance carried by a few deep or high-VAF loci is as uncertain as one from that few, and small-sample
    cluster-robust intervals take their degrees of freedom from it."""
    variances = np.asarray(variances, dtype=float)
    squares = float((variances**2).sum())
    return float(variances.sum() ** 2 / squares) if squares > 0 else 0.0
