"""Kaplan-Meier curves with R's confidence intervals and medians, and the log-rank test.

The risk table and the product-limit estimate are counted here directly (lifelines' KaplanMeierFitter gives
the same table, at ~20 ms a curve, and the landmark analyses draw dozens of curves); everything matches R's
`survival` package exactly (checked in tests/test_survival.py against Rscript):
- Greenwood standard error of the cumulative hazard (and of S(t), as R's summary.survfit reports it), and the
  "log" (R's default) and "log-log" CI transforms (survival:::survfit_confint, with the rule of survival >= 3.8-4
  that a zero standard error gives the interval S to S: 1 to 1 before the first event);
- medians and their CIs as R's quantile.survfit (survival:::findq): where the curve sits exactly on 0.5 the
  median is the midpoint of that flat stretch, and the CI limits are the times the CI curves cross 0.5;
- the log-rank test's observed and expected events per group (R's survdiff `obs` and `exp`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines.statistics import logrank_test
from scipy import stats

# R's findq tolerance: sqrt(.Machine$double.eps)
QUANTILE_TOLERANCE = float(np.sqrt(np.finfo(float).eps))
TRANSFORMS = ("log", "log-log")


def z_value(conf_level: float) -> float:
    return float(stats.norm.ppf(1 - (1 - conf_level) / 2))


def km_table(durations: pd.Series, events: pd.Series, conf_level: float = 0.95) -> pd.DataFrame:
    """One row per distinct observed time (R's survfit `time`), plus time 0.

    Columns: time, at_risk, events, censored, survival, std_err (of -log S, Greenwood), and
    ci_low/ci_high for each transform (`_log`, `_loglog`). Empty input gives an empty table.
    """
    columns = ["time", "at_risk", "events", "censored", "survival", "std_err"]
    columns += [f"ci_{side}_{name}" for name in ("log", "loglog") for side in ("low", "high")]
    if len(durations) == 0:
        return pd.DataFrame(columns=columns)
    frame = risk_table(durations, events)
    # A running product, as R's survfit computes it: exp(cumsum(log)) in lifelines misses exact 0.5 plateaus.
    frame["survival"] = np.cumprod(1 - frame["events"] / frame["at_risk"])
    frame["std_err"] = greenwood_std_err(frame["at_risk"], frame["events"])
    z = z_value(conf_level)
    for name, transform in (("log", "log"), ("loglog", "log-log")):
        low, high = confidence_interval(
            frame["survival"].to_numpy(), frame["std_err"].to_numpy(), z, transform
        )
        frame[f"ci_low_{name}"], frame[f"ci_high_{name}"] = low, high
    return _with_time_zero(frame)[columns]


def risk_table(durations: pd.Series, events: pd.Series) -> pd.DataFrame:
    """Per distinct observed time: the number at risk just before it, events and censorings at it."""
    times, index = np.unique(np.asarray(durations, float), return_inverse=True)
    observed = np.bincount(index, minlength=len(times))
    events_at = np.bincount(index, weights=np.asarray(events, float), minlength=len(times)).astype(int)
    at_risk = len(index) - np.concatenate([[0], np.cumsum(observed)[:-1]])
    return pd.DataFrame(
        {"time": times, "at_risk": at_risk, "events": events_at, "censored": observed - events_at}
    )


def greenwood_std_err(at_risk: pd.Series, events: pd.Series) -> np.ndarray:
    """sqrt(cumsum d / (n (n - d))): R's survfit std.err (of the cumulative hazard); inf once S reaches 0."""
    n, d = at_risk.to_numpy(float), events.to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d > 0, d / (n * (n - d)), 0.0)
    return np.sqrt(np.cumsum(terms))


