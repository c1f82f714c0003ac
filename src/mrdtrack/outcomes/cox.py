"""Cox models (lifelines) reported as R's coxph would, and R's cox.zph proportional-hazards test.

lifelines fits the models (Efron ties, like R's default). Written here, because lifelines lacks them:
- per-term likelihood-ratio p-values (drop the term and refit, as R's drop1/anova);
- the model-level tests of R's summary(coxph): likelihood ratio, Wald and score (log-rank), with the null and
  fitted log partial likelihoods (R's fit$loglik);
- concordance as R's concordance for a coxph fit: pairs within strata, and for counting-process (start, stop]
  rows the risk score of the row each patient is in at each event time;
- cox.zph as in survival >= 3.0 (zph1.c / zph2.c): the score test of the model extended by g(t) x covariate,
  with the full 2p x 2p information matrix. lifelines' proportional_hazard_test implements the older,
  approximate test of survival < 3.0 and does not agree with current R.
Data problems common in a small trial (no events, an empty group, a group without events, a constant covariate)
give a note and no estimate instead of a crash or a huge meaningless hazard ratio.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, CoxTimeVaryingFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from scipy import stats

from mrdtrack.outcomes.km import z_value

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
    loglik_null: float | None = None
    loglik: float | None = None
    wald_chisq: float | None = None
    wald_p: float | None = None
    score_chisq: float | None = None
    score_p: float | None = None

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
            "loglik_null": self.loglik_null,
            "loglik": self.loglik,
            "wald_chisq": self.wald_chisq,
            "wald_df": self.lr_df,
            "wald_p": self.wald_p,
            "score_chisq": self.score_chisq,
            "score_df": self.lr_df,
            "score_p": self.score_p,
        }

    def model_tests(self) -> dict:
        """The model-level figures repeated on each term row of cox.tsv."""
        return {
            "loglik_null": self.loglik_null,
            "loglik": self.loglik,
            "model_df": self.lr_df,
            "model_lr_chisq": self.lr_chisq,
            "model_lr_p": self.lr_p,
            "model_wald_chisq": self.wald_chisq,
            "model_wald_p": self.wald_p,
            "model_score_chisq": self.score_chisq,
            "model_score_p": self.score_p,
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
        concordance=concordance_of_fit(fitter, frame, spec),
        zph_global=zph.loc["GLOBAL"].to_dict() if "GLOBAL" in zph.index else None,
        note="; ".join(n for n in notes if n),
        loglik=float(fitter.log_likelihood_),
        **_wald_and_score_tests(fitter, frame, spec, wald=not diverged.any()),
    )


def _wald_and_score_tests(fitter, frame: pd.DataFrame, spec: CoxSpec, wald: bool) -> dict:
    """R's summary(coxph) model tests: Wald (beta' V^-1 beta at the estimate; none when a coefficient
    diverged) and score (U' I^-1 U at beta = 0, the log-rank test for one binary term), and the log partial
    likelihood at beta = 0."""
    data = CoxArrays.of(frame, spec)
    beta = fitter.params_[spec.covariates].to_numpy(float)
    df = len(beta)
    loglik_null, score, information = efron_partial_likelihood(data, np.zeros(df))
    result: dict = {"loglik_null": loglik_null}
    try:
        score_chisq = float(score @ np.linalg.solve(information, score))
        result |= {"score_chisq": score_chisq, "score_p": float(stats.chi2.sf(score_chisq, df))}
    except np.linalg.LinAlgError:
        pass
    if wald:
        # By position: lifelines' time-varying fitter leaves the matrix's columns unnamed.
        order = fitter.params_.index.get_indexer(spec.covariates)
        variance = fitter.variance_matrix_.to_numpy(float)[np.ix_(order, order)]
        wald_chisq = float(beta @ np.linalg.solve(variance, beta))
        result |= {"wald_chisq": wald_chisq, "wald_p": float(stats.chi2.sf(wald_chisq, df))}
    return result


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
    def of(cls, frame: pd.DataFrame, spec: CoxSpec) -> CoxArrays:
        stop = frame[spec.stop if spec.time_varying else spec.duration].to_numpy(float)
        start = frame[spec.start].to_numpy(float) if spec.time_varying else np.full(len(frame), -np.inf)
        strata = frame.groupby(spec.strata).ngroup().to_numpy() if spec.strata else np.zeros(len(frame), int)
        event = frame[spec.event].to_numpy(bool)
        return cls(frame[spec.covariates].to_numpy(float), start, stop, event, strata)


def risk_sets(data: CoxArrays) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(alive, dead) row masks at each event time, stratum by stratum: dead = the rows ending in an event then,
    alive = the other rows at risk ((start, stop] holds the time)."""
    for stratum in np.unique(data.strata):
        in_stratum = data.strata == stratum
        for t in np.unique(data.stop[in_stratum & data.event]):
            at_risk = in_stratum & (data.start < t) & (data.stop >= t)
            dead = at_risk & (data.stop == t) & data.event
            yield at_risk & ~dead, dead


def concordance_of_fit(fitter, frame: pd.DataFrame, spec: CoxSpec) -> float | None:
    """Harrell's C of the fitted linear predictor, as R's concordance(coxph fit)."""
    beta = fitter.params_[spec.covariates].to_numpy(float)
    data = CoxArrays.of(frame, spec)
    return concordance(data.x @ beta, data)


def concordance(risk: np.ndarray, data: CoxArrays) -> float | None:
    """At each event time, each patient who progresses against every other row at risk then (in its stratum):
    concordant when the progressing one has the higher risk score, tied (counted half) when equal. Patients
    progressing at the same time are not compared with each other (R's tied.y)."""
    concordant = discordant = tied = 0
    for alive, dead in risk_sets(data):
        others = np.sort(risk[alive])
        below = np.searchsorted(others, risk[dead], side="left")
        not_above = np.searchsorted(others, risk[dead], side="right")
        concordant += int(below.sum())
        tied += int((not_above - below).sum())
        discordant += int((len(others) - not_above).sum())
    pairs = concordant + discordant + tied
    return (concordant + tied / 2) / pairs if pairs else None


def efron_partial_likelihood(data: CoxArrays, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Log partial likelihood, score and information at `beta` (Efron ties), as R's coxph computes them."""
    p = data.x.shape[1]
    eta = data.x @ beta
    eta = eta - eta.max()  # a common factor cancels in every ratio; the log-likelihood keeps it below
    risk = np.exp(eta)
    loglik, score, information = 0.0, np.zeros(p), np.zeros((p, p))
    for alive, dead in risk_sets(data):
        step_loglik, step_score, step_information = _efron_step(data.x, eta, risk, alive, dead)
        loglik, score, information = loglik + step_loglik, score + step_score, information + step_information
    return loglik, score, information


def _empty_terms(covariates: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"term": list(covariates)}).reindex(columns=TERM_COLUMNS)


def cox_zph_from_fit(fitter, frame: pd.DataFrame, spec: CoxSpec) -> pd.DataFrame:
    """cox.zph of a fitted model, one test per covariate column plus GLOBAL."""
    data = CoxArrays.of(frame, spec)
    return cox_zph(
        data.x,
        fitter.params_[spec.covariates].to_numpy(float),
        data.stop,
        data.event,
        start=data.start,
        strata=data.strata,
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
    data = CoxArrays(x - x.mean(axis=0), start, np.asarray(stop, float), np.asarray(event, bool), strata)
    u, imat = _zph_score_and_information(data, beta, g - g[event].mean())
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
    data: CoxArrays, beta: np.ndarray, g: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Score u (2p) and information (2p x 2p) of (beta, gamma) at gamma = 0, Efron ties (zph1.c / zph2.c)."""
    p = data.x.shape[1]
    eta = data.x @ beta
    eta = eta - eta.max()  # a common factor cancels in every ratio
    risk = np.exp(eta)
    u, imat = np.zeros(2 * p), np.zeros((2 * p, 2 * p))
    for alive, dead in risk_sets(data):
        _loglik, score, info = _efron_step(data.x, eta, risk, alive, dead)
        gt = g[dead][0]
        u[:p] += score
        u[p:] += gt * score
        imat[:p, :p] += info
        imat[:p, p:] += gt * info
        imat[p:, p:] += gt * gt * info
    imat[p:, :p] = imat[:p, p:].T
    return u, imat


def _efron_step(
    x: np.ndarray, eta: np.ndarray, risk: np.ndarray, alive: np.ndarray, dead: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood, score and information contributions of one event time with d tied deaths (Efron's
    approximation: the k-th of the d deaths sees the alive rows and the share k/d of the dying ones)."""
    sums = [_weighted_sums(x[rows], risk[rows]) for rows in (alive, dead)]
    (den0, a0, c0), (den2, a2, c2) = sums
    d = int(dead.sum())
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
