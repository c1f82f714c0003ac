"""Cox models (lifelines) reported as R's coxph would, and R's cox.zph proportional-hazards test.

lifelines fits the models (Efron ties, like R's default). Written here, because lifelines lacks them:
- per-term likelihood-ratio p-values (drop the term and refit, as R's drop1/anova);
- concordance within strata (pooled pair counts, as R's concordance for a stratified coxph);
- cox.zph as in survival >= 3.0 (zph1.c / zph2.c): the score test of the model extended by g(t) x covariate,
  with the full 2p x 2p information matrix. lifelines' proportional_hazard_test implements the older,
  approximate test of survival < 3.0 and does not agree with current R.
Data problems common in a small trial (no events, an empty group, a group without events, a constant covariate)
give a note and no estimate instead of a crash or a huge meaningless hazard ratio.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, CoxTimeVaryingFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from lifelines.utils.concordance import _concordance_summary_statistics
from scipy import stats

from mrdtrack.km import z_value

# lifelines stops by default once the log-likelihood changes by < 1e-9 (relative) or the Newton decrement
# is < 1e-7; near the optimum the log-likelihood is flat to double precision while the score is not yet 0,
# which leaves coefficients ~1e-7 off and p-values ~1e-6 off R's. Stop on the Newton decrement only.
FIT_OPTIONS = {"precision": 1e-20, "r_precision": 0.0, "max_steps": 500}
MIN_EVENTS_PER_VARIABLE = 10
# A log-hazard-ratio standard error above this means a CI wider than exp(+-40): the fit diverged.
MAX_STANDARD_ERROR = 20.0
ZPH_TRANSFORMS = ("km", "identity", "rank", "log")


@dataclass
class CoxSpec:
    """What to fit: right-censored (duration) or counting-process (start/stop) data."""

    covariates: list[str]
    event: str
    duration: str = ""
    start: str = ""
    stop: str = ""
    id_col: str = ""
    strata: list[str] = field(default_factory=list)
    conf_level: float = 0.95
    zph_transform: str = "km"

    @property
    def time_varying(self) -> bool:
        return bool(self.start)

    @property
    def columns(self) -> list[str]:
        times = [self.id_col, self.start, self.stop] if self.time_varying else [self.duration]
        return times + [self.event, *self.strata, *self.covariates]


@dataclass
class CoxResult:
    """One fitted (or refused) model: a row per term, model-level figures and a note."""

    terms: pd.DataFrame
    n: int
    events: int
    lr_chisq: float | None = None
    lr_df: int = 0
    lr_p: float | None = None
    concordance: float | None = None
    zph_global: dict | None = None
    note: str = ""

    def summary(self) -> dict:
        return {
            "n": self.n,
            "events": self.events,
            "lr_chisq": self.lr_chisq,
            "lr_df": self.lr_df,
            "lr_p": self.lr_p,
            "concordance": self.concordance,
            "ph_global": self.zph_global,
            "terms": self.terms.to_dict("records"),
            "note": self.note,
        }


TERM_COLUMNS = ["term", "coef", "se", "hr", "hr_ci_low", "hr_ci_high", "p_wald", "p_lr", "ph_chisq", "ph_p"]


def fit_cox(data: pd.DataFrame, spec: CoxSpec) -> CoxResult:
    """Fit the model of `spec` on the complete cases of `data`; never raises on thin data."""
    frame = data[spec.columns].dropna().reset_index(drop=True)
    n = frame[spec.id_col].nunique() if spec.time_varying else len(frame)
    events = int(frame[spec.event].sum())
    problem = _data_problem(frame, spec, events)
    if problem:
        return CoxResult(_empty_terms(spec.covariates), n, events, note=problem)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            fitter = _fit(frame, spec)
        except (ConvergenceError, np.linalg.LinAlgError, ValueError) as error:
            reason = str(error).splitlines()[0].rstrip(".")
            note = f"not estimable: the fit did not converge ({reason}); usual with very few events"
            return CoxResult(_empty_terms(spec.covariates), n, events, note=note)
    result = _result(fitter, frame, spec, n, events)
    notes = [result.note]
    if "not estimable" not in result.note:  # lifelines' own warning about it would only repeat it
        notes += [str(w.message).splitlines()[0] for w in caught if w.category is ConvergenceWarning]
    result.note = "; ".join(dict.fromkeys(n for n in notes if n))
    return result


def _data_problem(frame: pd.DataFrame, spec: CoxSpec, events: int) -> str:
    """Why a model cannot be estimated from these rows ('' when it can)."""
    if frame.empty:
        return "no complete rows"
    if events == 0:
        return "no events"
    for column in spec.covariates:
        if frame[column].nunique() < 2:
            return f"{column} does not vary: no comparison"
        levels = frame[column].unique()
        if len(levels) == 2:
            by_level = frame.groupby(column)[spec.event].sum()
            empty = [level for level in levels if by_level.get(level, 0) == 0]
            if empty:
                return (
                    f"no events when {column} = {empty[0]:g}: hazard ratio not estimable (infinite; "
                    "monotone likelihood)"
                )
    return ""


def _fit(frame: pd.DataFrame, spec: CoxSpec) -> CoxPHFitter | CoxTimeVaryingFitter:
    strata = spec.strata or None
    alpha = 1 - spec.conf_level
    if spec.time_varying:
        return CoxTimeVaryingFitter(alpha=alpha).fit(
            frame,
            event_col=spec.event,
            start_col=spec.start,
            stop_col=spec.stop,
            id_col=spec.id_col,
            strata=strata,
            fit_options=FIT_OPTIONS,
        )
    return CoxPHFitter(alpha=alpha, strata=strata).fit(
        frame, duration_col=spec.duration, event_col=spec.event, fit_options=FIT_OPTIONS
    )


def _result(fitter, frame: pd.DataFrame, spec: CoxSpec, n: int, events: int) -> CoxResult:
    lr = fitter.log_likelihood_ratio_test()
    terms = _term_table(fitter, spec)
    terms["p_lr"] = _drop_one_lr_p(fitter, frame, spec, float(lr.test_statistic))
    diverged = ~(terms["se"] <= MAX_STANDARD_ERROR)  # NaN counts as diverged
    zph = _zph_or_empty(fitter, frame, spec) if not diverged.any() else pd.DataFrame(columns=["chisq", "p"])
    terms["ph_chisq"] = terms["term"].map(zph["chisq"])
    terms["ph_p"] = terms["term"].map(zph["p"])
    notes = [_epv_note(events, len(spec.covariates))]
    if diverged.any():
        # The likelihood keeps rising as the coefficient runs off (monotone likelihood, e.g. every positive
        # patient progressed before any negative one): no finite estimate; the LR test remains valid.
        terms.loc[diverged, ["coef", "se", "hr", "hr_ci_low", "hr_ci_high", "p_wald"]] = np.nan
        names = ", ".join(terms.loc[diverged, "term"])
        notes.insert(0, f"hazard ratio of {names} not estimable (monotone likelihood, coefficient diverges)")
    return CoxResult(
        terms=terms[TERM_COLUMNS],
        n=n,
        events=events,
        lr_chisq=float(lr.test_statistic),
        lr_df=len(spec.covariates),
        lr_p=float(lr.p_value),
        concordance=None if spec.time_varying else stratified_concordance(fitter, frame, spec),
        zph_global=zph.loc["GLOBAL"].to_dict() if "GLOBAL" in zph.index else None,
        note="; ".join(n for n in notes if n),
    )


def _zph_or_empty(fitter, frame: pd.DataFrame, spec: CoxSpec) -> pd.DataFrame:
    try:
        return cox_zph_from_fit(fitter, frame, spec)
    except np.linalg.LinAlgError:  # e.g. one event time only: g(t) is constant and the test undefined
        return pd.DataFrame(columns=["chisq", "p"])


def _term_table(fitter, spec: CoxSpec) -> pd.DataFrame:
    z = z_value(spec.conf_level)
    coef = fitter.params_[spec.covariates].to_numpy()
    se = fitter.standard_errors_[spec.covariates].to_numpy()
    with np.errstate(over="ignore"):  # diverging fits are blanked by the caller
        return pd.DataFrame(
            {
                "term": spec.covariates,
                "coef": coef,
                "se": se,
                "hr": np.exp(coef),
                "hr_ci_low": np.exp(coef - z * se),
                "hr_ci_high": np.exp(coef + z * se),
                "p_wald": 2 * stats.norm.sf(np.abs(coef / se)),
            }
        )


def _epv_note(events: int, n_terms: int) -> str:
    per_variable = events / max(n_terms, 1)
    if per_variable < MIN_EVENTS_PER_VARIABLE:
        return f"{per_variable:.1f} events per variable (< {MIN_EVENTS_PER_VARIABLE}): estimates are unstable"
    return ""


def _drop_one_lr_p(fitter, frame: pd.DataFrame, spec: CoxSpec, full_lr: float) -> list[float | None]:
    """Per-term likelihood-ratio p: 2 (ll_full - ll_without_term), 1 df; the one-term model uses the null."""
    if len(spec.covariates) == 1:
        return [float(stats.chi2.sf(full_lr, 1))]
    values: list[float | None] = []
    for term in spec.covariates:
        reduced = CoxSpec(**{**spec.__dict__, "covariates": [c for c in spec.covariates if c != term]})
        try:
            ll_reduced = _fit(frame[reduced.columns], reduced).log_likelihood_
        except (ConvergenceError, np.linalg.LinAlgError, ValueError):
            values.append(None)
            continue
        values.append(float(stats.chi2.sf(2 * (fitter.log_likelihood_ - ll_reduced), 1)))
    return values


def stratified_concordance(fitter: CoxPHFitter, frame: pd.DataFrame, spec: CoxSpec) -> float | None:
    """Harrell's C of the linear predictor, pairs formed within strata only (R's coxph concordance)."""
    risk = frame[spec.covariates].to_numpy(float) @ fitter.params_[spec.covariates].to_numpy()
    groups = frame.groupby(spec.strata).indices.values() if spec.strata else [np.arange(len(frame))]
    correct = tied = pairs = 0.0
    for index in groups:
        if len(index) < 2:
            continue
        c, t, p = _concordance_summary_statistics(
            frame[spec.duration].to_numpy(float)[index],
            -risk[index],  # higher risk predicts a shorter time
            frame[spec.event].to_numpy(bool)[index],
        )
        correct, tied, pairs = correct + c, tied + t, pairs + p
    return (correct + tied / 2) / pairs if pairs else None


def _empty_terms(covariates: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"term": list(covariates)}).reindex(columns=TERM_COLUMNS)


def cox_zph_from_fit(fitter, frame: pd.DataFrame, spec: CoxSpec) -> pd.DataFrame:
    """cox.zph of a fitted model, one test per covariate column plus GLOBAL."""
    strata = frame.groupby(spec.strata).ngroup().to_numpy() if spec.strata else None
    return cox_zph(
        frame[spec.covariates].to_numpy(float),
        fitter.params_[spec.covariates].to_numpy(float),
        frame[spec.stop if spec.time_varying else spec.duration].to_numpy(float),
        frame[spec.event].to_numpy(bool),
        start=frame[spec.start].to_numpy(float) if spec.time_varying else None,
        strata=strata,
        transform=spec.zph_transform,
        names=spec.covariates,
    )


def cox_zph(
    x: np.ndarray,
    beta: np.ndarray,
    stop: np.ndarray,
    event: np.ndarray,
    start: np.ndarray | None = None,
    strata: np.ndarray | None = None,
    transform: str = "km",
    names: Sequence[str] | None = None,
    terms: dict[str, list[int]] | None = None,
) -> pd.DataFrame:
    """R's cox.zph (survival >= 3.0) for an Efron-ties Cox fit; index = term names + GLOBAL.

    `terms` groups columns into multi-df terms as R does for factors (default: one term per column).
    """
    n, p = x.shape
    names = list(names) if names is not None else [f"x{j + 1}" for j in range(p)]
    terms = terms or {name: [j] for j, name in enumerate(names)}
    start = np.full(n, -np.inf) if start is None else np.asarray(start, float)
    strata = np.zeros(n, int) if strata is None else np.asarray(strata)
    g = _zph_time(start, stop, event, transform)
    u, imat = _zph_score_and_information(
        x - x.mean(axis=0), beta, start, stop, event, strata, g - g[event].mean()
    )
    rows = {name: _zph_test(u, imat, p, columns) for name, columns in terms.items()}
    rows["GLOBAL"] = _zph_test(u, imat, p, list(range(p)))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["chisq", "df", "p"])


def _zph_test(u: np.ndarray, imat: np.ndarray, p: int, columns: list[int]) -> tuple[float, int, float]:
    """Score test of gamma = 0 for the given columns (beta at its estimate, so its score part is 0)."""
    keep = list(range(p)) + [p + j for j in columns]
    score = np.concatenate([np.zeros(p), u[[p + j for j in columns]]])
    chisq = float(score @ np.linalg.solve(imat[np.ix_(keep, keep)], score))
    return chisq, len(columns), float(stats.chi2.sf(chisq, len(columns)))


def _zph_time(start: np.ndarray, stop: np.ndarray, event: np.ndarray, transform: str) -> np.ndarray:
    """g(t) at each row's stop time; "km" is 1 - S(t-) of the pooled KM (with delayed entry when start/stop)."""
    if transform == "identity":
        return stop.astype(float)
    if transform == "log":
        return np.log(stop)
    if transform == "rank":
        return stats.rankdata(stop)
    if transform != "km":
        raise ValueError(f"unknown cox.zph transform {transform!r}; use one of {ZPH_TRANSFORMS}")
    times = np.unique(stop[event])
    at_risk = np.array([((start < t) & (stop >= t)).sum() for t in times])
    deaths = np.array([((stop == t) & event).sum() for t in times])
    survival = np.cumprod(1 - deaths / at_risk)
    before = np.searchsorted(times, stop, side="left")  # event times strictly before each stop
    return 1 - np.concatenate([[1.0], survival])[before]


