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

The estimate, the test and the interval over these terms are in inference.py.
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

    Parameters
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
    def single_locus(self) -> np.ndarray:
        """The real locus of each one-locus column: two columns share one when they are a locus's two read
        orientations (kinds 0..S-1 show one ALT each, at their column's locus)."""
        return self.hit_locus[: self.n_single]

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


def as_counts(n: Any) -> np.ndarray:
    """Molecule counts as integers, as scipy.special's binomial functions take them."""
    return np.rint(np.asarray(n, dtype=float)).astype(np.int64)
