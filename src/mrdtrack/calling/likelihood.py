"""The likelihood of a tumor fraction, over DNA fragments.

A plasma sample's evidence at a panel is its fragments (molecules). Most cover one panel locus; some cover
several (nearby loci, phased or not). Tumor origin is a property of the fragment, errors are per base, so a
fragment contributes once, whatever the number of loci it covers:

    L_j(f) = (1 - f) N_j + f T_j

with N_j the probability of the alleles it shows if it is not from the tumor (at each locus i it covers: e_i
for an ALT, 1 - e_i for a REF) and T_j the same if it is (e_i + c_i for an ALT, 1 - e_i - c_i for a REF, with
c_i = (1 - e_i) w_i / 2 and w_i the variant's weight: cancer-cell fraction x multiplicity). Loci are
independent given the fragment's origin. A one-locus fragment gives the binomial model of SCIENCE.md,
a_i ~ Binomial(n_i, e_i + f c_i). With fragment lengths (fraglen.py), the tumor part of a fragment with an ALT
is weighed by its length's tumor/non-tumor ratio r: N_j + f (T_j - N_j) r.

A one-locus fragment's error rate also depends on its read orientation for the locus's substitution (8-oxoG
damage makes G>T on one orientation only, F1R2 or F2R1): with orientations known, a locus's one-locus
fragments are two **parts**, each with its own background rate e_io and the same tumor share (tumor DNA shows
in both orientations alike). An ALT excess in one orientation is then weighed against that orientation's own
noise, while a tumor's ALTs also land in the quiet one.

Fragments are grouped into **columns** by the loci they cover: one column per locus (or per part of a locus)
for the one-locus fragments, one per set of loci covered together. A column's all-REF fragments are one term; fragments with an
ALT are **cells**, each with its own N (`alpha`) and T - N (`slope`). The Monte Carlo null and the LOD draw
**kinds**: the ALT patterns a column's fragments can show (each kind's count drawn on its own, as a binomial
over the column's fragments: exact for one-locus fragments, close for groups, whose patterns are rare).

The log-likelihood is concave in f, so the MLE is the root of the score (or a bound).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

# Groups of up to this many loci have every ALT pattern as a kind; larger ones only the one-ALT patterns (the
# LOD then errs on the safe side: it leaves out tumor fragments with ALTs at several of them).
MAX_PATTERN_LOCI = 10


@dataclass(frozen=True)
class LikelihoodTerms:
    """The terms of a sample's likelihood at a set of loci that do not depend on its alleles: where its fragments
    fall, and how likely each ALT pattern is with and without tumor origin.

    Columns 0..S-1 are the one-locus fragments, one column per locus (S = L) or per part of a locus (its
    molecules of one read orientation, `LocusParts`); the next ones are the groups of loci covered together.
    Kinds 0..S-1 are an ALT on a one-locus column's fragment, the next ones the ALT patterns of a group's
    fragments (ALT at some of its loci, REF at the others); `hit_locus` says which real loci each kind shows
    an ALT at, so that support counts loci, never parts. Build with `of_loci`, `of_fragments` or `of_parts`.

    Attributes
    ----------
    size : numpy.ndarray
        Fragments per column.
    g, d : numpy.ndarray
        Per column: 1 - P(all REF | not tumor), and P(all REF | not tumor) - P(all REF | tumor).
    kind_column : numpy.ndarray
        Each kind's column.
    alpha, slope : numpy.ndarray
        Each kind's probability if the fragment is not from the tumor, and its probability if it is minus
        `alpha`.
    hit_kind, hit_locus : numpy.ndarray
        The loci where each kind shows an ALT (pairs, sorted by kind).
    groups : tuple of tuple of int
        The loci of each group column.
    """

    size: np.ndarray  # fragments per column
    g: np.ndarray  # per column: 1 - P(all REF | not tumor)
    d: np.ndarray  # per column: P(all REF | not tumor) - P(all REF | tumor)
    kind_column: np.ndarray
    alpha: np.ndarray
    slope: np.ndarray
    hit_kind: np.ndarray
    hit_locus: np.ndarray
    groups: tuple[tuple[int, ...], ...] = ()  # the loci of each group column

    @classmethod
    def of_loci(cls, n: np.ndarray, e: np.ndarray, w: np.ndarray) -> LikelihoodTerms:
        """One-locus fragments only: n_i of them at locus i (the binomial model).

        Parameters
        ----------
        n : numpy.ndarray
            Informative molecules per locus.
        e : numpy.ndarray
            Background rate per locus.
        w : numpy.ndarray
            Variant weight per locus (cancer-cell fraction x multiplicity).

        Returns
        -------
        LikelihoodTerms
        """
        return cls.of_fragments(n, e, w, [], [])

    @classmethod
    def of_fragments(
        cls,
        n: np.ndarray,
        e: np.ndarray,
        w: np.ndarray,
        groups: Sequence[tuple[int, ...]],
        group_size: Sequence[int],
    ) -> LikelihoodTerms:
        """One-locus fragments and fragments that cover several loci together.

        Parameters
        ----------
        n : numpy.ndarray
            One-locus fragments per locus.
        e, w : numpy.ndarray
            Background rate and variant weight per locus.
        groups : sequence of tuple of int
            Sets of loci (indices into `n`) covered together by some fragments.
        group_size : sequence of int
            Fragments covering each group.

        Returns
        -------
        LikelihoodTerms
        """
        e = np.asarray(e, dtype=float)
        return cls.of_parts(LocusParts.whole(n, e), e, w, groups, group_size)

    @classmethod
    def of_parts(
        cls,
        parts: LocusParts,
        e: np.ndarray,
        w: np.ndarray,
        groups: Sequence[tuple[int, ...]],
        group_size: Sequence[int],
    ) -> LikelihoodTerms:
        """One-locus fragments as parts of loci, each part with its own background rate, and fragments that
        cover several loci together.

        Parameters
        ----------
        parts : LocusParts
            The one-locus columns: each one's locus, fragments and background rate.
        e, w : numpy.ndarray
            Background rate (of a fragment whatever its part: used for the groups) and variant weight per locus.
        groups : sequence of tuple of int
            Sets of loci covered together by some fragments.
        group_size : sequence of int
            Fragments covering each group.

        Returns
        -------
        LikelihoodTerms
        """
        e, w = np.asarray(e, dtype=float), np.asarray(w, dtype=float)
        c = tumor_share(e, w)
        part_e = np.asarray(parts.rate, dtype=float)
        part_c = tumor_share(part_e, w[parts.locus])
        columns = np.arange(len(part_e))
        g, d, kind_column, alpha, slope = [part_e], [part_c], [columns], [part_e], [part_c]
        hit_kind, hit_locus = [columns], [np.asarray(parts.locus)]
        kinds = len(part_e)
        for column, group in enumerate(groups, start=len(part_e)):
            members = np.asarray(group)
            normal_ref, tumor_ref = 1 - e[members], 1 - e[members] - c[members]
            g.append([-np.expm1(np.log(normal_ref).sum())])
            d.append([normal_ref.prod() - tumor_ref.prod()])
            for is_alt in alt_patterns(len(members)):
                normal = np.where(is_alt, e[members], normal_ref).prod()
                tumor = np.where(is_alt, e[members] + c[members], tumor_ref).prod()
                kind_column.append([column])
                alpha.append([normal])
                slope.append([tumor - normal])
                hit_kind.append(np.full(int(is_alt.sum()), kinds))
                hit_locus.append(members[is_alt])
                kinds += 1
        size = np.concatenate(
            [np.asarray(parts.size, dtype=np.int64), np.asarray(group_size, dtype=np.int64)]
        )
        floats = (np.concatenate(x).astype(float) for x in (g, d, alpha, slope))
        g_all, d_all, alpha_all, slope_all = floats
        ints = (np.concatenate(x).astype(np.int64) for x in (kind_column, hit_kind, hit_locus))
        column_all, hit_kind_all, hit_locus_all = ints
        return cls(
            size, g_all, d_all, column_all, alpha_all, slope_all, hit_kind_all, hit_locus_all,
            tuple(map(tuple, groups)),
        )  # fmt: skip

    @property
    def n_single(self) -> int:
        """The one-locus columns (loci, or parts of loci)."""
        return int(len(self.size) - len(self.groups))

    @property
    def kind_size(self) -> np.ndarray:
        """Fragments that can show each kind: those of its column."""
        return self.size[self.kind_column]

    def expected_background(self) -> float:
        """ALT fragments expected without tumor DNA."""
        return float((self.kind_size * self.alpha).sum())


@dataclass(frozen=True)
class LocusParts:
    """The one-locus columns of a `LikelihoodTerms`: each one's locus, fragments and background rate. A locus
    is one part (`whole`), or two with read orientations known (its F1R2 and F2R1 molecules)."""

    locus: np.ndarray
    size: np.ndarray
    rate: np.ndarray

    @classmethod
    def whole(cls, n: np.ndarray, e: np.ndarray) -> LocusParts:
        """One part per locus: all its one-locus fragments, at the locus's rate."""
        return cls(np.arange(len(e)), np.asarray(n), np.asarray(e, dtype=float))