def _zph_score_and_information(
    x: np.ndarray,
    beta: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    event: np.ndarray,
    strata: np.ndarray,
    g: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Score u (2p) and information (2p x 2p) of (beta, gamma) at gamma = 0, Efron ties (zph1.c / zph2.c)."""
    p = x.shape[1]
    eta = x @ beta
    risk = np.exp(eta - eta.max())  # a common factor cancels in every ratio
    u, imat = np.zeros(2 * p), np.zeros((2 * p, 2 * p))
    for stratum in np.unique(strata):
        in_stratum = strata == stratum
        for t in np.unique(stop[in_stratum & event]):
            at_risk = in_stratum & (start < t) & (stop >= t)
            dead = at_risk & (stop == t) & event
            score, info = _efron_step(x, risk, at_risk & ~dead, dead)
            gt = g[dead][0]
            u[:p] += score
            u[p:] += gt * score
            imat[:p, :p] += info
            imat[:p, p:] += gt * info
            imat[p:, p:] += gt * gt * info
    imat[p:, :p] = imat[:p, p:].T
    return u, imat


def _efron_step(
    x: np.ndarray, risk: np.ndarray, alive: np.ndarray, dead: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Score and information contributions of one event time with d tied deaths (Efron's approximation)."""
    sums = [_weighted_sums(x[rows], risk[rows]) for rows in (alive, dead)]
    (den0, a0, c0), (den2, a2, c2) = sums
    d = int(dead.sum())
    score = x[dead].sum(axis=0)
    info = np.zeros((x.shape[1], x.shape[1]))
    for k in range(1, d + 1):
        share = k / d
        den, a, c = den0 + share * den2, a0 + share * a2, c0 + share * c2
        mean = a / den
        score = score - mean
        info += c / den - np.outer(mean, mean)
    return score, info


def _weighted_sums(x: np.ndarray, risk: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    return float(risk.sum()), risk @ x, (x.T * risk) @ x
