"""The sample's limit of detection: the smallest tumor fraction called positive with probability `lod_power`.

Detection follows the call's own rules (the same null distribution, threshold and support rule), so the LOD
describes the call actually made. It is simulated (Monte Carlo, `detection_probability`) or, when the sample
expects enough background fragments for its counts to be many, computed (analytic_lod.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy import special

from mrdtrack.calling.analytic_lod import AnalyticDetection
from mrdtrack.calling.drawn import SharedColumns
from mrdtrack.calling.fraglen import LengthClasses
from mrdtrack.calling.likelihood import LikelihoodTerms, as_counts
from mrdtrack.calling.null import Cells, NullDistribution, binomial_inverse, count_ceiling, length_ratios
from mrdtrack.calling.settings import CallSettings

LOWEST_TF = 1e-8  # the bottom of the LOD search


@dataclass
class FixedUniforms:
    """The LOD's common random numbers, a (draws x kinds) matrix of uniforms, held as the entries that give a
    kind at least one ALT fragment at some tumor fraction up to `cap`.

    A table's ALT count at a kind is the Binomial inverse CDF at its uniform, so it is 0 unless the uniform is
    above P(0 ALT); at MRD levels few are. Only those entries are kept: memory and each detection's cost grow
    with the ALT fragments drawn, not with draws x kinds. A tumor fraction above `cap` draws the matrix again
    from the generator's saved state, the same uniforms in the same order.
    """

    source: np.random.Generator  # a copy of the generator as it was before the uniforms
    draws: int
    terms: LikelihoodTerms
    cap: float
    table: np.ndarray
    kind: np.ndarray
    u: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, draws: int, terms: LikelihoodTerms, cap: float) -> FixedUniforms:
        """`draws` rows of uniforms from `rng` (which moves on as if it had drawn the whole matrix)."""
        source = copy.deepcopy(rng)
        return cls(source, draws, terms, cap, *_entries(rng, draws, terms, cap))

    def at(self, f: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(table, kind, uniform) of the entries with at least one ALT fragment at tumor fraction `f`, in
        table-major order."""
        if f > self.cap:
            self.cap = f
            self.table, self.kind, self.u = _entries(copy.deepcopy(self.source), self.draws, self.terms, f)
        some = self.u > _no_alt(self.terms, f)[self.kind]
        return self.table[some], self.kind[some], self.u[some]


def _no_alt(terms: LikelihoodTerms, f: float) -> np.ndarray:
    """P(no ALT fragment) per kind at tumor fraction f, as the inverse CDF's table has it."""
    p = terms.alpha + f * terms.slope
    return special.bdtr(np.zeros(len(p), dtype=np.int64), as_counts(terms.kind_size), p)


