"""Firth-penalized Cox regression (Heinze & Schemper 2001), as R's coxphf computes it.

With few events, monotone likelihood is common: when every progression in a cohort is in MRD-positive
patients, the ordinary hazard ratio is infinite. Firth's penalty, half the log determinant of the information
matrix, keeps the estimate finite:

    l*(beta) = l(beta) + 0.5 log det I(beta)

with l the Breslow partial likelihood (coxphf's ties handling). As in coxphf:
- the estimate maximises l*; its standard error comes from the inverse of the unpenalized information I;
- confidence limits are profile penalized-likelihood limits, where 2 (l*max - max l* with beta_j fixed)
  equals the chi-square quantile, and each term's p-value is the penalized likelihood-ratio test of
  beta_j = 0 (the other coefficients re-fitted);
- the model's likelihood-ratio test compares l*max with l* at beta = 0 on p degrees of freedom.
Strata are supported (the partial likelihood and the information summed over strata; coxphf has none), and so
are counting-process (start, stop] rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mrdtrack.outcomes.cox import (
    NOT_COMPARABLE,
    TERM_COLUMNS,
    CoxResult,
    CoxSpec,
    complete_cases,
    concordance_with_std_err,
    data_problem,
    empty_terms,
    fit_cox,
)
from mrdtrack.outcomes.partial_likelihood import CoxArrays, RiskSet, breslow, risk_set_list

STEP_TOLERANCE = 1e-11
MAX_ITERATIONS = 500
# The largest change of a coefficient in one step (coxphf caps its steps too): far from the maximum a Newton
# step on the flat penalized likelihood can overshoot far.
MAX_STEP = 2.5
MAX_HALVINGS = 30
ROUNDING = 1e-13
# Profile limits are searched up to this far from the estimate (log hazard ratio): exp(40) is no limit.
SEARCH_LIMIT = 40.0
FIRTH_NOTE = (
    "Firth-penalized Cox (Heinze-Schemper, Breslow ties): profile penalized-likelihood CI and penalized "
    "likelihood-ratio tests; the log likelihoods are the penalized ones; no proportional-hazards test"
)


class PenalizedLikelihood:
    """l*(beta) of one data set, its gradient and curvature, and its maximum with some coefficients fixed."""

    def __init__(self, data: CoxArrays) -> None:
        self.data = data
        self.sets: list[RiskSet] = risk_set_list(data)
        self.p = data.x.shape[1]

    def evaluate(self, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """l*, its gradient U + 0.5 tr(I^-1 dI/dbeta_l), and its curvature (minus the Hessian,
        I - 0.5 [tr(I^-1 d2I/dbeta_l dbeta_m) - tr(I^-1 dI_l I^-1 dI_m)]); the curvature is the information
        where the exact one is not positive definite (coxphf always uses the information, which converges
        only linearly: the penalty's own curvature is left out)."""
        value = breslow(self.data, beta, self.sets)
        sign, log_det = np.linalg.slogdet(value.information)
        if sign <= 0:
            return -np.inf, value.score, value.information
        inverse = np.linalg.inv(value.information)
        scaled = np.einsum("ij,jkl->ikl", inverse, value.d_information)  # I^-1 dI_l
        score = value.score + 0.5 * np.einsum("jjl->l", scaled)
        penalty_hessian = 0.5 * (
            np.einsum("kj,jklm->lm", inverse, value.d2_information) - np.einsum("ijl,jim->lm", scaled, scaled)
        )
        curvature = value.information - penalty_hessian
        curvature = (curvature + curvature.T) / 2
        if not np.isfinite(curvature).all() or np.linalg.eigvalsh(curvature).min() <= 0:
            curvature = value.information
        return value.loglik + 0.5 * log_det, score, curvature

    def maximize(self, start: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """The maximum of l* over the `free` coefficients from `start` (the others stay fixed): Newton steps,
        capped at MAX_STEP and halved while l* falls. Returns the point, l* and the gradient there."""
        beta = start.astype(float).copy()
        loglik, score, curvature = self.evaluate(beta)
        for _ in range(MAX_ITERATIONS):
            step = np.zeros(self.p)
            if free.any():
                step[free] = np.linalg.solve(curvature[np.ix_(free, free)], score[free])
            largest = np.abs(step).max(initial=0.0)
            if largest < STEP_TOLERANCE:
                break
            if largest > MAX_STEP:
                step *= MAX_STEP / largest
            beta, loglik, score, curvature = self._halved_step(beta, step, loglik)
        return beta, loglik, score

    def _halved_step(self, beta: np.ndarray, step: np.ndarray, loglik: float):
        # Accept a step that loses no more than rounding: near the maximum l* is flat to double precision.
        floor = loglik - ROUNDING * (1 + abs(loglik))
        for _ in range(MAX_HALVINGS):
            new_loglik, score, curvature = self.evaluate(beta + step)
            if new_loglik >= floor:
                return beta + step, new_loglik, score, curvature
            step = step / 2
        return beta, *self.evaluate(beta)


@dataclass(frozen=True)
class FirthFit:
    """Firth estimates (log hazard ratios), standard errors, profile-likelihood limits, per-term penalized
    likelihood-ratio statistics, and the model's penalized log likelihoods at 0 and at the maximum."""

    coef: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    term_chisq: np.ndarray
    loglik_null: float
    loglik: float
    variance: np.ndarray

    @property
    def lr_chisq(self) -> float:
        return 2 * (self.loglik - self.loglik_null)

    @property
    def term_p(self) -> np.ndarray:
        return stats.chi2.sf(self.term_chisq, 1)

    @property
    def wald_chisq(self) -> float:
        return float(self.coef @ np.linalg.solve(self.variance, self.coef))


def firth_cox(data: CoxArrays, conf_level: float = 0.95) -> FirthFit:
    """The Firth-penalized fit of all columns of `data.x`, with profile penalized-likelihood intervals at
    `conf_level` and penalized likelihood-ratio tests. Raises LinAlgError when the information matrix is
    singular at beta = 0 (collinear or constant covariates)."""
    likelihood = PenalizedLikelihood(data)
    everything = np.ones(likelihood.p, bool)
    loglik_null = likelihood.evaluate(np.zeros(likelihood.p))[0]
    beta, loglik, _ = likelihood.maximize(np.zeros(likelihood.p), everything)
    value = breslow(data, beta, likelihood.sets)
    variance = np.linalg.inv(value.information)
    se = np.sqrt(np.diag(variance))
    drop = stats.chi2.ppf(conf_level, 1) / 2
    limits, chisq = [], []
    for j in range(likelihood.p):
        profile = _Profile(likelihood, beta, loglik, j)
        limits.append([profile.limit(loglik - drop, direction, se[j]) for direction in (-1, 1)])
        chisq.append(max(2 * (loglik - profile(0.0)[0]), 0.0))
    low, high = np.array(limits).T if limits else (np.array([]), np.array([]))
    return FirthFit(beta, se, low, high, np.array(chisq), loglik_null, loglik, variance)


class _Profile:
    """The profile penalized log likelihood of coefficient j (max l* with beta_j fixed) and its slope (the
    gradient's j-th component at that maximum), each maximisation started from the nearest point fitted."""

    def __init__(self, likelihood: PenalizedLikelihood, estimate: np.ndarray, top: float, j: int) -> None:
        self.likelihood, self.j, self.top = likelihood, j, top
        self.free = np.arange(likelihood.p) != j
        self.fitted: list[np.ndarray] = [estimate]

    def __call__(self, value: float) -> tuple[float, float]:
        start = min(self.fitted, key=lambda beta: abs(beta[self.j] - value)).copy()
        start[self.j] = value
        beta, loglik, score = self.likelihood.maximize(start, self.free)
        self.fitted.append(beta)
        return loglik, float(score[self.j])

    def limit(self, target: float, direction: int, scale: float) -> float:
        """Where the profile falls to `target` on one side of the estimate (+-inf when it never does within
        SEARCH_LIMIT): a bracket stepped out from the estimate, then Newton steps on the profile (its slope
        is known), bisecting whenever a step leaves the bracket."""
        estimate = self.fitted[0][self.j]
        step = min(max(scale, 0.1), SEARCH_LIMIT / 4) if np.isfinite(scale) else 1.0
        inner, outer = estimate, None
        while abs(inner - estimate) < SEARCH_LIMIT:
            point = inner + direction * step
            value, slope = self(point)
            if value < target:
                outer = point
                break
            inner, step = point, step * 2
        if outer is None:
            return direction * np.inf
        return self._root(target, inner, outer, value, slope)

    def _root(self, target: float, inner: float, outer: float, value: float, slope: float) -> float:
        point = outer
        for _ in range(MAX_ITERATIONS):
            if abs(value - target) <= ROUNDING * (1 + abs(target)) or abs(outer - inner) <= 1e-13 * (
                1 + abs(point)
            ):
                return point
            newton = point - (value - target) / slope if slope else np.nan
            point = newton if min(inner, outer) < newton < max(inner, outer) else (inner + outer) / 2
            value, slope = self(point)
            if value < target:
                outer = point
            else:
                inner = point
        return point


def fit_firth(data: pd.DataFrame, spec: CoxSpec) -> CoxResult:
    """The Firth-penalized model of `spec` on the complete cases of `data` (method "firth"), reported in the
    columns of an ordinary fit. No proportional-hazards test (cox.zph has none for a penalized fit); the score
    test is the ordinary one at beta = 0 (the log-rank test for one binary term), which monotone likelihood
    leaves valid."""
    frame, n, events = complete_cases(data, spec)
    problem = data_problem(frame, spec, events)
    if problem:
        return CoxResult(empty_terms(spec.covariates), n, events, note=problem, method="firth")
    arrays = spec.arrays(frame)
    try:
        fit = firth_cox(arrays, spec.conf_level)
    except np.linalg.LinAlgError:
        note = NOT_COMPARABLE
        return CoxResult(empty_terms(spec.covariates), n, events, note=note, method="firth")
    c_index, c_std_err = concordance_with_std_err(arrays.x @ fit.coef, arrays)
    df = len(spec.covariates)
    return CoxResult(
        terms=_firth_terms(fit, spec),
        n=n,
        events=events,
        lr_chisq=fit.lr_chisq,
        lr_df=df,
        lr_p=float(stats.chi2.sf(fit.lr_chisq, df)),
        concordance=c_index,
        concordance_se=c_std_err,
        note=FIRTH_NOTE,
        loglik_null=fit.loglik_null,
        loglik=fit.loglik,
        wald_chisq=fit.wald_chisq,
        wald_p=float(stats.chi2.sf(fit.wald_chisq, df)),
        method="firth",
    )


def _firth_terms(fit: FirthFit, spec: CoxSpec) -> pd.DataFrame:
    with np.errstate(over="ignore"):
        terms = pd.DataFrame(
            {
                "term": spec.covariates,
                "coef": fit.coef,
                "se": fit.se,
                "hr": np.exp(fit.coef),
                "hr_ci_low": np.exp(fit.ci_low),
                "hr_ci_high": np.exp(fit.ci_high),
                "p_wald": 2 * stats.norm.sf(np.abs(fit.coef / fit.se)),
                "p_lr": fit.term_p,
            }
        )
    return terms.reindex(columns=TERM_COLUMNS)


def fit_cox_or_firth(data: pd.DataFrame, spec: CoxSpec) -> CoxResult:
    """The ordinary Cox fit (method "cox"), or, when a coefficient diverges because of monotone likelihood
    (e.g. no progression among the MRD-negative patients of a cohort), the Firth-penalized fit (method
    "firth") with the ordinary fit's reason in its note and the ordinary score test."""
    ordinary = fit_cox(data, spec)
    if not ordinary.monotone_likelihood:
        return ordinary
    firth = fit_firth(data, spec)
    if firth.terms["coef"].isna().any():
        return ordinary
    firth.note = f"{firth.note}; ordinary fit: {ordinary.note}"
    firth.score_chisq, firth.score_p = ordinary.score_chisq, ordinary.score_p
    return firth