def alt_patterns(k: int) -> list[np.ndarray]:
    """The ALT patterns (boolean masks) of a fragment covering k loci: every non-empty one for up to
    MAX_PATTERN_LOCI loci, else one ALT at a time."""
    if k > MAX_PATTERN_LOCI:
        return list(np.eye(k, dtype=bool))
    codes = np.arange(1, 2**k)
    return list(((codes[:, None] >> np.arange(k)) & 1).astype(bool))


def tumor_share(e: np.ndarray, w: np.ndarray) -> np.ndarray:
    """c = (1 - e) w / 2: what a tumor fragment adds to the chance of an ALT (w/2 of its copies carry it)."""
    return np.minimum((1 - e) * w / 2, 1 - e)


@dataclass(frozen=True)
class Observed:
    """A sample's fragments with an ALT, as cells over its `LikelihoodTerms`: each with its column, its N
    (`alpha`), T - N (`slope`), fragment-length class `k` and count. Cells of one-locus fragments are the kinds
    0..S-1 (one per one-locus column)."""

    terms: LikelihoodTerms
    column: np.ndarray
    alpha: np.ndarray
    slope: np.ndarray
    k: np.ndarray
    count: np.ndarray

    @classmethod
    def of_loci(cls, a: np.ndarray, terms: LikelihoodTerms) -> Observed:
        """ALT one-locus fragments per one-locus column (S: loci or their parts), or per column and length
        class (S x classes). Counts may be fractions: a locus's ALTs of one length class shared between its
        orientation parts when only their totals are known."""
        a = np.asarray(a)
        table = a[:, None] if a.ndim == 1 else a
        locus, k = np.nonzero(table)
        return cls(terms, locus, terms.alpha[locus], terms.slope[locus], k.astype(np.int64), table[locus, k])

    def with_fragments(
        self, e: np.ndarray, w: np.ndarray, patterns: Sequence[tuple[int, np.ndarray, int, int]]
    ) -> Observed:
        """Add fragments of the terms' groups that show an ALT: (group index, ALT mask over the group's
        loci, length class, count)."""
        if not patterns:
            return self
        c = tumor_share(np.asarray(e, dtype=float), np.asarray(w, dtype=float))
        extra = []
        for group_index, is_alt, k, count in patterns:
            members = np.asarray(self.terms.groups[group_index])
            normal = np.where(is_alt, e[members], 1 - e[members]).prod()
            tumor = np.where(is_alt, e[members] + c[members], 1 - e[members] - c[members]).prod()
            extra.append((self.terms.n_single + group_index, normal, tumor - normal, k, count))
        column, alpha, slope, k, count = (np.array(values) for values in zip(*extra, strict=True))
        return Observed(
            self.terms,
            np.concatenate([self.column, column.astype(np.int64)]),
            np.concatenate([self.alpha, alpha]),
            np.concatenate([self.slope, slope]),
            np.concatenate([self.k, k.astype(np.int64)]),
            np.concatenate([self.count, count.astype(np.int64)]),
        )

    def tables(self, r: np.ndarray | None = None) -> Tables:
        """The one-row fit table (r: the length classes' ratios; None: counts only)."""
        ratio = np.ones(1) if r is None else np.asarray(r, dtype=float)
        used = np.bincount(self.column, self.count, len(self.terms.size))
        rest = (self.terms.size - used)[None, :].astype(float)
        return Tables(
            np.zeros(len(self.count), dtype=np.int64), self.count.astype(float), self.alpha,
            self.slope * ratio[self.k], self.slope, rest, self.terms.g, self.terms.d,
        )  # fmt: skip


