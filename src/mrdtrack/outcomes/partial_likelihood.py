"""The Cox partial likelihood and its Newton-Raphson maximisation, as R's survival package computes them.

- Efron ties (R's coxph default) for the ordinary fits; Breslow ties, with the derivative of the information
  matrix, for the Firth-penalized fits (R's coxphf uses Breslow);
- right-censored rows (start = -inf) and counting-process (start, stop] rows alike, stratum by stratum;
- `newton_raphson` is R's coxfit6/agfit4 iteration: Newton steps from beta = 0, step halving while the log
  likelihood falls, convergence once it changes by at most `eps` relative. Run with eps = 1e-14 (the tolerance
  of the R cross-check), it reaches the optimum to double precision. Under monotone likelihood (a coefficient
  runs off to infinity) it stops where R does: once the log likelihood has stopped changing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

CONVERGENCE_EPS = 1e-14
MAX_ITERATIONS = 100
# R's coxph.fit flags a coefficient as infinite when the Newton step it would still take exceeds
# toler.inf x |coefficient| (toler.inf = sqrt(eps) by default).
TOLER_INF = 1e-7
# R's cholesky2 treats a direction as singular when its pivot is below toler.chol x the largest diagonal
# element (the cross-check's coxph.control(toler.chol = 1e-15)).
TOLER_CHOL = 1e-15

Evaluation = tuple[float, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CoxArrays:
    """A model's rows as arrays: covariates x, (start, stop] times (start -inf for right-censored data),
    event flags and stratum numbers."""

    x: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    event: np.ndarray
    strata: np.ndarray

    @classmethod
    def of(
        cls,
        frame: pd.DataFrame,
        covariates: list[str],
        event: str,
        stop: str,
        start: str = "",
        strata: list[str] | None = None,
    ) -> CoxArrays:
        stops = frame[stop].to_numpy(float)
        starts = frame[start].to_numpy(float) if start else np.full(len(frame), -np.inf)
        stratum = frame.groupby(strata).ngroup().to_numpy() if strata else np.zeros(len(frame), int)
        events = frame[event].to_numpy(bool)
        return cls(frame[covariates].to_numpy(float), starts, stops, events, stratum)

    def with_columns(self, columns: list[int]) -> CoxArrays:
        return CoxArrays(self.x[:, columns], self.start, self.stop, self.event, self.strata)


@dataclass(frozen=True)
class RiskSet:
    """One event time of one stratum: the rows dying then and the other rows at risk ((start, stop] holds it)."""

    alive: np.ndarray
    dead: np.ndarray

    @property
    def at_risk(self) -> np.ndarray:
        return np.concatenate([self.alive, self.dead])


def risk_sets(data: CoxArrays) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(alive, dead) row masks at each event time, stratum by stratum."""
    for stratum in np.unique(data.strata):
        in_stratum = data.strata == stratum
        for t in np.unique(data.stop[in_stratum & data.event]):
            at_risk = in_stratum & (data.start < t) & (data.stop >= t)
            dead = at_risk & (data.stop == t) & data.event
            yield at_risk & ~dead, dead


def risk_set_list(data: CoxArrays) -> list[RiskSet]:
    """The risk sets as row indices, computed once for the many evaluations of a fit."""
    return [RiskSet(np.flatnonzero(alive), np.flatnonzero(dead)) for alive, dead in risk_sets(data)]


