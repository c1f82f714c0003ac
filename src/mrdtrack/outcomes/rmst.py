"""Restricted mean survival time (RMST): the area under the Kaplan-Meier curve up to a horizon tau.

Per group, as R's print(survfit(...), rmean = tau) (survival:::survmean): rectangles under the step curve from
0 to tau (the last value carried to tau), and the variance sum over event times t_i <= tau of
A_i^2 d_i / (n_i (n_i - d_i)), A_i the area from t_i to tau (0 when n_i = d_i). Between two groups, as
survRM2::rmst2: the difference with se = sqrt(var_1 + var_2) and a normal CI and p-value, and the ratio on the
log scale (se^2 = var_1 / rmst_1^2 + var_2 / rmst_2^2). Like rmst2, the comparison needs tau within the
follow-up: at most the largest time observed, and at most the last time of each group whose last patient was
censored (a group whose curve ended in an event has reached 0). Beyond that the per-group figures are R's
survfit figures (the curve carried flat), with a note and no comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mrdtrack.outcomes.km import risk_table, z_value

HORIZONS_MONTHS = (12.0, 24.0, 36.0)


def rmst(durations: pd.Series, events: pd.Series, tau: float) -> tuple[float, float]:
    """RMST up to `tau` and its standard error, as R's survfit print with rmean = tau."""
    table = risk_table(durations, events)
    at_risk, deaths = table["at_risk"].to_numpy(float), table["events"].to_numpy(float)
    survival = np.cumprod(1 - deaths / at_risk)
    keep = table["time"].to_numpy(float) <= tau
    ends = np.concatenate([table["time"].to_numpy(float)[keep], [tau]])
    heights = np.concatenate([[1.0], survival[keep]])
    areas = np.diff(np.concatenate([[0.0], ends])) * heights
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard_terms = np.where(at_risk == deaths, 0.0, deaths / (at_risk * (at_risk - deaths)))[keep]
    area_after = np.cumsum(areas[::-1])[::-1][1:]  # from each kept time to tau
    return float(areas.sum()), float(np.sqrt(np.sum(area_after**2 * hazard_terms)))


def rmst_comparison(
    frame: pd.DataFrame,
    duration: str,
    event: str,
    group: str,
    groups: tuple,
    horizons: Sequence[float] = HORIZONS_MONTHS,
    conf_level: float = 0.95,
) -> list[dict]:
    """RMST per group and the first group against the second (difference and ratio) at each horizon.

    Parameters
    ----------
    frame
        One row per patient with the duration, event and group columns.
    duration, event, group
        Column names (time in the unit of `horizons`, event 1/0, group labels).
    groups
        (first, second): the comparison is first - second and first / second (e.g. positive vs negative).
    horizons
        The restriction times tau.
    conf_level
        Confidence level of the per-group and comparison intervals.

    Returns
    -------
    list of dict
        One per horizon: tau, groups, n, events (by tau), rmst, rmst_se, rmst_ci_low, rmst_ci_high (lists in
        the order of `groups`), last_time per group; difference, difference_se, difference_ci_low,
        difference_ci_high, difference_p; ratio, ratio_ci_low, ratio_ci_high, ratio_p; and a note.
    """
    z = z_value(conf_level)
    subsets = [frame.loc[frame[group] == g, [duration, event]].dropna() for g in groups]
    return [_at_horizon(subsets, duration, event, tuple(groups), float(tau), z) for tau in horizons]


def _at_horizon(subsets: list[pd.DataFrame], duration: str, event: str, groups: tuple, tau: float, z: float):
    row: dict = {
        "tau": tau,
        "groups": list(groups),
        "n": [len(s) for s in subsets],
        "events": [int(s.loc[s[duration] <= tau, event].sum()) for s in subsets],
        "last_time": [float(s[duration].max()) if len(s) else None for s in subsets],
        "note": "",
    }
    values = [rmst(s[duration], s[event], tau) if len(s) else (np.nan, np.nan) for s in subsets]
    means, errors = np.array([v[0] for v in values]), np.array([v[1] for v in values])
    row |= {
        "rmst": _listed(means),
        "rmst_se": _listed(errors),
        "rmst_ci_low": _listed(means - z * errors),
        "rmst_ci_high": _listed(means + z * errors),
    }
    empty = [str(g) for g, s in zip(groups, subsets, strict=True) if s.empty]
    if empty:
        return row | _no_comparison() | {"note": f"no patients in {', '.join(empty)}: no comparison"}
    limit = comparable_horizon(subsets, duration, event)
    if tau > limit:
        note = f"tau = {tau:g} is beyond the follow-up ({limit:g}): no comparison (the curve is carried flat)"
        return row | _no_comparison() | {"note": note}
    return row | _difference(means, errors, z) | _ratio(means, errors, z)


def _listed(values: np.ndarray) -> list[float | None]:
    """JSON-ready: None where a group has no figure."""
    return [None if np.isnan(v) else float(v) for v in values]


def comparable_horizon(subsets: list[pd.DataFrame], duration: str, event: str) -> float:
    """The largest tau survRM2::rmst2 accepts: the largest observed time, and no later than the last time of
    a group whose last observation is censored (its curve is unknown beyond)."""
    limits = [max(float(s[duration].max()) for s in subsets)]
    for subset in subsets:
        last = subset[duration].max()
        if subset.loc[subset[duration] == last, event].min() == 0:
            limits.append(float(last))
    return min(limits)


def _no_comparison() -> dict:
    keys = ["difference", "difference_se", "difference_ci_low", "difference_ci_high", "difference_p"]
    return dict.fromkeys(keys + ["ratio", "ratio_ci_low", "ratio_ci_high", "ratio_p"])


def _difference(means: np.ndarray, errors: np.ndarray, z: float) -> dict:
    difference, se = float(means[0] - means[1]), float(np.sqrt(np.sum(errors**2)))
    p = float(2 * stats.norm.sf(abs(difference) / se)) if se > 0 else None
    return {
        "difference": difference,
        "difference_se": se,
        "difference_ci_low": difference - z * se,
        "difference_ci_high": difference + z * se,
        "difference_p": p,
    }


def _ratio(means: np.ndarray, errors: np.ndarray, z: float) -> dict:
    log_ratio = float(np.log(means[0] / means[1]))
    se = float(np.sqrt(np.sum((errors / means) ** 2)))
    p = float(2 * stats.norm.sf(abs(log_ratio) / se)) if se > 0 else None
    return {
        "ratio": float(np.exp(log_ratio)),
        "ratio_ci_low": float(np.exp(log_ratio - z * se)),
        "ratio_ci_high": float(np.exp(log_ratio + z * se)),
        "ratio_p": p,
    }
