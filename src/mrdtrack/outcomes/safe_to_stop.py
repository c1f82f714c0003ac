"""Who may safely stop: progression-free survival one year on by MRD status, and how well MRD-positivity
predicts progression within that year, at baseline and at each landmark, per cohort and pooled.

For each timepoint the patients are those with a known status then: the baseline status (positive or negative;
indeterminate and missing baselines are left out), or the status at a landmark from the last sample at or before
it among patients still progression-free then (time counted from the landmark, as in the landmark models). The
horizon is `pfs_endpoint_months` (12: one year) from the timepoint. Per status:
- the Kaplan-Meier estimate at the horizon with its CI (`endpoint_ci` transform, as the trial endpoint);
- the binomial rate: progression-free at the horizon among the evaluable patients, with an exact
  (Clopper-Pearson) CI, as R's binom.test. A patient is evaluable when they progressed by the horizon or were
  followed to it; one censored before it without progression is not (counted as `not_evaluable`).
MRD-positivity as a test for progression by the horizon, among evaluable patients: true positive = positive and
progressed, false positive = positive and progression-free, true negative = negative and progression-free,
false negative = negative and progressed; sensitivity, specificity, PPV and NPV with Clopper-Pearson intervals.
The NPV is the figure a clinician asks for: how often a negative test is followed by a progression-free year.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mrdtrack.outcomes.km import km_table, value_at
from mrdtrack.outcomes.prediction import horizon_outcome
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import DETERMINATE_STATUSES, NEGATIVE, POSITIVE

FIGURE_COLUMNS = columns_of("safe_to_stop")  # mrdtrack.tables.CONTRACTS
ACCURACY_COLUMNS = columns_of("safe_to_stop_accuracy")  # mrdtrack.tables.CONTRACTS
BASELINE = "baseline"
# (name, numerator, denominator) of each accuracy figure, in terms of the 2x2 table's cells
ACCURACY_FIGURES = (
    ("sensitivity", "true_positive", ("true_positive", "false_negative")),
    ("specificity", "true_negative", ("true_negative", "false_positive")),
    ("ppv", "true_positive", ("true_positive", "false_positive")),
    ("npv", "true_negative", ("true_negative", "false_negative")),
)


@dataclass
class SafeToStop:
    """safe_to_stop.tsv (`figures`), safe_to_stop_accuracy.tsv (`accuracy`) and summary.json's `safe_to_stop`."""

    figures: pd.DataFrame
    accuracy: pd.DataFrame
    summary: dict


def landmark_timepoint(landmark: float) -> str:
    """The timepoint name of a landmark: `landmark_3m`, as its Cox model."""
    return f"landmark_{landmark:g}m"


def status_sets(pats: pd.DataFrame, landmark_rows: pd.DataFrame, landmarks: Sequence[float]) -> dict:
    """Timepoint -> one row per patient with `cohort, time, event, status`: the baseline group of every
    patient (times from enrollment), then per landmark the patients of landmark_data.tsv (times from the
    landmark, status from the last sample at or before it; '' = unknown)."""
    sets = {BASELINE: _status_frame(pats["cohort"], pats["pfs_months"], pats["pfs_event"], pats["group"])}
    for landmark in landmarks:
        rows = landmark_rows[landmark_rows["landmark_months"] == landmark]
        sets[landmark_timepoint(landmark)] = _status_frame(
            rows["cohort"], rows["time_from_landmark"], rows["pfs_event"], rows["status"]
        )
    return sets


def _status_frame(cohort: pd.Series, time: pd.Series, event: pd.Series, status: pd.Series) -> pd.DataFrame:
    frame = pd.DataFrame({"cohort": cohort, "time": time, "event": event, "status": status})
    return frame.astype({"cohort": str, "time": float, "event": int, "status": str}).reset_index(drop=True)