def _shifted_risk(x: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear predictor less its maximum (a common factor cancels in every ratio and in the log likelihood)."""
    eta = x @ beta
    eta = eta - eta.max() if len(eta) else eta
    return eta, np.exp(eta)


def efron(data: CoxArrays, beta: np.ndarray, sets: list[RiskSet] | None = None) -> Evaluation:
    """Log partial likelihood, score and information at `beta` (Efron ties), as R's coxph computes them."""
    p = data.x.shape[1]
    eta, risk = _shifted_risk(data.x, beta)
    loglik, score, information = 0.0, np.zeros(p), np.zeros((p, p))
    for risk_set in risk_set_list(data) if sets is None else sets:
        step = efron_step(data.x, eta, risk, risk_set.alive, risk_set.dead)
        loglik, score, information = loglik + step[0], score + step[1], information + step[2]
    return loglik, score, information


def efron_step(x: np.ndarray, eta: np.ndarray, risk: np.ndarray, alive, dead) -> Evaluation:
    """Contributions of one event time with d tied deaths (Efron's approximation: the k-th of the d deaths sees
    the alive rows and the share k/d of the dying ones)."""
    (den0, a0, c0), (den2, a2, c2) = (_weighted_sums(x[rows], risk[rows]) for rows in (alive, dead))
    d = len(eta[dead])
    loglik = float(eta[dead].sum())
    score = x[dead].sum(axis=0)
    info = np.zeros((x.shape[1], x.shape[1]))
    for k in range(1, d + 1):
        share = k / d
        den, a, c = den0 + share * den2, a0 + share * a2, c0 + share * c2
        mean = a / den
        loglik -= np.log(den)
        score = score - mean
        info += c / den - np.outer(mean, mean)
    return loglik, score, info


def _weighted_sums(x: np.ndarray, risk: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    return float(risk.sum()), risk @ x, (x.T * risk) @ x


@dataclass(frozen=True)
class BreslowEvaluation:
    """Log partial likelihood (Breslow ties), score, information and the information's first and second
    derivatives: d_information[j, k, l] = dI_jk / dbeta_l (risk-weighted third central moments) and
    d2_information[j, k, l, m] = d2 I_jk / dbeta_l dbeta_m (fourth central moments less products of
    covariances), each summed over event times with the deaths as weight."""

    loglik: float
    score: np.ndarray
    information: np.ndarray
    d_information: np.ndarray
    d2_information: np.ndarray


def breslow(data: CoxArrays, beta: np.ndarray, sets: list[RiskSet] | None = None) -> BreslowEvaluation:
    """The Breslow partial likelihood and its first four derivatives at `beta` (coxphf's ties handling)."""
    p = data.x.shape[1]
    eta, risk = _shifted_risk(data.x, beta)
    loglik, score = 0.0, np.zeros(p)
    information, d_information, d2_information = np.zeros((p, p)), np.zeros((p,) * 3), np.zeros((p,) * 4)
    for risk_set in risk_set_list(data) if sets is None else sets:
        rows, dead = risk_set.at_risk, risk_set.dead
        weights = risk[rows] / risk[rows].sum()
        mean = weights @ data.x[rows]
        centered = data.x[rows] - mean
        pairs = (centered[:, :, None] * centered[:, None, :]).reshape(len(rows), p * p)
        weighted = centered * weights[:, None]
        covariance = weighted.T @ centered
        deaths = len(dead)
        loglik += float(eta[dead].sum() - deaths * np.log(risk[rows].sum()))
        score += data.x[dead].sum(axis=0) - deaths * mean
        information += deaths * covariance
        d_information += deaths * (weighted.T @ pairs).reshape(p, p, p)  # symmetric in j, k, l
        fourth = ((pairs * weights[:, None]).T @ pairs).reshape(p, p, p, p)
        d2_information += deaths * (fourth - _covariance_products(covariance))
    return BreslowEvaluation(loglik, score, information, d_information, d2_information)


def _covariance_products(v: np.ndarray) -> np.ndarray:
    """V_jm V_kl + V_km V_jl + V_lm V_jk, indexed [j, k, l, m]: what the moving mean takes off the fourth
    central moment in d2 E[c_j c_k] / dbeta_l dbeta_m."""
    return np.einsum("jm,kl->jklm", v, v) + np.einsum("km,jl->jklm", v, v) + np.einsum("lm,jk->jklm", v, v)


@dataclass(frozen=True)
class NewtonFit:
    """Where R's Newton-Raphson stopped: coefficients, the inverse information (variance; zero rows and
    columns for directions in which the information vanished), log likelihoods at beta = 0 and at the end,
    the score test at 0, the Newton step still pending, and which coefficients diverge (monotone
    likelihood)."""

    beta: np.ndarray
    variance: np.ndarray
    loglik_null: float
    loglik: float
    score_chisq: float | None
    pending_step: np.ndarray
    singular: np.ndarray

    @property
    def diverged(self) -> np.ndarray:
        """R's rule (coxph.fit, toler.inf), and any coefficient whose information vanished on the way."""
        step = np.abs(self.pending_step)
        return ((step > CONVERGENCE_EPS) & (step > TOLER_INF * np.abs(self.beta))) | self.singular


def newton_raphson(
    evaluate: Callable[[np.ndarray], Evaluation],
    p: int,
    eps: float = CONVERGENCE_EPS,
    max_iterations: int = MAX_ITERATIONS,
) -> NewtonFit:
    """Maximise a log likelihood as R's coxfit6: Newton steps from 0, the step halved (more each time) while the
    log likelihood falls, done once it changes by at most `eps` relative (absolute below 1: under monotone
    likelihood the supremum can be 0). Directions in which the information vanishes take no step (R's
    cholesky2). Raises LinAlgError when the information is singular at beta = 0 (collinear covariates, or
    one that does not vary within any risk set)."""
    beta = np.zeros(p)
    loglik_null, score, information = evaluate(beta)
    step, singular = solve_information(information, score)
    if singular.any():
        raise np.linalg.LinAlgError("the information matrix is singular at beta = 0")
    score_chisq = float(score @ step)
    best, new_beta, halving = loglik_null, beta + step, 0
    for _ in range(max_iterations):
        loglik, score, information = evaluate(new_beta)
        finite = np.isfinite(loglik) and np.isfinite(score).all() and np.isfinite(information).all()
        if finite and abs(loglik - best) <= eps * max(abs(loglik), 1.0):
            return _newton_fit(new_beta, loglik_null, loglik, score, information, score_chisq)
        if not finite or loglik < best:
            halving += 1
            new_beta = (new_beta + halving * beta) / (halving + 1)
            continue
        halving, best, beta = 0, loglik, new_beta
        new_beta = new_beta + solve_information(information, score)[0]
    loglik, score, information = evaluate(beta)
    return _newton_fit(beta, loglik_null, loglik, score, information, score_chisq)


def _newton_fit(beta, loglik_null, loglik, score, information, score_chisq) -> NewtonFit:
    variance, singular = invert_information(information)
    return NewtonFit(beta, variance, loglik_null, loglik, score_chisq, variance @ score, singular)


def singular_directions(information: np.ndarray, toler: float = TOLER_CHOL) -> np.ndarray:
    """R's cholesky2: a column is singular when its pivot (its diagonal less what the earlier non-singular
    columns explain) is at most toler x the largest diagonal element."""
    threshold = toler * max(float(np.max(np.diag(information), initial=0.0)), 0.0)
    singular = np.zeros(len(information), bool)
    for i in range(len(information)):
        kept = np.flatnonzero(~singular[:i])
        explained = information[i, kept] @ np.linalg.solve(
            information[np.ix_(kept, kept)], information[kept, i]
        )
        pivot = information[i, i] - explained if len(kept) else information[i, i]
        singular[i] = not np.isfinite(pivot) or pivot <= threshold
    return singular


def solve_information(information: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Newton step I^-1 U with singular directions held at 0 (R's chsolve2), and the singular mask."""
    singular = singular_directions(information)
    kept = np.flatnonzero(~singular)
    step = np.zeros(len(score))
    step[kept] = np.linalg.solve(information[np.ix_(kept, kept)], score[kept])
    return step, singular


def invert_information(information: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse over the non-singular directions, zero elsewhere (R's chinv2), and the singular mask."""
    singular = singular_directions(information)
    kept = np.flatnonzero(~singular)
    variance = np.zeros_like(information)
    variance[np.ix_(kept, kept)] = np.linalg.inv(information[np.ix_(kept, kept)])
    return variance, singular


def fit_efron(data: CoxArrays) -> NewtonFit:
    """The ordinary Cox fit (Efron ties) of all columns of `data.x`."""
    sets = risk_set_list(data)
    return newton_raphson(lambda beta: efron(data, beta, sets), data.x.shape[1])


def fit_breslow(data: CoxArrays) -> NewtonFit:
    """The ordinary Cox fit with Breslow ties (R's coxph(ties = "breslow"))."""
    sets = risk_set_list(data)

    def evaluate(beta: np.ndarray) -> Evaluation:
        value = breslow(data, beta, sets)
        return value.loglik, value.score, value.information

    return newton_raphson(evaluate, data.x.shape[1])
