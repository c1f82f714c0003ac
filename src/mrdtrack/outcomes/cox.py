"""Cox models reported as R's coxph would, and R's cox.zph proportional-hazards test.

The fit is R's own Newton-Raphson on the Efron partial likelihood (mrdtrack.outcomes.partial_likelihood),
iterated to the optimum R reaches with coxph.control(eps = 1e-14). Written here, as R's summary(coxph) and
its helpers report them:
- per-term likelihood-ratio p-values (drop the term and refit, as R's drop1/anova);
- the model-level tests of R's summary(coxph): likelihood ratio, Wald and score (log-rank), with the null and
  fitted log partial likelihoods (R's fit$loglik);
- concordance and its standard error as R's concordance for a coxph fit: pairs within strata, for
  counting-process (start, stop] rows the risk score of the row each patient is in at each event time, and the
  infinitesimal-jackknife variance of concordancefit;
- cox.zph as in survival >= 3.0 (zph1.c / zph2.c): the score test of the model extended by g(t) x covariate,
  with the full 2p x 2p information matrix.
Data problems common in a small trial (no events, an empty group, a constant covariate) give a note and no
estimate instead of a crash. Under monotone likelihood (e.g. no progression among MRD-positive patients) the
diverging coefficient has no estimate, while the likelihood-ratio and score tests, the log likelihoods and the
other coefficients are reported as R reports them; mrdtrack.outcomes.firth gives the penalized estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from mrdtrack.outcomes.km import z_value
from mrdtrack.outcomes.partial_likelihood import (
    CoxArrays,
    NewtonFit,
    efron_step,
    fit_efron,
    risk_sets,
)

MIN_EVENTS_PER_VARIABLE = 10
# A log-hazard-ratio standard error above this means a CI wider than exp(+-40): the fit diverged.
MAX_STANDARD_ERROR = 20.0
ZPH_TRANSFORMS = ("km", "identity", "rank", "log")
# The information matrix is singular at beta = 0: no event time has patients at risk who differ in the
# covariate (or covariates are collinear), so the data hold no comparison.
NOT_COMPARABLE = (
    "not estimable: at no progression were patients at risk who differ in the covariates (or the covariates "
    "are collinear)"
)


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

    def arrays(self, frame: pd.DataFrame) -> CoxArrays:
        stop = self.stop if self.time_varying else self.duration
        return CoxArrays.of(frame, self.covariates, self.event, stop, self.start, self.strata)


@dataclass
class CoxResult:
    """One fitted (or refused) model: a row per term, model-level figures and a note. `method` is "cox" (the
    ordinary partial likelihood, Efron ties) or "firth" (Firth-penalized, Breslow ties, profile-likelihood
    intervals; then the log likelihoods and the likelihood-ratio test are the penalized ones).
    `monotone_likelihood`: a coefficient of the ordinary fit diverges (no finite estimate)."""

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
    concordance_se: float | None = None
    method: str = "cox"
    monotone_likelihood: bool = False

    def summary(self) -> dict:
        return {
            "n": self.n,
            "events": self.events,
            "method": self.method,
            "lr_chisq": self.lr_chisq,
            "lr_df": self.lr_df,
            "lr_p": self.lr_p,
            "concordance": self.concordance,
            "concordance_se": self.concordance_se,
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
ESTIMATE_COLUMNS = ["coef", "se", "hr", "hr_ci_low", "hr_ci_high", "p_wald"]


def fit_cox(data: pd.DataFrame, spec: CoxSpec) -> CoxResult:
    """Fit the model of `spec` on the complete cases of `data`; never raises on thin data."""
    frame, n, events = complete_cases(data, spec)
    problem = data_problem(frame, spec, events)
    if problem:
        return CoxResult(empty_terms(spec.covariates), n, events, note=problem)
    arrays = spec.arrays(frame)
    try:
        fit = fit_efron(arrays)
    except np.linalg.LinAlgError:
        note = NOT_COMPARABLE
        return CoxResult(empty_terms(spec.covariates), n, events, note=note)
    return _result(fit, frame, arrays, spec, n, events)


def complete_cases(data: pd.DataFrame, spec: CoxSpec) -> tuple[pd.DataFrame, int, int]:
    """The rows with every model column present, the number of patients in them and of events."""
    frame = data[spec.columns].dropna().reset_index(drop=True)
    n = frame[spec.id_col].nunique() if spec.time_varying else len(frame)
    return frame, n, int(frame[spec.event].sum())


def data_problem(frame: pd.DataFrame, spec: CoxSpec, events: int) -> str:
    """Why no model can be fitted to these rows ('' when one can)."""
    if frame.empty:
        return "no complete rows"
    if events == 0:
        return "no events"
    for column in spec.covariates:
        if frame[column].nunique() < 2:
            return f"{column} does not vary: no comparison"
    return ""


def _result(fit: NewtonFit, frame: pd.DataFrame, arrays: CoxArrays, spec: CoxSpec, n: int, events: int):
    lr = 2 * (fit.loglik - fit.loglik_null)
    terms = _term_table(fit, spec)
    terms["p_lr"] = _drop_one_lr_p(fit, arrays, lr)
    diverged = fit.diverged | ~(terms["se"] <= MAX_STANDARD_ERROR).to_numpy()  # NaN counts as diverged
    zph = (
        _zph_or_empty(fit.beta, arrays, spec) if not diverged.any() else pd.DataFrame(columns=["chisq", "p"])
    )
    terms["ph_chisq"] = terms["term"].map(zph["chisq"])
    terms["ph_p"] = terms["term"].map(zph["p"])
    notes = [_epv_note(events, len(spec.covariates))]
    if diverged.any():
        # The likelihood keeps rising as the coefficient runs off (monotone likelihood, e.g. every positive
        # patient progressed before any negative one): no finite estimate, no Wald test; the likelihood-ratio
        # and score tests remain valid.
        terms.loc[diverged, ESTIMATE_COLUMNS] = np.nan
        notes.insert(0, monotone_likelihood_note(frame, spec, list(terms.loc[diverged, "term"])))
    c_index, c_std_err = concordance_with_std_err(arrays.x @ fit.beta, arrays)
    return CoxResult(
        terms=terms[TERM_COLUMNS],
        n=n,
        events=events,
        lr_chisq=lr,
        lr_df=len(spec.covariates),
        lr_p=float(stats.chi2.sf(lr, len(spec.covariates))),
        concordance=c_index,
        concordance_se=c_std_err,
        zph_global=zph.loc["GLOBAL"].to_dict() if "GLOBAL" in zph.index else None,
        note="; ".join(n for n in notes if n),
        loglik_null=fit.loglik_null,
        loglik=fit.loglik,
        monotone_likelihood=bool(diverged.any()),
        **_wald_and_score_tests(fit, wald=not diverged.any()),
    )


def monotone_likelihood_note(frame: pd.DataFrame, spec: CoxSpec, diverged: list[str]) -> str:
    """Why the diverging coefficients have no estimate, naming an event-free level of a binary covariate."""
    for column in diverged:
        if frame[column].nunique() == 2:
            by_level = frame.groupby(column)[spec.event].sum()
            empty = [level for level in by_level.index if by_level[level] == 0]
            if empty:
                return (
                    f"no events when {column} = {empty[0]:g}: hazard ratio not estimable (infinite; "
                    "monotone likelihood)"
                )
    return f"hazard ratio of {', '.join(diverged)} not estimable (monotone likelihood, coefficient diverges)"


def _wald_and_score_tests(fit: NewtonFit, wald: bool) -> dict:
    """R's summary(coxph) model tests: Wald (beta' V^-1 beta at the estimate; none when a coefficient
    diverged) and score (U' I^-1 U at beta = 0, the log-rank test for one binary term)."""
    df = len(fit.beta)
    result: dict = {}
    if fit.score_chisq is not None:
        result |= {"score_chisq": fit.score_chisq, "score_p": float(stats.chi2.sf(fit.score_chisq, df))}
    if wald:
        wald_chisq = float(fit.beta @ np.linalg.solve(fit.variance, fit.beta))
        result |= {"wald_chisq": wald_chisq, "wald_p": float(stats.chi2.sf(wald_chisq, df))}
    return result


def _zph_or_empty(beta: np.ndarray, arrays: CoxArrays, spec: CoxSpec) -> pd.DataFrame:
    try:
        return cox_zph(arrays.x, beta, arrays.stop, arrays.event, start=arrays.start, strata=arrays.strata,
                       transform=spec.zph_transform, names=spec.covariates)  # fmt: skip
    except np.linalg.LinAlgError:  # e.g. one event time only: g(t) is constant and the test undefined
        return pd.DataFrame(columns=["chisq", "p"])


def _term_table(fit: NewtonFit, spec: CoxSpec) -> pd.DataFrame:
    z = z_value(spec.conf_level)
    coef = fit.beta
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(fit.variance))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # diverging fits are blanked later
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


