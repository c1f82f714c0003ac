"""The LOD computed rather than simulated: the probability that a call names a sample positive at tumor fraction
f, from the exact law of its counts, without drawing tables.

The tables a call names positive are those whose likelihood-ratio statistic reaches the null's critical value
and that have the support a positive needs. The statistic is 2 max_g l_g, with l_g the table's log-likelihood
ratio of g against 0: a weighted sum of the table's independent ALT fragment counts (per kind and length class)
plus a constant, whose upper tail is a saddlepoint tail (saddlepoint.py). The probability of the test is at
least max_g P(2 l_g >= critical), the tables past the best single tangent of the rejection region, and close to
it: the region's boundary bends only along the one direction g. Tables that pass the test without the support
(ALT fragments at one locus only, by default) are counted exactly and taken away.

Against the mean of five Monte Carlo LODs of 1,000 draws (benchmarks/lod_accuracy.py: panels of 20 to 20,000
loci at 30 to 3,000 molecules per locus, 0.1 to 75 expected background molecules, with and without fragment
lengths) the analytic LOD is within 1% from 500 loci up and within 4% at 20 loci, never more than 1.1 of the
Monte Carlo LOD's own standard deviations (1-4%) away. It costs under a second at 20,000 loci on counts alone;
with 11 fragment-length classes and both read orientations (40,000 columns) each cumulant of the saddlepoint
sums 440,000 cells, and the LOD is about a third of a 20,000-locus call's 8 s of CPU (benchmarks/call_speed.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from mrdtrack.calling.drawn import drawn_statistics
from mrdtrack.calling.fraglen import LengthClasses
from mrdtrack.calling.likelihood import LikelihoodTerms
from mrdtrack.calling.null import NullDistribution
from mrdtrack.calling.saddlepoint import WeightedCounts, at_most, dot
from mrdtrack.calling.settings import CallSettings

# Below this chance of a table with ALT fragments at one locus only, such tables are left out.
LONE_NEGLIGIBLE = 1e-6
# The alternatives g tried per tumor fraction f, as multiples of f, before the best is refined.
ALTERNATIVES = np.exp(np.linspace(-3.0, 1.0, 9))
GOLDEN = (np.sqrt(5) - 1) / 2


def binomial_cdf(k: int, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """P(Binomial(n, p) <= k), also for k >= n (1; scipy's bdtr gives NaN there)."""
    return np.where(k >= n, 1.0, special.bdtr(np.minimum(k, n), n, p))


@dataclass
class AnalyticDetection:
    """The probability that a call names positive a sample drawn at tumor fraction f, computed.

    A table is named positive when its likelihood-ratio statistic reaches `critical` (the null's, at the
    threshold) and it has the support a positive needs. The test's probability is max_g P(2 l_g >= critical)
    (`test_probability`; the module says why). For a support rule of at most 2 fragments at at most 2 loci (the
    default), the tables that pass the test without support are those with ALT fragments at one locus only,
    whose probability is summed locus by locus (a locus's read-orientation parts together) and taken away
    (`lone_locus_positive`). Also, both the test and the support only grow with the ALT counts, so (Harris's
    inequality) their joint probability is at least the product of the test's and the support's
    (`support_probability`): the bound used for a stricter rule, and the better one when the support is rare
    (the difference then subtracts two near-equal numbers).

    Parameters
    ----------
    terms : LikelihoodTerms
        Where the sample's fragments fall at its used loci.
    null : NullDistribution
        The sample's null distribution.
    threshold : float
        The p-value cut of the calls; `critical` is the smallest statistic with p <= threshold
        (`NullDistribution.critical_statistic`).
    settings : CallSettings
        `lod_power` and the support rule are used.
    classes : LengthClasses, optional
        The sample's fragment-length classes, when lengths weigh in.
    """

    terms: LikelihoodTerms
    null: NullDistribution
    threshold: float
    settings: CallSettings
    classes: LengthClasses | None = None

    def __post_init__(self) -> None:
        terms, classes = self.terms, self.classes
        self.critical = self.null.critical_statistic(self.threshold)
        if classes is None:
            normal = tumor = ratio = np.ones(1)
        else:
            possible = (classes.normal > 0) | (classes.tumor > 0)
            normal, tumor, ratio = (x[possible] for x in (classes.normal, classes.tumor, classes.ratio))
        self._normal, self._tumor, self._ratio = normal, tumor, ratio
        self._trials = terms.kind_size.astype(float)
        self._u = (terms.d / (1 - terms.g))[terms.kind_column]
        self._column_u = terms.d / (1 - terms.g)
        self._one_locus = slice(0, terms.n_single)
        # The support rule counts loci: with read orientations a locus's one-locus fragments are two columns
        # (parts), grouped here by their real locus.
        _, part_locus = np.unique(terms.single_locus, return_inverse=True)
        self._part_locus = part_locus.ravel()
        self._loci = int(self._part_locus.max()) + 1 if terms.n_single else 0
        self._part_pairs = same_locus_pairs(self._part_locus)
        self._saddlepoint = np.nan  # the last one found: where the next search starts
        self._lone_positive: tuple[np.ndarray, ...] | None = None  # see `_lone_tables_passing`

    def probability(self, f: float) -> float:
        """P(named positive) at tumor fraction `f` (see the class).

        Parameters
        ----------
        f : float
            The tumor fraction.

        Returns
        -------
        float
        """
        settings = self.settings
        test = self.test_probability(f)
        product = test * self.support_probability(f)
        if settings.min_mutant_loci <= 2 and settings.min_mutant_fragments <= 2:
            # Both are bounds from below; the difference is the tighter one unless the support is rare.
            return max(test - self.lone_locus_positive(f), product)
        return product

    def lone_locus_positive(self, f: float) -> float:
        """P(the test is passed by a table whose ALT fragments lack the support a positive needs), for a
        support rule of at most 2 fragments at at most 2 loci: the tables with ALT fragments at one locus
        only (two loci needed) or with one ALT fragment (two fragments at one locus needed). A locus is a real
        locus: ALT fragments in both read orientations of one locus (two parts) are still at one locus.

        Exact but for two shortcuts: tables with 3 or more ALT fragments at one locus and none elsewhere all
        count as passing (they nearly all do), and only one-locus fragments are counted (fragments covering
        several loci are rare).
        """
        terms, settings = self.terms, self.settings
        if settings.min_mutant_fragments <= 1 and settings.min_mutant_loci <= 1:
            return 0.0
        single, locus, loci = self._one_locus, self._part_locus, self._loci
        p = np.clip(terms.alpha + f * terms.slope, 0, 1)
        log_none = self._trials * np.log1p(-np.minimum(p, 1 - 1e-16))
        part_none = log_none[single]
        locus_none = np.bincount(locus, part_none, loci)
        alone = np.exp(log_none.sum() - locus_none)  # P(no ALT fragment but at locus l)
        if (alone * -np.expm1(locus_none)).sum() < LONE_NEGLIGIBLE:
            return 0.0
        n, p_part = terms.kind_size[single], p[single]
        one_pmf, two_pmf = (binomial_cdf(a, n, p_part) - binomial_cdf(a - 1, n, p_part) for a in (1, 2))
        others = np.exp(locus_none[locus] - part_none)  # P(no ALT fragment at the locus's other parts)
        # The locus's only ALT fragments, in this part:
        one_here, two_here = one_pmf * others, two_pmf * others
        one, two, across = self._lone_tables_passing()
        category = self._category_probability(f)[:, single]
        share = np.divide(category, category.sum(axis=0), out=np.zeros_like(category), where=category > 0)
        passing = np.bincount(locus, one_here * (share * one).sum(axis=0), loci)
        if settings.min_mutant_loci == 2:
            first, second = np.triu_indices(len(share))
            pair = np.where(first == second, 1.0, 2.0)[:, None] * share[first] * share[second]
            a, b = self._part_pairs
            # One ALT fragment in each of two parts of a locus, none at its other parts, in classes c and c'.
            one_each = one_pmf[a] * one_pmf[b] * np.exp(locus_none[locus[a]] - part_none[a] - part_none[b])
            classes_each = (share[:, None, a] * share[None, :, b]).reshape(len(share) ** 2, len(a))
            at_most_two = (
                np.exp(locus_none)
                + np.bincount(locus, one_here + two_here, loci)
                + np.bincount(locus[a], one_each, loci)
            )
            passing = (
                passing
                + np.bincount(locus, two_here * (pair * two).sum(axis=0), loci)
                + np.bincount(locus[a], one_each * (classes_each * across).sum(axis=0), loci)
                + np.maximum(1 - at_most_two, 0)
            )
        return float((alone * passing).sum())

    def _lone_tables_passing(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whether the test is passed by the tables with ALT fragments at one locus only, all else REF: one
        at part j in class c (classes x parts), two at part j in classes c <= c' (class pairs x parts), and
        one at each of two parts of one locus in classes c and c' (classes^2 x `_part_pairs`); computed once
        (the statistic does not depend on f)."""
        if self._lone_positive is None:
            terms, classes = self.terms, len(self._ratio)
            parts, (a, b) = terms.n_single, self._part_pairs
            first, second = np.triu_indices(classes)
            in_one, in_other = np.divmod(np.arange(classes * classes), classes)
            column = np.arange(parts)
            one_rows, pair_rows, across_rows = classes * parts, len(first) * parts, classes * classes * len(a)
            pair_row = one_rows + np.arange(pair_rows)
            across_row = one_rows + pair_rows + np.arange(across_rows)
            row = np.concatenate([np.arange(one_rows), pair_row, pair_row, across_row, across_row])
            kind = np.concatenate(
                [np.tile(column, classes), np.tile(column, len(first)), np.tile(column, len(first)),
                 np.tile(a, classes * classes), np.tile(b, classes * classes)]
            )  # fmt: skip
            k = np.concatenate(
                [np.repeat(np.arange(classes), parts), np.repeat(first, parts), np.repeat(second, parts),
                 np.repeat(in_one, len(a)), np.repeat(in_other, len(a))]
            )  # fmt: skip
            count = np.ones(len(row))
            rows = one_rows + pair_rows + across_rows
            stat = drawn_statistics(terms, row, kind, k, count, rows, self._ratio)
            passes = np.asarray(self.null.p_value(stat) <= self.threshold, dtype=float)
            self._lone_positive = (
                passes[:one_rows].reshape(classes, parts),
                passes[one_rows : one_rows + pair_rows].reshape(-1, parts),
                passes[one_rows + pair_rows :].reshape(classes * classes, len(a)),
            )
        return self._lone_positive

    def test_probability(self, f: float) -> float:
        """max over alternatives g of P(2 l_g >= critical) at tumor fraction f: a coarse grid of g, then a
        golden-section search around its best."""
        probability = self._category_probability(f)

        def tail(log_g: float) -> float:
            return self._tail(probability, float(np.exp(log_g)))

        grid = np.log(np.minimum(f * ALTERNATIVES, 0.999))
        values = [tail(x) for x in grid]
        best = int(np.argmax(values))
        low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        inner_low, inner_high = high - GOLDEN * (high - low), low + GOLDEN * (high - low)
        value_low, value_high = tail(inner_low), tail(inner_high)
        found = max(values[best], value_low, value_high)
        for _ in range(7):  # each step keeps one inner point (golden ratio) and evaluates the other
            if value_low >= value_high:
                high, inner_high, value_high = inner_high, inner_low, value_low
                inner_low = high - GOLDEN * (high - low)
                value_low = tail(inner_low)
            else:
                low, inner_low, value_low = inner_low, inner_high, value_high
                inner_high = low + GOLDEN * (high - low)
                value_high = tail(inner_high)
            found = max(found, value_low, value_high)
        return found

    def support_probability(self, f: float) -> float:
        """At least min_mutant_fragments ALT fragments at at least min_mutant_loci loci, from below (exact
        when, as by default, the loci ask for at least as many as the fragments: each locus with an ALT has
        an ALT fragment of its own, so enough loci make enough fragments)."""
        terms, settings = self.terms, self.settings
        p = np.clip(terms.alpha + f * terms.slope, 0, 1)
        single = self._one_locus
        part_none = self._trials[single] * np.log1p(-np.minimum(p[single], 1 - 1e-16))
        # Per locus, its parts together:
        with_alt = -np.expm1(np.bincount(self._part_locus, part_none, self._loci))
        few_loci = at_most(settings.min_mutant_loci - 1, np.ones(len(with_alt)), with_alt)
        if settings.min_mutant_loci >= settings.min_mutant_fragments:
            return max(0.0, 1 - few_loci)
        few_fragments = at_most(settings.min_mutant_fragments - 1, self._trials, p)
        return max(0.0, 1 - few_fragments - few_loci)

    def lod(self, lowest: float) -> float:
        """The smallest tumor fraction named positive with probability `lod_power`, to 0.5%, in [lowest, 1];
        NaN when even f = 1 is not.

        Parameters
        ----------
        lowest : float
            The bottom of the search.

        Returns
        -------
        float
        """
        power = self.settings.lod_power

        def excess(f: float) -> float:
            return self.probability(f) - power

        low = high = min(max(self.first_guess(), lowest), 1.0)
        high_excess = excess(high)
        while high_excess < 0:
            if high >= 1.0:
                return float("nan")
            low, high = high, min(high * 4, 1.0)
            high_excess = excess(high)
        low_excess = excess(low) if low < high else high_excess
        while low_excess >= 0:
            if low <= lowest:
                return lowest
            high, high_excess = low, low_excess
            low = max(low / 4, lowest)
            low_excess = excess(low)
        return self._refine(low, low_excess, high, high_excess, excess)

    def _refine(
        self, low: float, low_excess: float, high: float, high_excess: float, excess: Callable[[float], float]
    ) -> float:
        """Regula falsi (Illinois) on log f inside [low, high], kept as a bracket until it is 0.5% wide."""
        side = 0
        while high / low > 1.005:
            a, b = np.log(low), np.log(high)
            x = (a * high_excess - b * low_excess) / (high_excess - low_excess)
            x = min(max(x, a + 0.1 * (b - a)), b - 0.1 * (b - a))
            middle = float(np.exp(x))
            value = excess(middle)
            if value >= 0:
                high, high_excess = middle, value
                if side == 1:
                    low_excess /= 2
                side = 1
            else:
                low, low_excess = middle, value
                if side == -1:
                    high_excess /= 2
                side = -1
        return float(high)

    def first_guess(self) -> float:
        """Where the score test would reach the critical value with probability `lod_power`, by the normal
        approximation: (sqrt(critical) + z) / sqrt(Fisher information at 0)."""
        terms = self.terms
        change = self._tumor[:, None] * terms.slope[None, :]
        base = self._normal[:, None] * terms.alpha[None, :]
        information = float(
            (
                np.divide(change**2, base, out=np.zeros_like(base), where=base > 0).sum(axis=0) * self._trials
            ).sum()
        )
        if information <= 0:
            return 1.0
        z = float(special.ndtri(self.settings.lod_power))
        return float((np.sqrt(max(self.critical, 0.0)) + z) / np.sqrt(information))

    def _category_probability(self, f: float) -> np.ndarray:
        """P(an ALT fragment of each kind in each length class) at tumor fraction f (classes x kinds)."""
        terms = self.terms
        probability = (
            self._normal[:, None] * terms.alpha[None, :] + f * self._tumor[:, None] * terms.slope[None, :]
        )
        return np.maximum(probability, 0.0)

    def _tail(self, probability: np.ndarray, g: float) -> float:
        """P(2 l_g >= critical) for the category probabilities of some f."""
        terms = self.terms
        with np.errstate(divide="ignore"):
            ref = np.log1p(-g * self._u)
            shift = g * self._ratio[:, None] * (terms.slope / terms.alpha)[None, :]
            value = np.log1p(np.maximum(shift, -1 + 1e-12)) - ref[None, :]
        constant = dot(terms.size, np.log1p(-g * self._column_u))
        counts = WeightedCounts(self._trials, probability, value)
        start = self._saddlepoint if np.isfinite(self._saddlepoint) else None
        tail, self._saddlepoint = counts.upper_tail(self.critical / 2 - constant, start)
        return tail


def same_locus_pairs(locus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of one-locus columns (first < second) that are parts of one real locus, given each column's
    locus: none without read orientations, one per locus with them."""
    order = np.argsort(locus, kind="stable")
    ordered = locus[order]
    first, second = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for gap in range(1, len(order)):
        same = ordered[gap:] == ordered[:-gap]
        if not same.any():  # sorted: no pair this far apart, none farther
            break
        first.append(order[:-gap][same])
        second.append(order[gap:][same])
    return np.concatenate(first), np.concatenate(second)
