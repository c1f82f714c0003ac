"""Simon's two-stage phase II design (exact binomial), and the decision it gives on observed data.

Stage 1 enrolls n1 patients and stops for futility when <= r1 are successes; otherwise n in total are enrolled
and the treatment is declared promising (H0: p <= p0 rejected) when > r are successes.
- optimal: the smallest expected sample size under p0 (EN0) among designs meeting alpha and power;
- minimax: the smallest total n, then the smallest EN0.
Simon (1989), Controlled Clinical Trials 10:1-10; the same search as R's clinfun::ph2simon.

Lifelines and scipy have no such search: it is written here and tested against Simon's published table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

DESIGNS = ("optimal", "minimax")


@dataclass(frozen=True)
class SimonDesign:
    """One two-stage design with its operating characteristics."""

    design: str
    r1: int
    n1: int
    r: int
    n: int
    en0: float  # expected sample size under p0
    pet0: float  # probability of early termination under p0
    alpha: float  # actual type I error
    power: float  # actual power at p1

    def as_dict(self) -> dict:
        return asdict(self)


def reject_probability(p: float, r1: int, n1: int, r: int, n: int) -> float:
    """P(X1 > r1 and X1 + X2 > r) with X1 ~ Bin(n1, p), X2 ~ Bin(n - n1, p), straight from scipy."""
    x1 = np.arange(r1 + 1, n1 + 1)
    return float(np.sum(stats.binom.pmf(x1, n1, p) * stats.binom.sf(r - x1, n - n1, p)))


@lru_cache(maxsize=32)  # the search takes about a second and is asked again for every run and test
def simon_designs(
    p0: float, p1: float, alpha: float, power: float, nmax: int = 100
) -> dict[str, SimonDesign]:
    """Optimal and minimax designs; a design is absent when none with n <= nmax meets alpha and power."""
    if not 0 < p0 < p1 < 1:
        raise ValueError("Simon design needs 0 < p0 < p1 < 1")
    tables = _BinomialTables(p0, nmax), _BinomialTables(p1, nmax)
    candidates = [c for n in range(2, nmax + 1) for c in _feasible(n, tables, alpha, power)]
    found: dict[str, SimonDesign] = {}
    if candidates:
        found["optimal"] = min(candidates, key=lambda c: (round(c[4], 10), c[3], c[1]))
        smallest_n = min(c[3] for c in candidates)
        found["minimax"] = min(
            (c for c in candidates if c[3] == smallest_n), key=lambda c: (round(c[4], 10), c[1])
        )
    return {name: _describe(name, c, p0, p1) for name, c in found.items()}


class _BinomialTables:
    """pmf and upper tails of Bin(m, p) for every m <= nmax, computed once per search."""

    def __init__(self, p: float, nmax: int):
        self.p = p
        self.pmf = [stats.binom.pmf(np.arange(m + 1), m, p) for m in range(nmax + 1)]
        # tail[m][k + 1] = P(Bin(m, p) > k) for k = -1..m
        self.tail = [np.concatenate([[1.0], 1 - np.cumsum(pmf)]).clip(0, 1) for pmf in self.pmf]

    def above(self, m: int, k: np.ndarray) -> np.ndarray:
        """P(Bin(m, p) > k) for integer arrays k (1 below 0, 0 from m on)."""
        return self.tail[m][np.clip(k, -1, m) + 1]

    def reject_matrix(self, n1: int, n: int) -> np.ndarray:
        """reject[r1, r] = P(X1 > r1, X1 + X2 > r) for r1 in 0..n1, r in 0..n."""
        x1 = np.arange(n1 + 1)
        terms = self.pmf[n1][:, None] * self.above(n - n1, np.arange(n + 1)[None, :] - x1[:, None])
        above = np.cumsum(terms[::-1], axis=0)[::-1]  # sum over x1' >= x1
        return np.vstack([above[1:], np.zeros((1, n + 1))])  # row r1 sums x1 > r1


def _feasible(
    n: int, tables: tuple[_BinomialTables, _BinomialTables], alpha: float, power: float
) -> list[tuple]:
    """(r1, n1, r, n, EN0) for every stage-1 split of n that meets alpha and power.

    For a given (n1, r1), rejection gets less likely as r grows, under p0 and p1 alike: the best r is the
    largest one that keeps the power, and the split is feasible when that r also keeps alpha.
    """
    null, alternative = tables
    found = []
    for n1 in range(1, n):
        reject0, reject1 = null.reject_matrix(n1, n), alternative.reject_matrix(n1, n)
        r1 = np.arange(n1)
        r = (reject1[:n1] >= power).sum(axis=1) - 1  # largest r keeping the power (monotone in r)
        ok = (r >= r1) & (reject0[r1, np.maximum(r, 0)] <= alpha)
        pet0 = np.cumsum(null.pmf[n1])[r1]
        found += [
            (int(a), n1, int(b), n, n1 + (1 - e) * (n - n1))
            for a, b, e in zip(r1[ok], r[ok], pet0[ok], strict=True)
        ]
    return found


def _describe(name: str, candidate: tuple, p0: float, p1: float) -> SimonDesign:
    r1, n1, r, n, en0 = candidate
    return SimonDesign(
        design=name,
        r1=r1,
        n1=n1,
        r=r,
        n=n,
        en0=float(en0),
        pet0=float(stats.binom.cdf(r1, n1, p0)),
        alpha=reject_probability(p0, r1, n1, r, n),
        power=reject_probability(p1, r1, n1, r, n),
    )


def simon_decision(
    design: SimonDesign, stage1_successes: int, stage1_evaluable: int, successes: int, evaluable: int
) -> str:
    """Where the observed data stand in the design (stage 1 = the first n1 evaluable patients)."""
    if stage1_evaluable < design.n1:
        return f"stage 1 incomplete ({stage1_evaluable} of {design.n1} evaluable)"
    if stage1_successes <= design.r1:
        return f"stop after stage 1 for futility ({stage1_successes} <= r1 = {design.r1} successes)"
    if evaluable < design.n:
        return f"stage 1 passed ({stage1_successes} > r1 = {design.r1}); stage 2 incomplete ({evaluable} of {design.n} evaluable)"
    if successes > design.r:
        return f"reject H0: {successes} > r = {design.r} successes of {design.n}"
    return f"do not reject H0: {successes} <= r = {design.r} successes of {design.n}"
