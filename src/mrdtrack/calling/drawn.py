"""Drawn tables fitted together at a cost that grows with their ALT fragments, not with their columns.

The Monte Carlo null (null.py) and the LOD (lod.py) fit thousands of tables, each a handful of ALT fragments
among all of the sample's columns (its loci, and the groups of loci covered together). Holding every table's
all-REF fragments per column (`likelihood.Tables`) makes each Newton step cost tables x columns: 20 million
terms for 1,000 tables at 20,000 loci. Here the all-REF part is split into what every table shares and what its
own ALT fragments take away,

    sum_j rest_j log(1 - g_j - f d_j) = sum_j size_j log(1 - g_j - f d_j) - sum_(j with ALT) taken_j log(...),

and log(1 - g - f d) = log(1 - g) + log(1 - f u) with u = d / (1 - g). The log(1 - g) terms do not depend on f
and cancel in every ratio; u is 1 - prod(1 - min(w_i / 2, 1)) over the column's loci, so it depends on the
variant weights alone and the shared sum is one function of f over the few distinct u (a single one when every
weight is 1). The tables and the model are those of `likelihood.Tables`; only the order of summation differs,
so the statistics agree to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mrdtrack.calling.inference import lr_statistics
from mrdtrack.calling.likelihood import LikelihoodTerms

# Distinct u values up to which the shared sum is evaluated term by term for every table.
MAX_DIRECT_VALUES = 64
# Beyond that, tables with f up to SERIES_MAX_F use the power series of log(1 - f u) in f (u <= 1), cut after
# SERIES_TERMS terms: the first term left out is below 0.05^15 = 3e-20 of the sum.
SERIES_MAX_F = 0.05
SERIES_TERMS = 15
# Tables whose columns are read at a time when they differ from table to table (`TableColumns`).
TABLE_BLOCK = 100


@dataclass(frozen=True)
class SharedColumns:
    """sum_j size_j log(1 - f u_j) over every column, which all tables of one sample share, and its first two
    derivatives in f, as a function of each table's f.

    Parameters
    ----------
    u : numpy.ndarray
        The distinct u = d / (1 - g) of the columns.
    size : numpy.ndarray
        The fragments of the columns with each u.
    moments : numpy.ndarray
        sum size u^k for k = 1..SERIES_TERMS (used only with more than MAX_DIRECT_VALUES distinct u).
    size_d : float
        sum_j size_j d_j over every column (for the fit's starting value).
    """

    u: np.ndarray
    size: np.ndarray
    moments: np.ndarray
    size_d: float

    @classmethod
    def of(cls, terms: LikelihoodTerms) -> SharedColumns:
        """The shared sum of a sample's columns.

        Parameters
        ----------
        terms : LikelihoodTerms
            Where the sample's fragments fall.

        Returns
        -------
        SharedColumns
        """
        size = terms.size.astype(float)
        u_all = column_u(terms)
        u, where = np.unique(u_all, return_inverse=True)
        summed = np.bincount(where.ravel(), size, len(u))
        powers = u[None, :] ** np.arange(1, SERIES_TERMS + 1)[:, None]
        return cls(u, summed, (powers * summed).sum(axis=1), float((size * terms.d).sum()))

    def subset(self, keep: np.ndarray) -> SharedColumns:
        """The same sum: every table shares it."""
        return self

    def derivatives(self, f: np.ndarray, order: int) -> np.ndarray:
        """The shared sum (order 0) or its first or second derivative in f, at each table's f."""
        f = np.asarray(f, dtype=float)
        if len(self.u) <= MAX_DIRECT_VALUES:
            return self._direct(f, order)
        out = np.empty(len(f))
        small = f <= SERIES_MAX_F
        out[small] = self._series(f[small], order)
        out[~small] = self._direct(f[~small], order)  # few tables: one pass over every distinct u
        return out

    def _direct(self, f: np.ndarray, order: int) -> np.ndarray:
        # Explicit sums, not matrix products: a threaded BLAS call is slow on a busy shared host.
        out = np.zeros(len(f))
        with np.errstate(divide="ignore", invalid="ignore"):
            for u, size in zip(self.u, self.size, strict=True):
                if order == 0:
                    out += size * np.log1p(-f * u)
                elif order == 1:
                    out -= size * u / (1 - f * u)
                else:
                    out -= size * (u / (1 - f * u)) ** 2
        return out

    def _series(self, f: np.ndarray, order: int) -> np.ndarray:
        k = np.arange(1, SERIES_TERMS + 1)
        if order == 0:  # -sum f^k M_k / k
            coefficients, lowest = -self.moments / k, 1
        elif order == 1:  # -sum f^(k-1) M_k
            coefficients, lowest = -self.moments, 0
        else:  # -sum (k-1) f^(k-2) M_k, from k = 2
            coefficients, lowest = -(k[1:] - 1) * self.moments[1:], 0
        out = np.zeros(len(f))
        for coefficient in coefficients[::-1]:  # Horner
            out = out * f + coefficient
        return out * f**lowest


@dataclass(frozen=True)
class TableColumns:
    """As `SharedColumns`, for tables whose columns hold different fragments from one table to the next (the
    synthetic panels of a sample's own null draw each locus's molecules from a flank position): per table,
    sum_j size_tj log(1 - f u_j) and its first two derivatives in f, from a few sums per table rather than
    its every column.

    With few distinct u the sums are the table's fragments at each u; with many, the moments
    sum_j size_tj u_j^k of the power series (tables with f up to SERIES_MAX_F), and the columns themselves,
    read again through `sizes`, for the rare tables above it.

    Parameters
    ----------
    u : numpy.ndarray
        Each column's u.
    distinct : numpy.ndarray
        The distinct u.
    grouped : numpy.ndarray
        Tables x distinct u: each table's fragments at each u (tables x 0 beyond MAX_DIRECT_VALUES).
    moments : numpy.ndarray
        Tables x SERIES_TERMS: sum_j size_tj u_j^k (tables x 0 up to MAX_DIRECT_VALUES distinct u).
    size_d : numpy.ndarray
        Per table, sum_j size_tj d_j (for the fit's starting value).
    sizes : callable
        Table indices -> their columns' fragments (tables x columns).
    table : numpy.ndarray
        The tables' indices as `sizes` takes them.
    """

    u: np.ndarray
    distinct: np.ndarray
    grouped: np.ndarray
    moments: np.ndarray
    size_d: np.ndarray
    sizes: Callable[[np.ndarray], np.ndarray]
    table: np.ndarray

    @classmethod
    def of(
        cls,
        tables: int,
        sizes: Callable[[np.ndarray], np.ndarray],
        u: np.ndarray,
        d: np.ndarray,
        block: int = TABLE_BLOCK,
    ) -> TableColumns:
        """The sums of `tables` tables whose columns' fragments `sizes` gives (a block of tables at a time),
        for columns of these u and d.

        Parameters
        ----------
        tables : int
            The number of tables.
        sizes : callable
            Table indices -> their columns' fragments (tables x columns).
        u, d : numpy.ndarray
            Each column's u = d / (1 - g) and d.
        block : int
            Tables read at a time (memory: block x columns).

        Returns
        -------
        TableColumns
        """
        u, d = np.asarray(u, dtype=float), np.asarray(d, dtype=float)
        distinct, where = np.unique(u, return_inverse=True)
        where = where.ravel()
        few = len(distinct) <= MAX_DIRECT_VALUES
        powers = u[:, None] ** np.arange(1, SERIES_TERMS + 1)[None, :]
        grouped, moments, size_d = [], [], []
        for first in range(0, tables, block):
            size = np.asarray(sizes(np.arange(first, min(first + block, tables))), dtype=float)
            if few:
                grouped.append(np.stack([size[:, where == k].sum(axis=1) for k in range(len(distinct))], 1))
            else:
                moments.append(size @ powers)
            size_d.append(size @ d)

        def stacked(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros((tables, 0))

        return cls(
            u, distinct, stacked(grouped), stacked(moments), np.concatenate(size_d) if size_d else np.zeros(0),
            sizes, np.arange(tables),
        )  # fmt: skip

    def subset(self, keep: np.ndarray) -> TableColumns:
        """The sums of the kept tables."""
        return TableColumns(
            self.u, self.distinct, self.grouped[keep], self.moments[keep], self.size_d[keep], self.sizes,
            self.table[keep],
        )  # fmt: skip

    def derivatives(self, f: np.ndarray, order: int) -> np.ndarray:
        """Each table's sum (order 0) or its first or second derivative in f, at the table's f."""
        f = np.asarray(f, dtype=float)
        if len(self.distinct) <= MAX_DIRECT_VALUES:
            out = np.zeros(len(f))
            for k, u in enumerate(self.distinct):
                out += self.grouped[:, k] * _log_term(f, u, order)
            return out
        out = np.empty(len(f))
        small = f <= SERIES_MAX_F
        out[small] = _series(self.moments[small], f[small], order)
        large = np.flatnonzero(~small)
        for first in range(0, len(large), TABLE_BLOCK):  # rare but at f = 1: the columns read again
            some = large[first : first + TABLE_BLOCK]
            size = np.asarray(self.sizes(self.table[some]), dtype=float)
            out[some] = (size * _log_term(f[some, None], self.u[None, :], order)).sum(axis=1)
        return out


def _log_term(f: np.ndarray, u: np.ndarray | float, order: int) -> np.ndarray:
    """log(1 - f u) or its first or second derivative in f."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if order == 0:
            return np.log1p(-f * u)
        if order == 1:
            return -u / (1 - f * u)
        return -((u / (1 - f * u)) ** 2)


def _series(moments: np.ndarray, f: np.ndarray, order: int) -> np.ndarray:
    """The power series of sum_j size_j log(1 - f u_j) (or a derivative) from the moments M_k, one row of
    moments per f."""
    k = np.arange(1, SERIES_TERMS + 1)
    if order == 0:  # -sum f^k M_k / k
        coefficients, lowest = -moments / k, 1
    elif order == 1:  # -sum f^(k-1) M_k
        coefficients, lowest = -moments, 0
    else:  # -sum (k-1) f^(k-2) M_k, from k = 2
        coefficients, lowest = -(k[1:] - 1) * moments[:, 1:], 0
    out = np.zeros(len(f))
    for j in range(coefficients.shape[1] - 1, -1, -1):  # Horner
        out = out * f + coefficients[:, j]
    return out * f**lowest


def column_u(terms: LikelihoodTerms) -> np.ndarray:
    """u = d / (1 - g) per column: the share of a column's all-REF chance that tumor origin removes."""
    return terms.d / (1 - terms.g)


@dataclass(frozen=True)
class SparseTables:
    """Drawn tables held by their ALT cells and the columns those cells take fragments from; the fit
    interface of `likelihood.Tables` (`inference.fit`, `inference.lr_statistics` take either).

    Per ALT cell: its row, count, `alpha`, `beta` (T - N times the length ratio) and `weight` (T - N). Per
    (row, column) with ALT fragments: the fragments `taken` from the column's all-REF ones (at most its size)
    and the column's u and d. The all-REF fragments of every column are in `shared`.
    """

    rows: int
    row: np.ndarray
    count: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    weight: np.ndarray
    taken_row: np.ndarray
    taken: np.ndarray
    taken_u: np.ndarray
    taken_d: np.ndarray
    shared: SharedColumns | TableColumns

    @classmethod
    def of_draws(
        cls,
        terms: LikelihoodTerms,
        row: np.ndarray,
        kind: np.ndarray,
        k: np.ndarray,
        count: np.ndarray,
        rows: int,
        r: np.ndarray,
        shared: SharedColumns | None = None,
    ) -> SparseTables:
        """Drawn tables: `count` ALT fragments of each (row, kind, length class) cell, as
        `likelihood.Tables.of_draws` takes them.

        Parameters
        ----------
        terms : LikelihoodTerms
            Where the sample's fragments fall.
        row, kind, k, count : numpy.ndarray
            Each cell's table, kind, length class and ALT fragments.
        rows : int
            The number of tables.
        r : numpy.ndarray
            The length classes' ratios (one 1 for counts only).
        shared : SharedColumns, optional
            `SharedColumns.of(terms)`, when already at hand.

        Returns
        -------
        SparseTables
        """
        shared = shared or SharedColumns.of(terms)
        row = np.asarray(row, dtype=np.int64)
        count = np.asarray(count, dtype=float)
        column = terms.kind_column[kind]
        columns = len(terms.size)
        pair, where = np.unique(row * columns + column, return_inverse=True)
        used = np.bincount(where.ravel(), count, len(pair))
        pair_column = pair % columns
        slope = terms.slope[kind]
        return cls(
            rows, row, count, terms.alpha[kind], slope * r[k], slope,
            pair // columns, np.minimum(used, terms.size[pair_column]),
            column_u(terms)[pair_column], terms.d[pair_column], shared,
        )  # fmt: skip

    def __len__(self) -> int:
        return self.rows

    def subset(self, keep: np.ndarray) -> SparseTables:
        new_row = np.cumsum(keep) - 1
        cells, pairs = keep[self.row], keep[self.taken_row]
        return SparseTables(
            int(keep.sum()), new_row[self.row[cells]], self.count[cells], self.alpha[cells], self.beta[cells],
            self.weight[cells], new_row[self.taken_row[pairs]], self.taken[pairs], self.taken_u[pairs],
            self.taken_d[pairs], self.shared.subset(keep),
        )  # fmt: skip

    def log_likelihood(self, f: np.ndarray) -> np.ndarray:
        """Per row, log L(f) - log L(0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            alt = self.count * np.log1p(f[self.row] * self.beta / self.alpha)
            taken = self.taken * np.log1p(-f[self.taken_row] * self.taken_u)
        return (
            np.bincount(self.row, alt, self.rows)
            + self.shared.derivatives(f, 0)
            - np.bincount(self.taken_row, taken, self.rows)
        )

    def score_and_curvature(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.alpha + f[self.row] * self.beta
        with np.errstate(divide="ignore", invalid="ignore"):
            alt = self.count * self.beta / p
            ref = self.taken_u / (1 - f[self.taken_row] * self.taken_u)
        score = (
            np.bincount(self.row, alt, self.rows)
            + self.shared.derivatives(f, 1)
            + np.bincount(self.taken_row, self.taken * ref, self.rows)
        )
        curvature = (
            -np.bincount(self.row, alt * self.beta / p, self.rows)
            + self.shared.derivatives(f, 2)
            + np.bincount(self.taken_row, self.taken * ref**2, self.rows)
        )
        return score, curvature

    def start(self) -> np.ndarray:
        """As `likelihood.Tables.start`: the estimate that ignores background, at or above the root."""
        alt = np.bincount(self.row, self.count, self.rows)
        ref_d = self.shared.size_d - np.bincount(self.taken_row, self.taken * self.taken_d, self.rows)
        fragments = ref_d + np.bincount(self.row, self.count * self.weight, self.rows)
        return np.clip(np.divide(alt, fragments, out=np.zeros(self.rows), where=fragments > 0), 1e-12, 0.999)


def drawn_statistics(
    terms: LikelihoodTerms,
    row: np.ndarray,
    kind: np.ndarray,
    k: np.ndarray,
    count: np.ndarray,
    rows: int,
    r: np.ndarray,
    shared: SharedColumns | None = None,
) -> np.ndarray:
    """The likelihood-ratio statistic of each of `rows` drawn tables (`SparseTables.of_draws` arguments).

    Parameters
    ----------
    terms : LikelihoodTerms
        Where the sample's fragments fall.
    row, kind, k, count : numpy.ndarray
        Each ALT cell's table, kind, length class and fragments.
    rows : int
        The number of tables.
    r : numpy.ndarray
        The length classes' ratios.
    shared : SharedColumns, optional
        `SharedColumns.of(terms)`, when already at hand.

    Returns
    -------
    numpy.ndarray
        2 (log L(f_hat) - log L(0)) per table, 0 when f_hat = 0.
    """
    return lr_statistics(SparseTables.of_draws(terms, row, kind, k, count, rows, r, shared))