def confidence_interval(
    survival: np.ndarray, std_err: np.ndarray, z: float, transform: str
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise CI as survival:::survfit_confint: S to S where the standard error is 0 (no event yet), NaN
    where R gives NA (S = 0)."""
    low, high = _transformed_interval(survival, std_err, z, transform)
    no_spread = std_err == 0
    return np.where(no_spread, survival, low), np.where(no_spread, survival, high)


def _transformed_interval(
    survival: np.ndarray, std_err: np.ndarray, z: float, transform: str
) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if transform == "log":
            s = np.where(survival == 0, np.nan, survival)
            return np.exp(np.log(s) - z * std_err), np.minimum(np.exp(np.log(s) + z * std_err), 1.0)
        if transform == "log-log":
            s = np.where((survival == 0) | (survival == 1), np.nan, survival)
            shift = z * std_err / np.log(s)
            return np.exp(-np.exp(np.log(-np.log(s)) - shift)), np.exp(-np.exp(np.log(-np.log(s)) + shift))
    raise ValueError(f"unknown CI transform {transform!r}; use one of {TRANSFORMS}")


def _with_time_zero(frame: pd.DataFrame) -> pd.DataFrame:
    """A start row (time 0, S = 1) in front of the observed times."""
    # S = 1 with a zero standard error: both CIs are 1 to 1, as R's survfit0 start row.
    start = frame.iloc[:1].assign(time=0.0, events=0, censored=0, survival=1.0, std_err=0.0)
    start = start.assign(ci_low_log=1.0, ci_high_log=1.0, ci_low_loglog=1.0, ci_high_loglog=1.0)
    return pd.concat([start, frame], ignore_index=True)


@dataclass(frozen=True)
class Median:
    """Median survival and its CI limits (NaN = not reached)."""

    median: float
    low: float
    high: float


def km_median(table: pd.DataFrame, transform: str, prob: float = 0.5) -> Median:
    """Median (or another quantile) with CI as R's quantile.survfit on the same curve and transform."""
    suffix = "log" if transform == "log" else "loglog"
    observed = table.iloc[1:]  # R's survfit times: the observed ones, without the start row
    times = np.concatenate([[0.0], observed["time"].to_numpy(float)])

    def find(curve: pd.Series) -> float:
        return _findq(times, np.concatenate([[0.0], 1 - curve.to_numpy(float)]), 1 - prob)

    # The upper survival curve crosses later: it gives the upper limit of the median.
    return Median(
        find(observed["survival"]), find(observed[f"ci_low_{suffix}"]), find(observed[f"ci_high_{suffix}"])
    )


def _findq(x: np.ndarray, y: np.ndarray, p: float, tol: float = QUANTILE_TOLERANCE) -> float:
    """survival:::findq for one probability: the time 1 - S first reaches p (midpoint of an exact flat hit)."""
    if np.all(np.isnan(y)) or np.nanmax(y) < p:
        return np.nan
    xmax = x[-1]
    keep = ~pd.Series(y).duplicated().to_numpy()  # NaN duplicates collapse too, as in R
    x, y = x[keep], y[keep]
    valid = ~np.isnan(y)
    index = np.arange(len(y))
    first = _approx_constant_right(y[valid] + tol, index[valid], p)
    second = _approx_constant_right(y[valid] - tol, index[valid], p)
    if p == 0:
        return float(x[0])
    if not np.isnan(y[-1]) and abs(p - y[-1]) < tol and first is not None:
        return float((x[first] + xmax) / 2)
    if first is None or second is None:
        return np.nan
    return float((x[first] + x[second]) / 2)


def _approx_constant_right(knots: np.ndarray, values: np.ndarray, at: float) -> int | None:
    """R's approx(knots, values, at, method="constant", f=1, rule=1): the value at the smallest knot >= at.

    approx sorts the knots first. A confidence curve need not be monotone (its standard error grows as S
    falls), so 1 - upper can rise and fall again; R then takes the first crossing in sorted order, which is
    the answer quantile.survfit prints.
    """
    order = np.argsort(knots, kind="stable")
    knots, values = knots[order], values[order]
    if len(knots) == 0 or at < knots[0] or at > knots[-1]:
        return None
    return int(values[np.searchsorted(knots, at, side="left")])


def value_at(table: pd.DataFrame, durations: pd.Series, timepoint: float) -> dict[str, float]:
    """Survival, its standard error and CIs at `timepoint` (the last step at or before it) and the number at
    risk at it. `survival_std_err` is on the survival scale, S x Greenwood, as R's summary.survfit `std.err`.

    Beyond the last observed time the estimate is not defined (R's summary drops it): NaN with a note.
    """
    at_risk = int((np.asarray(durations, float) >= timepoint).sum())
    if table.empty or timepoint > table["time"].max():
        return {"at_risk": at_risk, "note": "timepoint beyond the last follow-up"}
    row = table[table["time"] <= timepoint].iloc[-1]
    keys = ["survival", "ci_low_log", "ci_high_log", "ci_low_loglog", "ci_high_loglog"]
    note = "no event yet (S = 1): the CIs are 1 to 1" if row["survival"] == 1 else ""
    if row["survival"] == 0:
        note = "S = 0: CIs are undefined"
    with np.errstate(invalid="ignore"):  # S = 0 with an infinite Greenwood term: NaN, as R
        std_err = float(row["survival"] * row["std_err"])
    return {key: float(row[key]) for key in keys} | {
        "at_risk": at_risk,
        "note": note,
        "survival_std_err": std_err,
    }


def logrank(frame: pd.DataFrame, duration: str, event: str, group: str, groups: tuple[str, str]) -> dict:
    """Two-group log-rank test (lifelines; equals R's survdiff chi-square) with the observed and expected
    events per group (`events` = observed). A note instead of a number when a group is empty or there is no
    event at all."""
    first, second = (frame[frame[group] == g] for g in groups)
    result: dict = {
        "groups": list(groups),
        "n": [len(first), len(second)],
        "events": [int(first[event].sum()), int(second[event].sum())],
        "expected": [None, None],
        "chisq": None,
        "df": 1,
        "p": None,
        "note": "",
    }
    if len(first) == 0 or len(second) == 0:
        return result | {"note": "one group is empty: no comparison"}
    if sum(result["events"]) == 0:
        return result | {"note": "no events: no comparison"}
    test = logrank_test(first[duration], second[duration], first[event], second[event])
    both = pd.concat([first, second])
    expected = expected_events(both[duration], both[event], np.arange(len(both)) < len(first))
    return result | {
        "expected": [expected, sum(result["events"]) - expected],
        "chisq": float(test.test_statistic),
        "p": float(test.p_value),
    }


def expected_events(durations: pd.Series, events: pd.Series, in_group: np.ndarray) -> float:
    """Events expected in a group if it shared the pooled hazard: the sum over event times of
    deaths x (group's share of the risk set), as R's survdiff `exp`."""
    times, deaths = np.unique(np.asarray(durations, float)[np.asarray(events) == 1], return_counts=True)
    at_risk = _at_risk(np.asarray(durations, float), times)
    group_at_risk = _at_risk(np.asarray(durations, float)[in_group], times)
    return float(np.sum(deaths * group_at_risk / at_risk))


def _at_risk(durations: np.ndarray, times: np.ndarray) -> np.ndarray:
    """How many durations are >= each time."""
    return len(durations) - np.searchsorted(np.sort(durations), times, side="left")
