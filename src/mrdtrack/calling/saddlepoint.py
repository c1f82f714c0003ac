"""Tail probabilities of weighted sums of independent counts, without drawing them.

`WeightedCounts` is X = sum_j S_j Y_j in law: S_j independent trials of kind j, each falling in category c with
probability pi_jc and adding v_jc to X (nothing otherwise). Its cumulant generating function is exact,

    K(t) = sum_j S_j log(1 + sum_c pi_jc (exp(t v_jc) - 1)),

and P(X >= x) follows from the Lugannani-Rice saddlepoint formula. Its relative error is O(1/n) in the number of
events, uniformly into the far tail, where a normal approximation is off by orders of magnitude; for the
few-event, lattice-free sums of the LOD it stays within about 2% of the Monte Carlo detection probability
(benchmarks/lod_accuracy.py). `at_most` gives P(N <= m) for a sum N of independent binomials exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

# Below this |w| (the signed root of the tilt's deviance) the Lugannani-Rice formula is 0/0; its limit there
# is the normal tail with the skewness term.
NEAR_MEAN = 1e-5
# The saddlepoint is found to this many standard deviations of the tilted sum.
SADDLEPOINT_TOL = 1e-6


@dataclass(frozen=True)
class WeightedCounts:
    """X = sum over kinds j of its S_j trials' values: each trial adds v_jc with probability pi_jc (c a
    category), nothing otherwise.

    Parameters
    ----------
    trials : numpy.ndarray
        S_j per kind.
    probability, value : numpy.ndarray
        pi_jc and v_jc, categories x kinds (so that sums over categories run along whole rows); the pi of a
        kind sum to at most 1.
    """

    trials: np.ndarray
    probability: np.ndarray
    value: np.ndarray

    def cumulants(self, t: float, third: bool = False) -> tuple[float, ...]:
        """K(t) and its first two derivatives; with `third`, its third derivative too."""
        with np.errstate(over="ignore", invalid="ignore"):
            if t == 0:  # untilted (the mean, variance and skewness of every tail): no exponential
                weight, z = self.probability, np.ones(self.probability.shape[1])
            else:  # one exponential per cell (the cost of a genome-wide panel's LOD): the tilted weights
                change = self.probability * np.expm1(t * self.value)
                z = 1 + change.sum(axis=0)
                weight = self.probability + change
            weighted = weight * self.value
            m1 = weighted.sum(axis=0) / z
            m2 = (weighted * self.value).sum(axis=0) / z
        s = self.trials
        found = (dot(s, np.log(z)), dot(s, m1), dot(s, m2 - m1**2))
        if not third:
            return found
        m3 = (weighted * self.value**2).sum(axis=0) / z
        return (*found, dot(s, m3 - 3 * m1 * m2 + 2 * m1**3))

    def upper_tail(self, x: float, start: float | None = None) -> tuple[float, float]:
        """P(X >= x) by the Lugannani-Rice formula, clipped to [0, 1], and the saddlepoint.

        Parameters
        ----------
        x : float
            The level.
        start : float, optional
            Where the search for the saddlepoint starts (that of a nearby sum, say).

        Returns
        -------
        tuple of (float, float)
            The saddlepoint approximation of the upper tail (0 beyond the largest value X can take), and the
            saddlepoint t, where the first derivative of K is x.
        """
        reach = dot(self.trials, np.where(self.probability > 0, np.maximum(self.value, 0), 0).max(axis=0))
        if x >= reach:
            return 0.0, np.inf
        _, mean, variance, third = self.cumulants(0.0, third=True)
        if variance <= 0:
            return float(mean >= x), 0.0
        t, k, k2 = self._saddlepoint(x, (x - mean) / variance if start is None else start)
        w = np.sign(t) * np.sqrt(max(2 * (t * x - k), 0.0))
        if abs(w) < NEAR_MEAN or k2 <= 0:
            z = (x - mean) / np.sqrt(variance)
            skew = third / variance**1.5
            return float(np.clip(special.ndtr(-z) + skew / 6 * (z**2 - 1) * _phi(z), 0, 1)), t
        v = t * np.sqrt(k2)
        return float(np.clip(special.ndtr(-w) + _phi(w) * (1 / v - 1 / w), 0, 1)), t

    def _saddlepoint(self, x: float, t: float) -> tuple[float, float, float]:
        """(t, K(t), second derivative of K at t) where the first derivative of K is x, to a millionth of the
        tilted sum's sd: Newton steps on the increasing derivative, kept in a bracket that widens until it
        holds the root."""
        low, high = -np.inf, np.inf
        for _ in range(200):
            k, slope, curvature = self.cumulants(t)
            if np.isfinite(slope) and abs(x - slope) <= SADDLEPOINT_TOL * np.sqrt(max(curvature, 0.0)):
                return t, k, curvature
            if np.isfinite(slope) and slope < x:
                low = t
            else:
                high = t
            step = t + (x - slope) / curvature if curvature > 0 and np.isfinite(slope) else np.nan
            if np.isfinite(low) and np.isfinite(high):
                if not low < step < high:
                    step = (low + high) / 2
            elif not np.isfinite(step) or step <= low or step >= high:
                step = 2 * t + (1.0 if np.isfinite(low) else -1.0)
            t = step
        k, _, curvature = self.cumulants(t)
        return t, k, curvature


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) without BLAS: on a busy shared host a threaded BLAS call on one long vector can take
    milliseconds instead of microseconds."""
    return float((a * b).sum())


def _phi(z: float) -> float:
    return float(np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi))


def at_most(m: int, trials: np.ndarray, probability: np.ndarray) -> float:
    """P(N <= m) for N the sum of independent Binomial(trials_j, probability_j), exactly.

    The generating function is prod (1 - p_j)^S_j (1 + x_j z)^S_j with x_j = p_j / (1 - p_j); its first
    coefficients are the elementary symmetric polynomials of the x (each repeated S_j times), found from their
    power sums by Newton's identities.

    Parameters
    ----------
    m : int
        The largest count of the tail (a small number: the support rule's minimum less one).
    trials, probability : numpy.ndarray
        S_j and p_j.

    Returns
    -------
    float
    """
    if m < 0:
        return 0.0
    trials = np.asarray(trials, dtype=float)
    p = np.asarray(probability, dtype=float)
    certain = (p >= 1) & (trials > 0)
    if trials[certain].sum() > m:
        return 0.0
    m -= int(trials[certain].sum())
    keep = (p > 0) & (p < 1) & (trials > 0)
    trials, p = trials[keep], p[keep]
    log_none = dot(trials, np.log1p(-p))
    x = p / (1 - p)
    power = [dot(trials, x**k) for k in range(1, m + 1)]
    elementary = [1.0]
    for k in range(1, m + 1):
        elementary.append(
            sum((-1) ** (j - 1) * elementary[k - j] * power[j - 1] for j in range(1, k + 1)) / k
        )
    return float(min(1.0, np.exp(log_none) * sum(elementary)))