@dataclass
class Tables:
    """Rows of fragment tables held sparsely for the fit.

    Per ALT cell: its row, count, `alpha` (N) and `beta` (T - N, times the length ratio): its likelihood is
    alpha + f beta; `weight` is T - N alone, for the starting value. Per row and column, the all-REF
    fragments (`rest`), each of likelihood 1 - g - f d. Null and LOD tables are mostly zeros, so the cost grows
    with the ALT fragments, not with draws x loci x classes.
    """

    row: np.ndarray
    count: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    weight: np.ndarray
    rest: np.ndarray  # rows x columns
    g: np.ndarray
    d: np.ndarray

    @classmethod
    def of(
        cls, a: np.ndarray, n: np.ndarray, e: np.ndarray, w: np.ndarray, r: np.ndarray | None = None
    ) -> Tables:
        """From one-locus ALT counts per locus (rows x loci), or per locus and length class with the classes'
        `r`."""
        a, r = as_classes(a, r)
        a = a.reshape((-1,) + a.shape[-2:])
        row, locus, k = np.nonzero(a)
        c = tumor_share(e, w)
        return cls(
            row, a[row, locus, k], e[locus], c[locus] * r[k], c[locus], n - a.sum(axis=-1), e, c
        )  # fmt: skip

    @classmethod
    def of_draws(
        cls, terms: LikelihoodTerms, row: np.ndarray, kind: np.ndarray, k: np.ndarray, count: np.ndarray,
        rows: int, r: np.ndarray,
    ) -> Tables:  # fmt: skip
        """Drawn tables: `count` ALT fragments of each (row, kind, length class) cell."""
        used = np.zeros((rows, len(terms.size)))
        np.add.at(used, (row, terms.kind_column[kind]), count)
        rest = np.maximum(terms.size - used, 0)
        slope = terms.slope[kind]
        return cls(row, count, terms.alpha[kind], slope * r[k], slope, rest, terms.g, terms.d)

    def __len__(self) -> int:
        return len(self.rest)

    def subset(self, keep: np.ndarray) -> Tables:
        cells = keep[self.row]
        new_row = np.cumsum(keep) - 1
        return Tables(
            new_row[self.row[cells]], self.count[cells], self.alpha[cells], self.beta[cells],
            self.weight[cells], self.rest[keep], self.g, self.d,
        )  # fmt: skip

    def log_likelihood(self, f: np.ndarray) -> np.ndarray:
        """Per row, without the terms free of f (they cancel in every ratio)."""
        p = self.alpha + f[self.row] * self.beta
        alt = np.bincount(self.row, special.xlogy(self.count, p), len(self))
        return alt + special.xlog1py(self.rest, -(self.g + f[:, None] * self.d)).sum(axis=-1)

    def score_and_curvature(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.alpha + f[self.row] * self.beta
        # With alpha = 0 at f = 0, an ALT gives an infinite score (the fit leaves 0 at once).
        with np.errstate(divide="ignore", invalid="ignore"):
            alt = self.count * self.beta / p
            ref_p = 1 - self.g - f[:, None] * self.d
            ref = self.rest * self.d / ref_p
        score = np.bincount(self.row, alt, len(self)) - ref.sum(axis=-1)
        curvature = -np.bincount(self.row, alt * self.beta / p, len(self)) - (ref * self.d / ref_p).sum(
            axis=-1
        )
        return score, curvature

    def start(self) -> np.ndarray:
        """The estimate that ignores background: at or above the root for counts. From there the first
        Newton step lands near the root (the score is convex), where convergence is quadratic; starting
        below, Newton only doubles f per step."""
        alt = np.bincount(self.row, self.count, len(self))
        fragments = (self.rest * self.d).sum(axis=-1) + np.bincount(
            self.row, self.count * self.weight, len(self)
        )
        return np.clip(np.divide(alt, fragments, out=np.zeros(len(self)), where=fragments > 0), 1e-12, 0.999)


def alt_probability(f: Any, e: np.ndarray, w: np.ndarray) -> np.ndarray:
    """P(ALT molecule) = e + (1 - e) f w / 2; `f` broadcasts over leading axes (one f per row)."""
    f = np.asarray(f, dtype=float)
    c = tumor_share(e, w)
    return e + f[..., None] * c if f.ndim else e + f * c


def as_classes(a: Any, r: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(ALT counts with a trailing length-class axis, the classes' ratios): counts-only data are one class."""
    a = np.asarray(a)
    return (a[..., None], np.ones(1)) if r is None else (a, np.asarray(r, dtype=float))


def log_likelihood(
    f: float, a: np.ndarray, n: np.ndarray, e: np.ndarray, w: np.ndarray, r: np.ndarray | None = None
) -> float:
    """Log-likelihood of tumor fraction `f` for one-locus fragments; binomial coefficients included (counts
    only), length-class terms that do not depend on f left out."""
    if r is None:
        from scipy import stats  # only for people and tests: the fit never needs the coefficients

        return float(stats.binom.logpmf(a, n, alt_probability(f, e, w)).sum())
    return float(Tables.of(np.asarray(a)[None], n, e, w, r).log_likelihood(np.array([f]))[0])


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


def as_counts(n: Any) -> np.ndarray:
    """Molecule counts as integers, as scipy.special's binomial functions take them."""
    return np.rint(np.asarray(n, dtype=float)).astype(np.int64)


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