def _entries(
    rng: np.random.Generator, draws: int, terms: LikelihoodTerms, cap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The uniforms above P(no ALT) at f = 0 or at f = `cap`, whichever is lower (a kind's chance of an ALT
    falls with f when tumor origin makes its pattern less likely), drawn row block by row block."""
    kinds = len(terms.alpha)
    bound = np.minimum(_no_alt(terms, 0.0), _no_alt(terms, cap))
    block = max(1, ENTRIES_BLOCK // max(kinds, 1))
    tables, found_kinds, values = [], [], []
    for first in range(0, draws, block):
        u = rng.random((min(block, draws - first), kinds))
        table, kind = np.nonzero(u > bound)
        tables.append(table + first)
        found_kinds.append(kind)
        values.append(u[table, kind])
    empty = [np.zeros(0, dtype=np.int64)]
    return (
        np.concatenate(tables or empty),
        np.concatenate(found_kinds or empty),
        np.concatenate(values or [np.zeros(0)]),
    )


# Uniforms drawn at once while collecting the entries.
ENTRIES_BLOCK = 1 << 20


def detection_probability(
    f: float,
    terms: LikelihoodTerms,
    threshold: float,
    null: NullDistribution,
    uniforms: FixedUniforms,
    settings: CallSettings,
    classes: LengthClasses | None = None,
    split_seed: int = 0,
    shared: SharedColumns | None = None,
) -> float:
    """Share of tables drawn at tumor fraction `f` that a call would name positive: p <= threshold, with the
    support a positive needs.

    Tables come from fixed uniforms through the binomial inverse CDF (common random numbers): every draw's
    ALT counts, hence its counts-only statistic, only grow with f, so the estimated detection curve is
    monotone. With length `classes`, each ALT count is split into tumor and background fragments and those
    into length classes by draws seeded with `split_seed` (the same at every f).
    """
    p = terms.alpha + f * terms.slope
    table, kind, u = uniforms.at(f)
    size = terms.kind_size
    count = np.minimum(binomial_inverse(u, kind, size, p, count_ceiling(size, p)), size[kind])
    draws = uniforms.draws
    if classes is None:
        cells = Cells(table, kind, np.zeros(len(table), dtype=np.int64), count)
    else:
        rng = np.random.default_rng(split_seed)
        tumor = rng.binomial(count, (f * terms.slope / p)[kind])
        cells = Cells.split(table, kind, tumor, classes.tumor, rng) + Cells.split(
            table, kind, count - tumor, classes.normal, rng
        )
    stat = cells.statistics(draws, terms, length_ratios(classes), shared)
    supported = cells.supported(draws, terms, settings.min_mutant_fragments, settings.min_mutant_loci)
    return float(np.mean((null.p_value(stat) <= threshold) & supported))


def lod95(
    terms: LikelihoodTerms,
    threshold: float,
    null: NullDistribution,
    settings: CallSettings,
    rng: np.random.Generator,
    classes: LengthClasses | None = None,
) -> float:
    """Smallest tumor fraction detected (called positive) with probability `lod_power`.

    Monte Carlo: bisection on log f over [1e-8, 1] to 0.5% relative precision (well within the Monte Carlo
    error). Analytic (`lod_method`): the same precision, from the computed detection probability.

    Parameters
    ----------
    terms : LikelihoodTerms
        Where the sample's fragments fall at its used loci.
    threshold : float
        The p-value cut of the calls.
    null : NullDistribution
        The sample's null distribution (the p-values of the simulated tables come from it).
    settings : CallSettings
        `lod_method`, `lod_analytic_min_expected`, `lod_draws`, `lod_power` and the support rule
        (`min_mutant_fragments`, `min_mutant_loci`) are used.
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
    if lod_method(terms, settings) == "analytic":
        return AnalyticDetection(terms, null, threshold, settings, classes).lod(LOWEST_TF)
    low, high = LOWEST_TF, 1.0
    uniforms = FixedUniforms.draw(rng, settings.lod_draws, terms, cap=np.sqrt(low * high))
    split_seed = int(rng.integers(2**62)) if classes is not None else 0
    shared = SharedColumns.of(terms)

    def detected(f: float) -> bool:
        probability = detection_probability(
            f, terms, threshold, null, uniforms, settings, classes, split_seed, shared
        )
        return probability >= settings.lod_power

    # The ends are checked last, and only when the search stayed at them: detection is monotone in f, and
    # f = 1 draws every kind in every table.
    while high / low > 1.005:
        middle = np.sqrt(low * high)
        low, high = (low, middle) if detected(middle) else (middle, high)
    if high == 1.0 and not detected(high):
        return float("nan")
    if low == LOWEST_TF and detected(low):
        return LOWEST_TF
    return float(high)


def lod_method(terms: LikelihoodTerms, settings: CallSettings) -> str:
    """ "analytic" or "monte_carlo": as `settings.lod_method` says, or for "auto" by the background fragments
    the sample expects (`lod_analytic_min_expected`).

    Parameters
    ----------
    terms : LikelihoodTerms
        Where the sample's fragments fall at its used loci.
    settings : CallSettings
        `lod_method` and `lod_analytic_min_expected` are used.

    Returns
    -------
    str
    """
    if settings.lod_method != "auto":
        return settings.lod_method
    expected = terms.expected_background()
    return "analytic" if expected >= settings.lod_analytic_min_expected else "monte_carlo"