def _drop_one_lr_p(fit: NewtonFit, arrays: CoxArrays, full_lr: float) -> list[float | None]:
    """Per-term likelihood-ratio p: 2 (ll_full - ll_without_term), 1 df; the one-term model uses the null."""
    p = len(fit.beta)
    if p == 1:
        return [float(stats.chi2.sf(full_lr, 1))]
    values: list[float | None] = []
    for term in range(p):
        try:
            reduced = fit_efron(arrays.with_columns([j for j in range(p) if j != term]))
        except np.linalg.LinAlgError:
            values.append(None)
            continue
        values.append(float(stats.chi2.sf(2 * (fit.loglik - reduced.loglik), 1)))
    return values


def concordance(risk: np.ndarray, data: CoxArrays) -> float | None:
    """Harrell's C of `risk` (see concordance_with_std_err)."""
    return concordance_with_std_err(risk, data)[0]


def concordance_with_std_err(risk: np.ndarray, data: CoxArrays) -> tuple[float | None, float | None]:
    """Harrell's C and its standard error, as R's concordance(coxph fit).

    At each event time, each row ending in an event is paired with every other row at risk then (in its
    stratum): concordant when the one with the event has the higher risk score, tied (counted half) when
    equal. Rows with events at the same time are not paired (R's tied.y). The variance is R's infinitesimal
    jackknife: the sum over rows of dfbeta^2, dfbeta = ((c - d) - (c + d + t) x somers_d) / (2 pairs), with
    c, d and t the concordant, discordant and tied pairs the row takes part in."""
    per_row = np.zeros((len(risk), 3))  # concordant, discordant, tied on the score
    for alive, dead in risk_sets(data):
        dying, others = risk[dead], risk[alive]
        per_row[dead] += _pair_counts(dying, np.sort(others), dying_side=True)
        per_row[alive] += _pair_counts(others, np.sort(dying), dying_side=False)
    concordant, discordant, tied = per_row.sum(axis=0) / 2  # every pair counted once for each of its rows
    pairs = concordant + discordant + tied
    if not pairs:
        return None, None
    somers_d = (concordant - discordant) / pairs
    dfbeta = ((per_row[:, 0] - per_row[:, 1]) - per_row.sum(axis=1) * somers_d) / (2 * pairs)
    return float((concordant + tied / 2) / pairs), float(np.sqrt(np.sum(dfbeta**2)))


def _pair_counts(scores: np.ndarray, partners: np.ndarray, dying_side: bool) -> np.ndarray:
    """Per score: the partners (sorted) it is concordant, discordant and tied with. For the row with the event
    a partner with a lower score is concordant; for the row at risk, a dying partner with a higher score is."""
    below = np.searchsorted(partners, scores, side="left")
    not_above = np.searchsorted(partners, scores, side="right")
    above = len(partners) - not_above
    concordant, discordant = (below, above) if dying_side else (above, below)
    return np.column_stack([concordant, discordant, not_above - below])


def empty_terms(covariates: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"term": list(covariates)}).reindex(columns=TERM_COLUMNS)


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
        _loglik, score, info = efron_step(data.x, eta, risk, alive, dead)
        gt = g[dead][0]
        u[:p] += score
        u[p:] += gt * score
        imat[:p, :p] += info
        imat[:p, p:] += gt * info
        imat[p:, p:] += gt * gt * info
    imat[p:, :p] = imat[:p, p:].T
    return u, imat
