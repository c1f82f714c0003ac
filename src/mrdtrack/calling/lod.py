"""The sample's limit of detection: the smallest tumor fraction called positive with probability `lod_power`.

Detection is simulated with the call's own rules (the same null distribution, threshold and support rule), so
the LOD describes the call actually made.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from mrdtrack.calling.fraglen import LengthClasses
from mrdtrack.calling.likelihood import LikelihoodTerms, as_counts
from mrdtrack.calling.null import Cells, NullDistribution, count_ceiling, length_ratios
from mrdtrack.calling.settings import CallSettings


def detection_probability(
    f: float,
    terms: LikelihoodTerms,
    threshold: float,
    null: NullDistribution,
    uniforms: np.ndarray,
    settings: CallSettings,
    classes: LengthClasses | None = None,
    split_seed: int = 0,
) -> float:
    """Share of tables drawn at tumor fraction `f` that a call would name positive: p <= threshold, with the
    support a positive needs.

    Tables come from fixed uniforms through the binomial inverse CDF (common random numbers): every draw's
    ALT counts, hence its counts-only statistic, only grow with f, so the estimated detection curve is
    monotone. With length `classes`, each ALT count is split into tumor and background fragments and those
    into length classes by draws seeded with `split_seed` (the same at every f).
    """
    p = terms.alpha + f * terms.slope
    a = binomial_quantiles(uniforms, terms.kind_size, p).astype(np.int64)
    table, kind = np.nonzero(a)
    count = a[table, kind]
    if classes is None:
        cells = Cells(table, kind, np.zeros(len(table), dtype=np.int64), count)
    else:
        rng = np.random.default_rng(split_seed)
        tumor = rng.binomial(count, (f * terms.slope / p)[kind])
        cells = Cells.split(table, kind, tumor, classes.tumor, rng) + Cells.split(
            table, kind, count - tumor, classes.normal, rng
        )
    stat = cells.statistics(len(a), terms, length_ratios(classes))
    supported = cells.supported(len(a), terms, settings.min_mutant_fragments, settings.min_mutant_loci)
    return float(np.mean((null.p_value(stat) <= threshold) & supported))


def binomial_quantiles(u: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Binomial(n_i, p_i) inverse CDF at the uniforms `u` (draws x loci)."""
    top = count_ceiling(n, p)
    cdf = special.bdtr(np.arange(top + 1)[:, None], as_counts(n), p)
    a = np.empty(u.shape, dtype=np.int64)
    for i in range(len(n)):
        a[:, i] = np.searchsorted(cdf[:, i], u[:, i], side="left")
    return np.minimum(a, n)


def lod95(
    terms: LikelihoodTerms,
    threshold: float,
    null: NullDistribution,
    settings: CallSettings,
    rng: np.random.Generator,
    classes: LengthClasses | None = None,
) -> float:
    """Smallest tumor fraction detected (called positive) with probability `lod_power`.

    Bisection on log f over [1e-8, 1] to 0.5% relative precision (well within the Monte Carlo error).

    Parameters
    ----------
    terms : LikelihoodTerms
        Where the sample's fragments fall at its used loci.
    threshold : float
        The p-value cut of the calls.
    null : NullDistribution
        The sample's null distribution (the p-values of the simulated tables come from it).
    settings : CallSettings
        `lod_draws`, `lod_power` and the support rule (`min_mutant_fragments`, `min_mutant_loci`) are used.
    rng : numpy.random.Generator
        The draws' generator (`seeded_rng`).
    classes : LengthClasses, optional
        The sample's fragment-length classes, when lengths weigh in.

    Returns
    -------
    float
        The LOD95 as a tumor fraction; NaN when even f = 1 is not detected (or there are no molecules).
    """
    if not len(terms.size) or terms.size.sum() == 0:
        return float("nan")
    uniforms = rng.random((settings.lod_draws, len(terms.alpha)))
    split_seed = int(rng.integers(2**62)) if classes is not None else 0

    def detected(f: float) -> bool:
        probability = detection_probability(
            f, terms, threshold, null, uniforms, settings, classes, split_seed
        )
        return probability >= settings.lod_power

    low, high = 1e-8, 1.0
    if not detected(high):
        return float("nan")
    if detected(low):
        return low
    while high / low > 1.005:
        middle = np.sqrt(low * high)
        low, high = (low, middle) if detected(middle) else (middle, high)
    return float(high)
