"""Landmark analyses: MRD status at each landmark among patients still progression-free then, with time
counted from the landmark; the status from the last sample at or before it, or from the sample closest to it
within a window."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mrdtrack.outcomes.firth import fit_cox_or_firth
from mrdtrack.outcomes.fitting import (
    CURVE_COLUMNS,
    KM_SUMMARY_COLUMNS,
    cohort_spec,
    cox_table_rows,
    km_outputs,
    note_model,
)
from mrdtrack.outcomes.km import logrank
from mrdtrack.outcomes.patients import MRD_TERM, Notes, cohort_subsets, to_floats
from mrdtrack.outcomes.survival_settings import SurvivalSettings
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import DAYS_PER_MONTH, DETERMINATE_STATUSES, NEGATIVE, POSITIVE

# The landmark status rules: the last sample at or before the landmark (no look-ahead), and the sample closest to
# it within a window on either side (as in published MRD studies; a later sample is information from the future).
LAST_AT_OR_BEFORE, CLOSEST_WITHIN_WINDOW = "last_at_or_before", "closest_within_window"
LANDMARK_DATA_COLUMNS = columns_of("landmark_data")  # mrdtrack.tables.CONTRACTS
LANDMARK_KEY = ["landmark_months", "status_rule"]
CLOSEST_CAVEAT = (
    "the closest sample may be drawn after the landmark: its status is information from the future for a patient "
    "still at risk then, which favours finding an association; the primary landmark models use the last sample "
    "at or before the landmark"
)


@dataclass
class LandmarkResults:
    cox_rows: list[dict]
    summary: dict
    data: pd.DataFrame
    km_curves: pd.DataFrame
    km_summary: pd.DataFrame


def landmark_analyses(
    pats: pd.DataFrame, counting: pd.DataFrame, settings: SurvivalSettings, notes: Notes
) -> LandmarkResults:
    """Status at each landmark among patients still progression-free then; time is counted from the landmark.

    The primary rule takes the last sample at or before the landmark (model `landmark_{L}m`); the variant takes
    the determinate sample closest to it within `landmark_closest_window_days` either side
    (`landmark_{L}m_closest`). Patients with no known status are left out of the comparisons (counted)."""
    cox_rows, summary, tables, curves, km_rows = [], {}, [], [], []
    for landmark in settings.landmarks_months:
        by_rule = landmark_status_sets(pats, counting, landmark, settings.landmark_closest_window_days)
        per_rule = {}
        for rule, data in by_rule.items():
            model = f"landmark_{landmark:g}m" + ("_closest" if rule == CLOSEST_WITHIN_WINDOW else "")
            rows, per_rule[rule] = _landmark_models(model, data, landmark, settings, notes)
            cox_rows += rows
            curve, km = km_outputs(_with_status_group(data), settings, duration="time")
            key = {"landmark_months": landmark, "status_rule": rule}
            curves.append(curve.assign(**key))
            km_rows.append(km.assign(**key))
        summary[f"{landmark:g}"] = per_rule[LAST_AT_OR_BEFORE]
        if CLOSEST_WITHIN_WINDOW in per_rule:
            summary[f"{landmark:g}"]["closest"] = per_rule[CLOSEST_WITHIN_WINDOW] | {
                "window_days": settings.landmark_closest_window_days,
                "caveat": CLOSEST_CAVEAT,
            }
        tables.append(landmark_table(landmark, by_rule))
    return LandmarkResults(
        cox_rows,
        summary,
        _concat(tables, LANDMARK_DATA_COLUMNS),
        _concat(curves, LANDMARK_KEY + CURVE_COLUMNS),
        _concat(km_rows, LANDMARK_KEY + KM_SUMMARY_COLUMNS),
    )


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).reindex(columns=columns)


def _landmark_models(
    model: str, data: pd.DataFrame, landmark: float, settings: SurvivalSettings, notes: Notes
) -> tuple[list[dict], dict]:
    """Log-rank test and Cox models (pooled and per cohort) of one landmark data set."""
    summary = {
        "landmark_months": landmark,
        "n_at_risk": len(data),
        "n_unknown_status": int(data[MRD_TERM].isna().sum()),
        "n_positive": int((data[MRD_TERM] == 1).sum()),
        "n_negative": int((data[MRD_TERM] == 0).sum()),
        "n_status_after_landmark": int((data["sample_offset_days"] > 0).sum()),
        "logrank": logrank(_with_status_label(data), "time", "pfs_event", "status", DETERMINATE_STATUSES),
        "cox": {},
    }
    rows = []
    for _analysis, cohort, subset in cohort_subsets(data):
        spec = cohort_spec([MRD_TERM], cohort, subset, settings, duration="time", event="pfs_event")
        result = fit_cox_or_firth(subset, spec)
        note_model(notes, model, cohort, result, len(subset), "no known status at the landmark")
        rows += cox_table_rows(model, cohort, result)
        summary["cox"][cohort] = result.summary()
    return rows, summary


def _with_status_label(data: pd.DataFrame) -> pd.DataFrame:
    return data.assign(status=data[MRD_TERM].map({1: POSITIVE, 0: NEGATIVE}))


def _with_status_group(data: pd.DataFrame) -> pd.DataFrame:
    """KM groups inside a landmark: positive, negative; an unknown status counts in `all` only."""
    return data.assign(group=data[MRD_TERM].map({1: POSITIVE, 0: NEGATIVE}).fillna("unknown"))


def landmark_status_sets(
    pats: pd.DataFrame, counting: pd.DataFrame, landmark: float, window_days: float | None
) -> dict[str, pd.DataFrame]:
    """The landmark data set under each status rule (the closest-sample rule only with a window)."""
    sets = {LAST_AT_OR_BEFORE: landmark_data(pats, counting, landmark)}
    if window_days is not None:
        sets[CLOSEST_WITHIN_WINDOW] = landmark_data(pats, counting, landmark, window_days)
    return sets


def landmark_data(
    pats: pd.DataFrame, counting: pd.DataFrame, landmark: float, window_days: float | None = None
) -> pd.DataFrame:
    """Patients with PFS > landmark, the time since it and their status at it: from the last sample at or
    before the landmark, or (with `window_days`) from the determinate sample closest to it within that many days
    either side (ties: the earlier). `sample_offset_days` = sample time - landmark (> 0: after the landmark)."""
    at_risk = pats[pats["pfs_months"] > landmark][["patient_id", "cohort", "pfs_months", "pfs_event"]]
    at_risk = at_risk.assign(patient_id=at_risk["patient_id"].astype(str))
    rows = counting.assign(
        patient_id=counting["patient_id"].astype(str),
        **{MRD_TERM: to_floats(counting[MRD_TERM])},
        # Rounded to a millionth of a day so that samples equally far on either side tie exactly.
        sample_offset_days=((counting["start"] - landmark) * DAYS_PER_MONTH).round(6),
    )
    if window_days is None:
        chosen = rows[(rows["start"] <= landmark) & (rows["stop"] > landmark)]
    else:
        chosen = _closest_known_sample(rows, window_days)
    chosen = chosen[["patient_id", MRD_TERM, "sample_id", "sample_offset_days"]]
    data = at_risk.merge(chosen, on="patient_id", how="left", validate="one_to_one")
    has_sample = data["sample_id"].notna() & (data["sample_id"].astype(str) != "")
    data["sample_offset_days"] = data["sample_offset_days"].where(has_sample)
    return data.assign(time=data["pfs_months"] - landmark).reset_index(drop=True)


def _closest_known_sample(rows: pd.DataFrame, window_days: float) -> pd.DataFrame:
    """Per patient, the row of the determinate sample nearest the landmark within the window (ties: earlier)."""
    known = rows[rows[MRD_TERM].notna()]
    known = known.assign(_distance=known["sample_offset_days"].abs())
    near = known[known["_distance"] <= window_days]
    near = near.sort_values(["patient_id", "_distance", "sample_offset_days"])
    return near.drop_duplicates("patient_id")


def landmark_table(landmark: float, by_rule: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per patient at risk at the landmark with the status of each rule (landmark_data.tsv)."""
    last = by_rule[LAST_AT_OR_BEFORE]
    table = pd.DataFrame(
        {
            "landmark_months": landmark,
            "patient_id": last["patient_id"],
            "cohort": last["cohort"],
            "pfs_months": last["pfs_months"],
            "pfs_event": last["pfs_event"],
            "time_from_landmark": last["time"],
            "status": _status_text(last[MRD_TERM]),
            "sample_id": last["sample_id"],
            "sample_offset_days": last["sample_offset_days"],
        }
    )
    closest = by_rule.get(CLOSEST_WITHIN_WINDOW)
    if closest is not None:
        same_order = closest.set_index("patient_id").loc[table["patient_id"]]
        table["closest_status"] = _status_text(same_order[MRD_TERM]).to_numpy()
        table["closest_sample_id"] = same_order["sample_id"].to_numpy()
        table["closest_offset_days"] = same_order["sample_offset_days"].to_numpy()
    return table.reindex(columns=LANDMARK_DATA_COLUMNS)


def _status_text(values: pd.Series) -> pd.Series:
    """1 / 0 / unknown as positive / negative / '' (an empty field: no known status)."""
    return values.map({1: POSITIVE, 0: NEGATIVE}).fillna("")
