"""The stratified log-rank test, as R's survdiff(Surv(time, event) ~ group + strata(stratum)).

Within each stratum, at each event time, every group's expected events are the deaths times its share of the
risk set, with the hypergeometric covariance; observed minus expected and the covariance are summed over the
strata, and chisq = (O - E)' V^-1 (O - E) over all groups but the first (groups expected to have no events
left out, as survdiff does), on (groups - 1) degrees of freedom. Without strata it is the ordinary log-rank
test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def stratified_logrank(
    frame: pd.DataFrame,
    duration: str,
    event: str,
    group: str,
    groups: Sequence,
    strata: Sequence[str] = (),
) -> dict:
    """Log-rank test of `groups` (values of column `group`) stratified by the `strata` columns.

    Parameters
    ----------
    frame
        One row per patient; rows whose group is not in `groups` or with a missing value are left out.
    duration, event
        Follow-up time and event flag (1 = event) columns.
    group, groups
        The grouping column and the groups compared, in the order reported.
    strata
        Stratifying columns (e.g. ["cohort"]); none gives the ordinary log-rank test.

    Returns
    -------
    dict
        groups, n, events (observed) and expected per group (summed over strata), chisq, df, p, the
        strata names and a note ('' or why there is no test: an empty group, no events).
    """
    columns = [duration, event, group, *strata]
    rows = frame.loc[frame[group].isin(list(groups)), columns].dropna()
    codes = np.array([list(groups).index(value) for value in rows[group]], dtype=int)
    k = len(groups)
    result: dict = {
        "groups": list(groups),
        "n": np.bincount(codes, minlength=k).tolist(),
        "events": np.bincount(codes, weights=rows[event].to_numpy(float), minlength=k).astype(int).tolist(),
        "expected": [None] * k,
        "chisq": None,
        "df": k - 1,
        "p": None,
        "strata": list(strata),
        "note": "",
    }
    if min(result["n"]) == 0:
        return result | {"note": "a group is empty: no comparison"}
    if sum(result["events"]) == 0:
        return result | {"note": "no events: no comparison"}
    stratum_ids = rows.groupby(list(strata)).ngroup().to_numpy() if strata else np.zeros(len(rows), int)
    times, events = rows[duration].to_numpy(float), rows[event].to_numpy(float)
    observed, expected, covariance = np.zeros(k), np.zeros(k), np.zeros((k, k))
    for stratum in np.unique(stratum_ids):
        inside = stratum_ids == stratum
        o, e, v = _one_stratum(times[inside], events[inside], codes[inside], k)
        observed, expected, covariance = observed + o, expected + e, covariance + v
    chisq, df = _chisq(observed, expected, covariance)
    return result | {
        "expected": expected.tolist(),
        "chisq": chisq,
        "df": df,
        "p": float(stats.chi2.sf(chisq, df)) if df > 0 else None,
    }


def _one_stratum(
    times: np.ndarray, events: np.ndarray, codes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed and expected events per group and their covariance in one stratum (R's survdiff2.c)."""
    observed = np.bincount(codes, weights=events, minlength=k)
    expected, covariance = np.zeros(k), np.zeros((k, k))
    for t in np.unique(times[events > 0]):
        at_risk = times >= t
        share = np.bincount(codes[at_risk], minlength=k) / at_risk.sum()
        deaths = events[times == t].sum()
        n = at_risk.sum()
        expected += deaths * share
        if n > 1:  # one patient at risk: no variance
            covariance += deaths * (n - deaths) / (n - 1) * (np.diag(share) - np.outer(share, share))
    return observed, expected, covariance


def _chisq(observed: np.ndarray, expected: np.ndarray, covariance: np.ndarray) -> tuple[float, int]:
    """(O - E)' V^-1 (O - E) over the groups with expected events, the first of them left out."""
    kept = np.flatnonzero(expected > 0)
    if len(kept) < 2:
        return 0.0, 0
    rest = kept[1:]
    difference = (observed - expected)[rest]
    return float(difference @ np.linalg.solve(covariance[np.ix_(rest, rest)], difference)), len(kept) - 1
