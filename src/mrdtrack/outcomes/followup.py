"""Median follow-up by the reverse Kaplan-Meier method (Schemper & Smith 1996).

The censoring indicator is reversed (a patient still progression-free at the data cutoff "fails" at their
last follow-up, a progression censors the follow-up), and the median of that Kaplan-Meier curve is the median
potential follow-up: how long patients would have been followed had none progressed. It equals R's
quantile(survfit(Surv(time, 1 - event) ~ 1), 0.5) with its confidence interval (log transform, R's
default; log-log on request).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrdtrack.outcomes.km import km_median, km_table
from mrdtrack.outcomes.patients import cohort_subsets, usable_os


def median_follow_up(
    durations: pd.Series, events: pd.Series, conf_level: float = 0.95, transform: str = "log"
) -> dict:
    """Median follow-up (reverse Kaplan-Meier) with its CI.

    Parameters
    ----------
    durations, events
        Time to progression or censoring, and the event flag (1 = progressed), one per patient.
    conf_level, transform
        Confidence level and CI transform ("log", R's default, or "log-log").

    Returns
    -------
    dict
        n, n_censored (patients whose follow-up ended without an event), median, ci_low, ci_high (None where
        the reverse curve does not reach 0.5: a limit not reached), and the simple median of the observed
        times for comparison.
    """
    durations = pd.Series(durations, dtype=float).reset_index(drop=True)
    reversed_events = 1 - pd.Series(events, dtype=float).reset_index(drop=True)
    if durations.empty:
        return {"n": 0, "n_censored": 0, "median": None, "ci_low": None, "ci_high": None,
                "median_observed": None}  # fmt: skip
    median = km_median(km_table(durations, reversed_events, conf_level), transform)
    return {
        "n": len(durations),
        "n_censored": int(reversed_events.sum()),
        "median": _reached(median.median),
        "ci_low": _reached(median.low),
        "ci_high": _reached(median.high),
        "median_observed": float(durations.median()),
    }


def _reached(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def follow_up_summary(pats: pd.DataFrame, conf_level: float = 0.95) -> dict:
    """Median follow-up per cohort and pooled (`all`), for PFS (progression reverses into censoring) and OS
    (death does): summary.json `follow_up {cohort {pfs, os}}`. Patients without a usable OS are left out of
    the OS figure."""
    result = {}
    for _analysis, cohort, subset in cohort_subsets(pats):
        os_known = usable_os(subset)
        result[cohort] = {
            "pfs": median_follow_up(subset["pfs_months"], subset["pfs_event"], conf_level),
            "os": median_follow_up(os_known["os_months"], os_known["os_event"], conf_level),
        }
    return result