def safe_to_stop(
    sets: dict[str, pd.DataFrame],
    cohorts: Sequence[str],
    horizon_months: float,
    conf_level: float = 0.95,
    km_ci: str = "log-log",
) -> SafeToStop:
    """The safe-to-stop figures of every timepoint set, pooled (`all`) and per cohort.

    Parameters
    ----------
    sets
        Timepoint name -> one row per patient: `cohort, time, event, status` (see `status_sets`); rows whose
        status is neither positive nor negative are counted as `n_without_status` only.
    cohorts
        The cohorts to report, besides `all` (a cohort with no patient at a timepoint gets rows with n = 0).
    horizon_months
        The horizon, counted from the timepoint (12: one year).
    conf_level, km_ci
        Confidence level of every interval; CI transform of the Kaplan-Meier estimate (`log` or `log-log`).

    Returns
    -------
    SafeToStop
        The two tables (one row per cohort, timepoint and status; one per cohort and timepoint) and
        summary.json's `safe_to_stop {cohort {timepoint {horizon_months, n_without_status, positive, negative,
        accuracy}}}` holding the same figures.
    """
    figures, accuracy, summary = [], [], {}
    for cohort in ("all", *cohorts):
        summary[cohort] = {}
        for timepoint, frame in sets.items():
            subset = frame if cohort == "all" else frame[frame["cohort"] == cohort]
            key = {"cohort": cohort, "timepoint": timepoint}
            by_status = {s: subset[subset["status"] == s] for s in DETERMINATE_STATUSES}
            rows = {
                s: status_figures(group["time"], group["event"], horizon_months, conf_level, km_ci)
                for s, group in by_status.items()
            }
            outcomes = {
                s: horizon_outcome(group["time"], group["event"], horizon_months)
                for s, group in by_status.items()
            }
            table = accuracy_figures(outcomes[POSITIVE], outcomes[NEGATIVE], conf_level)
            figures += [key | {"mrd_status": s} | row for s, row in rows.items()]
            accuracy.append(key | table)
            summary[cohort][timepoint] = {
                "horizon_months": horizon_months,
                "n_without_status": int((~subset["status"].isin(DETERMINATE_STATUSES)).sum()),
                **rows,
                "accuracy": table,
            }
    return SafeToStop(
        pd.DataFrame(figures).reindex(columns=FIGURE_COLUMNS),
        pd.DataFrame(accuracy).reindex(columns=ACCURACY_COLUMNS),
        summary,
    )


def status_figures(
    time: pd.Series, event: pd.Series, horizon: float, conf_level: float = 0.95, km_ci: str = "log-log"
) -> dict:
    """One status group: n, evaluable, progressed_1y, not_evaluable, the Kaplan-Meier PFS at the horizon with
    its CI and the binomial rate among evaluable patients with its exact CI (NaN where there is none)."""
    outcome = horizon_outcome(time, event, horizon)
    evaluable, progressed = int(outcome.notna().sum()), int((outcome == 1).sum())
    km_pfs, km_low, km_high = km_at_horizon(time, event, horizon, conf_level, km_ci)
    rate_low, rate_high = clopper_pearson(evaluable - progressed, evaluable, conf_level)
    return {
        "n": len(time),
        "evaluable": evaluable,
        "progressed_1y": progressed,
        "not_evaluable": len(time) - evaluable,
        "km_pfs_1y": km_pfs,
        "km_ci_low": km_low,
        "km_ci_high": km_high,
        "rate_pfs_1y": (evaluable - progressed) / evaluable if evaluable else np.nan,
        "rate_ci_low": rate_low,
        "rate_ci_high": rate_high,
    }


def km_at_horizon(
    time: pd.Series, event: pd.Series, horizon: float, conf_level: float = 0.95, transform: str = "log-log"
) -> tuple[float, float, float]:
    """Kaplan-Meier survival at the horizon and its CI, as R's summary(survfit, times = horizon). Beyond the
    last follow-up the curve is unknown (NaN), unless it has reached 0: then S = 0 (no CI, as R's NA)."""
    if len(time) == 0:
        return np.nan, np.nan, np.nan
    table = km_table(time, event, conf_level)
    suffix = "log" if transform == "log" else "loglog"
    if horizon > table["time"].max():
        reached_zero = table["survival"].iloc[-1] == 0
        return (0.0, np.nan, np.nan) if reached_zero else (np.nan, np.nan, np.nan)
    value = value_at(table, time, horizon)
    return value["survival"], value[f"ci_low_{suffix}"], value[f"ci_high_{suffix}"]


def accuracy_figures(positive: pd.Series, negative: pd.Series, conf_level: float = 0.95) -> dict:
    """The 2x2 table of MRD status against progression by the horizon and the four accuracy figures with
    Clopper-Pearson CIs. `positive`, `negative`: the horizon outcome (1 progressed, 0 free, NA not evaluable)
    of the patients of each status."""
    cells = {
        "true_positive": int((positive == 1).sum()),
        "false_positive": int((positive == 0).sum()),
        "true_negative": int((negative == 0).sum()),
        "false_negative": int((negative == 1).sum()),
        "not_evaluable": int(positive.isna().sum() + negative.isna().sum()),
    }
    result = dict(cells)
    for name, numerator, denominator in ACCURACY_FIGURES:
        k, n = cells[numerator], sum(cells[cell] for cell in denominator)
        low, high = clopper_pearson(k, n, conf_level)
        result |= {name: k / n if n else np.nan, f"{name}_ci_low": low, f"{name}_ci_high": high}
    return result


def clopper_pearson(successes: int, trials: int, conf_level: float = 0.95) -> tuple[float, float]:
    """The exact binomial CI of successes / trials, as R's binom.test: beta quantiles, 0 and 1 at the ends;
    NaN without trials."""
    if trials == 0:
        return np.nan, np.nan
    tail = (1 - conf_level) / 2
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(stats.beta.ppf(1 - tail, successes + 1, trials - successes))
    return low, high
