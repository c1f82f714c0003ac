"""Progression-free survival by MRD: KM, log-rank, Cox (baseline, landmark, time-varying), trial endpoints.

Inputs are results/clinical/patients.tsv and counting_process.tsv. Conventions (also in docs/tables.md):
- groups are the baseline MRD status; positive-vs-negative tests and models use only patients with a
  determinate baseline: indeterminate baselines get their own descriptive KM curve, patients without a
  baseline sample appear only in the `all` curves; both are counted in summary.json;
- pooled (all-cohort) Cox models are stratified by cohort (the cohorts differ in baseline hazard by design:
  one stops anti-HER2 therapy); the pooled log-rank test is the plain one, per-cohort tests are also given;
- thin data never crash and never produce a number that is not one: a note says what was not estimable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from mrdtrack.outcomes.cox import CoxResult, CoxSpec, fit_cox
from mrdtrack.outcomes.design import DESIGNS, simon_decision, simon_designs
from mrdtrack.outcomes.km import km_median, km_table, logrank, value_at
from mrdtrack.outcomes.prediction import PredictionSettings, horizon_outcome, predict_progression
from mrdtrack.settings import StepSettings
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import (
    DAYS_PER_MONTH,
    DETERMINATE_STATUSES,
    INDETERMINATE,
    MRD_STATUSES,
    NEGATIVE,
    POSITIVE,
)

log = logging.getLogger(__name__)

MRD_TERM = "mrd_positive"
EVER_POSITIVE_TERM = "ever_positive"
CENSORED_HANDLING = ("exclude", "failure")
# The landmark status rules: the last sample at or before the landmark (no look-ahead), and the sample closest to
# it within a window on either side (as in published MRD studies; a later sample is information from the future).
LAST_AT_OR_BEFORE, CLOSEST_WITHIN_WINDOW = "last_at_or_before", "closest_within_window"
OUTPUT_TABLES = (
    "km_curves", "km_summary", "cox", "endpoints", "design", "prediction", "landmark_data", "landmark_km_curves",
    "landmark_km_summary",
)  # fmt: skip


@dataclass(frozen=True)
class SurvivalSettings(StepSettings):
    """Config section `survival`; every key is documented in config/README.md."""

    SECTION: ClassVar[str] = "survival"

    covariates: tuple[str, ...] = ()
    landmarks_months: tuple[float, ...] = (3.0, 6.0, 12.0)
    landmark_closest_window_days: float | None = 45.0
    timepoints_months: tuple[float, ...] = (6.0, 12.0, 24.0)
    conf_level: float = 0.95
    stratify_by_cohort: bool = True
    ph_transform: str = "km"
    curve_ci: str = "log-log"
    endpoint_ci: str = "log-log"
    pfs_endpoint_months: float = 12.0
    os_endpoint_months: float = 36.0
    design: str = "optimal"
    design_cohort: str = "stop"
    p0: float = 0.50
    p1: float = 0.68
    alpha: float = 0.10
    power: float = 0.80
    design_nmax: int = 100
    design_censored: str = "exclude"
    prediction: PredictionSettings = field(default_factory=PredictionSettings)

    def check_combination(self) -> list[str]:
        return [] if self.p0 < self.p1 else [f"p0 ({self.p0}) must be below p1 ({self.p1})"]


@dataclass
class SurvivalResults:
    km_curves: pd.DataFrame
    km_summary: pd.DataFrame
    cox: pd.DataFrame
    endpoints: pd.DataFrame
    design: pd.DataFrame
    prediction: pd.DataFrame
    summary: dict
    landmark_data: pd.DataFrame
    landmark_km_curves: pd.DataFrame
    landmark_km_summary: pd.DataFrame


class Notes(list):
    """Plain-language notes collected for summary.json (each also logged)."""

    def add(self, text: str) -> None:
        if text and text not in self:
            log.info("note: %s", text)
            self.append(text)


def run_survival(
    patients: pd.DataFrame, counting: pd.DataFrame, settings: SurvivalSettings
) -> SurvivalResults:
    """Every analysis of results/survival/ from the clinical step's patients and counting-process tables."""
    notes = Notes()
    pats = prepare_patients(patients, notes)
    covariates = encode_covariates(pats, settings.covariates, notes)
    curves, km_rows = km_outputs(pats, settings)
    cox_rows, cox_summary = baseline_cox(pats, covariates, settings, notes)
    landmark = landmark_analyses(pats, counting, settings, notes)
    tv_rows, time_varying = time_varying_cox(counting, pats, covariates, settings, notes)
    endpoints = trial_endpoints(pats, settings, notes)
    design_table, design = trial_design(pats, settings, notes)
    prediction = predict_progression(
        prediction_subset(pats, settings.prediction), _feature_sets(covariates), settings.prediction
    )
    for note in prediction["note"]:
        notes.add(f"prediction: {note}" if note else "")
    summary = {
        **counts_summary(pats),
        "logrank": logrank_summary(pats, notes),
        "cox": cox_summary,
        "landmarks": landmark.summary,
        "time_varying": time_varying,
        "lead_time": lead_time_summary(pats),
        "endpoints": _endpoint_summary(endpoints),
        "design": design,
        "prediction": {
            "horizon_months": settings.prediction.horizon_months,
            "models": prediction.to_dict("records"),
        },
        "settings": settings.to_dict(),
        "notes": notes,
    }
    cox = pd.DataFrame(cox_rows + landmark.cox_rows + tv_rows, columns=COX_COLUMNS)
    return SurvivalResults(
        curves,
        km_rows,
        cox,
        endpoints,
        design_table,
        prediction,
        summary,
        landmark.data,
        landmark.km_curves,
        landmark.km_summary,
    )


# --- inputs ----------------------------------------------------------------------------------------------------


def prepare_patients(patients: pd.DataFrame, notes: Notes) -> pd.DataFrame:
    """Patients with a usable PFS time; `group` = baseline status, or `none` without a baseline sample."""
    pats = patients.copy()
    pats["patient_id"] = pats["patient_id"].astype(str)
    pats["cohort"] = pats["cohort"].astype(str)
    for column in (
        "pfs_months",
        "os_months",
        "pfs_event",
        "os_event",
        "baseline_mrd_positive",
        "baseline_log10_tf",
    ):
        pats[column] = pd.to_numeric(pats[column], errors="coerce") if column in pats else np.nan
    if "baseline_status" not in pats:
        pats["baseline_status"] = ""
    valid = (pats["pfs_months"] >= 0) & pats["pfs_event"].isin([0, 1])
    if (~valid).any():
        notes.add(
            f"{int((~valid).sum())} patient(s) without a usable PFS time/event (missing, or PFS date before "
            f"enrollment) left out: {', '.join(pats.loc[~valid, 'patient_id'])}"
        )
    pats = pats[valid].reset_index(drop=True)
    pats["pfs_event"] = pats["pfs_event"].astype(int)
    pats["group"] = pats["baseline_status"].where(pats["baseline_status"].isin(MRD_STATUSES), "none")
    return pats


def encode_covariates(pats: pd.DataFrame, covariates: tuple[str, ...], notes: Notes) -> list[str]:
    """Add numeric model columns for the configured covariates; returns their names.

    Numeric columns are used as they are; text columns become indicators (reference = first level in sorted
    order), named `name[level]`. Missing values stay missing (complete cases in Cox, imputed in prediction).
    """
    columns: list[str] = []
    for name in covariates:
        if name not in pats.columns:
            notes.add(f"covariate '{name}' is not in the patients table: ignored")
            continue
        values = pats[name]
        if values.isna().any():
            notes.add(f"covariate '{name}' missing for {int(values.isna().sum())} patient(s)")
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == values.notna().sum():
            pats[name] = numeric
            columns.append(name)
            continue
        for level in sorted(values.dropna().astype(str).unique())[1:]:
            column = f"{name}[{level}]"
            pats[column] = (values.astype(str) == level).astype(float).where(values.notna())
            columns.append(column)
    return columns


def counts_summary(pats: pd.DataFrame) -> dict:
    return {
        "n_patients": len(pats),
        "n_events": int(pats["pfs_event"].sum()),
        "n_without_baseline": int((pats["group"] == "none").sum()),
        "n_indeterminate_baseline": int((pats["group"] == INDETERMINATE).sum()),
        "n_by_baseline_status": {g: int((pats["group"] == g).sum()) for g in (*MRD_STATUSES, "none")},
        "n_by_cohort": pats["cohort"].value_counts().sort_index().to_dict(),
    }


def _subsets(pats: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(analysis, cohort, rows): pooled first, then one per cohort."""
    return [("overall", "all", pats)] + [("cohort", c, g) for c, g in pats.groupby("cohort", sort=True)]


# --- Kaplan-Meier ----------------------------------------------------------------------------------------------

CURVE_COLUMNS = columns_of("km_curves")  # mrdtrack.tables.CONTRACTS
KM_SUMMARY_COLUMNS = columns_of("km_summary")  # mrdtrack.tables.CONTRACTS


def km_outputs(
    pats: pd.DataFrame, settings: SurvivalSettings, duration: str = "pfs_months"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KM curves and timepoint summaries: per analysis/cohort, groups all, positive, negative, indeterminate."""
    curves, rows = [], []
    suffix = "log" if settings.curve_ci == "log" else "loglog"
    for analysis, cohort, subset in _subsets(pats):
        for group in ("all", *MRD_STATUSES):
            rows_of_group = subset if group == "all" else subset[subset["group"] == group]
            if rows_of_group.empty and group == INDETERMINATE:
                continue
            key = {"analysis": analysis, "cohort": cohort, "group": group}
            table = km_table(rows_of_group[duration], rows_of_group["pfs_event"], settings.conf_level)
            if not table.empty:
                curve = table.rename(columns={f"ci_low_{suffix}": "ci_low", f"ci_high_{suffix}": "ci_high"})
                curves.append(curve.assign(**key))
            rows += _km_summary_rows(key, table, rows_of_group[duration], rows_of_group, settings)
    curves_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return curves_frame.reindex(columns=CURVE_COLUMNS), pd.DataFrame(rows, columns=KM_SUMMARY_COLUMNS)


def _km_summary_rows(
    key: dict, table: pd.DataFrame, durations: pd.Series, subset: pd.DataFrame, settings: SurvivalSettings
) -> list[dict]:
    base = key | {"n": len(subset), "events": int(subset["pfs_event"].sum())}
    if table.empty:
        return [
            base | {"timepoint_months": t, "at_risk": 0, "note": "no patients"}
            for t in settings.timepoints_months
        ]
    medians = {
        name: km_median(table, transform) for name, transform in (("log", "log"), ("loglog", "log-log"))
    }
    median = {
        "median": medians["log"].median,
        "median_ci_low_log": medians["log"].low,
        "median_ci_high_log": medians["log"].high,
        "median_ci_low_loglog": medians["loglog"].low,
        "median_ci_high_loglog": medians["loglog"].high,
    }
    return [
        base | {"timepoint_months": t} | value_at(table, durations, t) | median
        for t in settings.timepoints_months
    ]


def logrank_summary(pats: pd.DataFrame, notes: Notes) -> dict:
    """Positive vs negative baseline: pooled (unstratified) and per cohort."""
    result: dict = {"per_cohort": {}}
    for analysis, cohort, subset in _subsets(pats):
        test = logrank(subset, "pfs_months", "pfs_event", "group", DETERMINATE_STATUSES)
        if test["note"]:
            notes.add(f"log-rank ({cohort}): {test['note']}")
        if analysis == "overall":
            result["overall"] = test
        else:
            result["per_cohort"][cohort] = test
    return result


# --- Cox models ------------------------------------------------------------------------------------------------

COX_COLUMNS = columns_of("cox")  # mrdtrack.tables.CONTRACTS


def _strata(subset: pd.DataFrame, cohort: str, settings: SurvivalSettings) -> list[str]:
    """Pooled models are stratified by cohort (when there are several and it is configured)."""
    return (
        ["cohort"]
        if cohort == "all" and settings.stratify_by_cohort and subset["cohort"].nunique() > 1
        else []
    )


def _cox_rows(model: str, cohort: str, result: CoxResult) -> list[dict]:
    common = {
        "model": model,
        "cohort": cohort,
        "n": result.n,
        "events": result.events,
        "concordance": result.concordance,
    }
    tests = result.model_tests()
    return [common | term | {"note": result.note} | tests for term in result.terms.to_dict("records")]


def baseline_cox(
    pats: pd.DataFrame, covariates: list[str], settings: SurvivalSettings, notes: Notes
) -> tuple[list[dict], dict]:
    """Baseline MRD (positive vs negative), unadjusted and adjusted for the covariates; pooled and per cohort."""
    determinate = pats[pats["group"].isin(DETERMINATE_STATUSES)].assign(
        mrd_positive=lambda f: (f["group"] == POSITIVE).astype(int)
    )
    models = {"baseline_unadjusted": [MRD_TERM]}
    if covariates:
        models["baseline_adjusted"] = [MRD_TERM, *covariates]
    else:
        notes.add("no covariates configured: no adjusted Cox model")
    rows, summary = [], {}
    for model, terms in models.items():
        summary[model] = {}
        for _analysis, cohort, subset in _subsets(determinate):
            spec = _cohort_spec(terms, cohort, subset, settings, duration="pfs_months", event="pfs_event")
            result = fit_cox(subset, spec)
            _note_model(notes, model, cohort, result, len(subset))
            rows += _cox_rows(model, cohort, result)
            summary[model][cohort] = result.summary() | {"strata": spec.strata}
    return rows, summary


def _cohort_spec(
    terms: list[str], cohort: str, subset: pd.DataFrame, settings: SurvivalSettings, **columns: str
) -> CoxSpec:
    """The Cox model of `terms` in one cohort's (or all patients') rows, with the run's strata, confidence level
    and PH-test transform; `columns` name the time and event columns."""
    strata = _strata(subset, cohort, settings)
    return CoxSpec(
        covariates=_without_cohort(terms, cohort, strata),
        strata=strata,
        conf_level=settings.conf_level,
        zph_transform=settings.ph_transform,
        **columns,
    )


def _without_cohort(terms: list[str], cohort: str, strata: list[str]) -> list[str]:
    """A cohort covariate is constant within a cohort and redundant with cohort strata."""
    if cohort == "all" and not strata:
        return terms
    return [t for t in terms if t != "cohort" and not t.startswith("cohort[")]


def _note_model(
    notes: Notes,
    model: str,
    cohort: str,
    result: CoxResult,
    n_rows: int,
    missing: str = "a missing covariate",
) -> None:
    if result.note:
        notes.add(f"{model} ({cohort}): {result.note}")
    if result.n < n_rows and not result.note:
        notes.add(f"{model} ({cohort}): {n_rows - result.n} patient(s) with {missing} left out")


# --- landmark analyses -----------------------------------------------------------------------------------------

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
    for _analysis, cohort, subset in _subsets(data):
        spec = _cohort_spec([MRD_TERM], cohort, subset, settings, duration="time", event="pfs_event")
        result = fit_cox(subset, spec)
        _note_model(notes, model, cohort, result, len(subset), "no known status at the landmark")
        rows += _cox_rows(model, cohort, result)
        summary["cox"][cohort] = result.summary()
    return rows, summary


def _numbers(values: pd.Series) -> pd.Series:
    """Floats with NaN for missing (the clinical step's nullable Int64 status has pd.NA, read back it is NaN)."""
    return pd.to_numeric(values, errors="coerce").astype(float)


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
        **{MRD_TERM: _numbers(counting[MRD_TERM])},
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


# --- time-varying models ---------------------------------------------------------------------------------------


def time_varying_models(covariates: list[str]) -> dict[str, list[str]]:
    """Model name -> terms; the first term is the time-varying one."""
    models = {
        "time_varying_status": [MRD_TERM],
        "time_varying_log10_tf": ["log10_tf"],
        "time_varying_ever_positive": [EVER_POSITIVE_TERM],
    }
    if covariates:
        models["time_varying_status_adjusted"] = [MRD_TERM, *covariates]
        models["time_varying_ever_positive_adjusted"] = [EVER_POSITIVE_TERM, *covariates]
    return models


def time_varying_cox(
    counting: pd.DataFrame,
    pats: pd.DataFrame,
    covariates: list[str],
    settings: SurvivalSettings,
    notes: Notes,
) -> tuple[list[dict], dict]:
    """Status, log10 TF and ever-positive as time-varying covariates on the counting-process rows; status and
    ever-positive also adjusted for the covariates (fixed at baseline).

    Intervals with an unknown value (before the first sample, indeterminate samples) are left out: the
    patient is simply not in the risk set then. Missing covariates: complete cases, counted in the notes.
    """
    counting = counting[counting["patient_id"].astype(str).isin(pats["patient_id"])]
    data = with_patient_covariates(with_ever_positive(counting), pats, covariates)
    rows, summary = [], {}
    for model, terms in time_varying_models(covariates).items():
        term = terms[0]
        data = data.assign(**{term: _numbers(data[term])})
        dropped = data[term].isna()
        months = float((data["stop"] - data["start"])[dropped].sum())
        summary[model] = {
            "rows_without_value": int(dropped.sum()),
            "months_without_value": months,
            "fits": {},
        }
        if dropped.any():
            notes.add(
                f"{model}: {int(dropped.sum())} interval(s) ({months:.1f} patient-months) without a known value left out"
            )
        for _analysis, cohort, subset in _subsets(data[~dropped]):
            spec = _cohort_spec(
                terms,
                cohort,
                subset,
                settings,
                event="event",
                start="start",
                stop="stop",
                id_col="patient_id",
            )
            result = fit_cox(subset, spec)
            _note_model(notes, model, cohort, result, subset["patient_id"].nunique())
            rows += _cox_rows(model, cohort, result)
            summary[model]["fits"][cohort] = result.summary()
    return rows, summary


def with_ever_positive(counting: pd.DataFrame) -> pd.DataFrame:
    """Add `ever_positive`, an absorbing status built from the same sample dates: 1 from a patient's first
    positive sample on, 0 after a determinate sample while none was positive yet, unknown before the first
    determinate sample. Only earlier rows are used, so no status is known before it was measured."""
    ordered = counting.sort_values(["patient_id", "start"], kind="stable")
    status = _numbers(ordered[MRD_TERM])
    by_patient = ordered["patient_id"]
    positive_so_far = (status == 1).groupby(by_patient).cummax()
    known_so_far = status.notna().groupby(by_patient).cummax()
    ever = np.where(positive_so_far, 1.0, np.where(known_so_far, 0.0, np.nan))
    return ordered.assign(**{EVER_POSITIVE_TERM: ever}).loc[counting.index]


def with_patient_covariates(
    counting: pd.DataFrame, pats: pd.DataFrame, covariates: list[str]
) -> pd.DataFrame:
    """The patients' (baseline) model covariates on each of their counting-process rows."""
    extra = [c for c in covariates if c not in counting.columns]
    return counting.assign(patient_id=counting["patient_id"].astype(str)).merge(
        pats[["patient_id", *extra]], on="patient_id", how="left", validate="many_to_one"
    )


# --- dynamics, endpoints, design, prediction -------------------------------------------------------------------


def lead_time_summary(pats: pd.DataFrame) -> dict:
    """Months from the first positive sample to progression, among patients who progressed."""
    result = {}
    for _analysis, cohort, subset in _subsets(pats):
        progressed = subset[subset["pfs_event"] == 1]
        lead = pd.to_numeric(progressed.get("lead_time_months"), errors="coerce").dropna()
        result[cohort] = {
            "n_progressed": len(progressed),
            "n_positive_before_progression": len(lead),
            "n_not_detected_before_progression": len(progressed) - len(lead),
            "median_months": float(lead.median()) if len(lead) else None,
            "q1_months": float(lead.quantile(0.25)) if len(lead) else None,
            "q3_months": float(lead.quantile(0.75)) if len(lead) else None,
            "min_months": float(lead.min()) if len(lead) else None,
            "max_months": float(lead.max()) if len(lead) else None,
        }
    return result


ENDPOINT_COLUMNS = columns_of("endpoints")  # mrdtrack.tables.CONTRACTS


def trial_endpoints(pats: pd.DataFrame, settings: SurvivalSettings, notes: Notes) -> pd.DataFrame:
    """KM 1-year PFS and 3-year OS per cohort (and pooled), and clinical benefit after a restart."""
    rows = []
    for _analysis, cohort, subset in _subsets(pats):
        rows.append(_km_endpoint(cohort, subset, "pfs", settings.pfs_endpoint_months, settings))
        rows.append(_km_endpoint(cohort, subset, "os", settings.os_endpoint_months, settings))
        rows += _restart_rows(cohort, subset, settings)
    if "restart_benefit" not in pats.columns:
        notes.add("no restart_benefit column: clinical benefit after restart not reported")
    return pd.DataFrame(rows, columns=ENDPOINT_COLUMNS)


def _km_endpoint(
    cohort: str, subset: pd.DataFrame, kind: str, timepoint: float, settings: SurvivalSettings
) -> dict:
    months, event = f"{kind}_months", f"{kind}_event"
    data = subset[[months, event]].apply(pd.to_numeric, errors="coerce").dropna()
    table = km_table(data[months], data[event], settings.conf_level)
    value = (
        value_at(table, data[months], timepoint) if not table.empty else {"at_risk": 0, "note": "no patients"}
    )
    suffix = "log" if settings.endpoint_ci == "log" else "loglog"
    return {
        "cohort": cohort,
        "endpoint": endpoint_name(kind, timepoint),
        "timepoint_months": timepoint,
        "n": len(data),
        "events": int(data[event].sum()),
        "at_risk": value["at_risk"],
        "estimate": value.get("survival"),
        "ci_low": value.get(f"ci_low_{suffix}"),
        "ci_high": value.get(f"ci_high_{suffix}"),
        "method": f"Kaplan-Meier, {settings.endpoint_ci} CI",
        "note": value["note"],
    }


def endpoint_name(kind: str, months: float) -> str:
    """pfs_1y, os_3y for whole years (the trial's names), else pfs_6m and the like."""
    years = months / 12
    return f"{kind}_{years:g}y" if float(years).is_integer() else f"{kind}_{months:g}m"


def _restart_rows(cohort: str, subset: pd.DataFrame, settings: SurvivalSettings) -> list[dict]:
    if "restart_benefit" not in subset.columns:
        return []
    benefit = pd.to_numeric(subset["restart_benefit"], errors="coerce").dropna()
    row = {
        "cohort": cohort,
        "endpoint": "restart_clinical_benefit",
        "n": len(benefit),
        "events": int(benefit.sum()),
    }
    row |= {"method": "proportion, exact (Clopper-Pearson) CI", "at_risk": None}
    if benefit.empty:
        return [row | {"note": "no patient restarted with a recorded benefit"}]
    interval = stats.binomtest(int(benefit.sum()), len(benefit)).proportion_ci(
        settings.conf_level, method="exact"
    )
    return [row | {"estimate": benefit.mean(), "ci_low": interval.low, "ci_high": interval.high, "note": ""}]


def _endpoint_summary(endpoints: pd.DataFrame) -> dict:
    summary: dict = {}
    for row in endpoints.to_dict("records"):
        summary.setdefault(row["cohort"], {})[row["endpoint"]] = {
            k: v for k, v in row.items() if k not in ("cohort", "endpoint")
        }
    return summary


DESIGN_COLUMNS = columns_of("design")  # mrdtrack.tables.CONTRACTS


def trial_design(pats: pd.DataFrame, settings: SurvivalSettings, notes: Notes) -> tuple[pd.DataFrame, dict]:
    """Simon designs for the configured cohort and where its observed 1-year PFS data stand.

    Success = progression-free at the horizon. Patients censored before it are not evaluable: left out
    (`design_censored: exclude`, default) or counted as failures (`failure`); the other choice is shown as a
    sensitivity decision. Stage 1 = the first n1 evaluable patients in enrollment order.
    """
    designs = simon_designs(settings.p0, settings.p1, settings.alpha, settings.power, settings.design_nmax)
    observed = _design_outcomes(pats, settings)
    if observed["n_patients"] == 0:
        notes.add(f"design: no patients in cohort '{settings.design_cohort}'")
    rows = []
    for name in DESIGNS:
        if name not in designs:
            notes.add(f"design: no {name} Simon design with n <= {settings.design_nmax}")
            continue
        design = designs[name]
        decisions = {h: _decide(design, observed[h]) for h in CENSORED_HANDLING}
        other = next(h for h in CENSORED_HANDLING if h != settings.design_censored)
        rows.append(
            design.as_dict()
            | {"selected": name == settings.design, "p0": settings.p0, "p1": settings.p1}
            | {
                "target_alpha": settings.alpha,
                "target_power": settings.power,
                "cohort": settings.design_cohort,
            }
            | _observed_counts(observed[settings.design_censored], observed["n_patients"], design)
            | {
                "decision": decisions[settings.design_censored],
                "decision_other_handling": f"{other}: {decisions[other]}",
            }
        )
    table = pd.DataFrame(rows, columns=DESIGN_COLUMNS)
    chosen = table[table["selected"]].to_dict("records")
    summary = {"selected": chosen[0] if chosen else None, "designs": table.to_dict("records")}
    summary |= {"censored_handling": settings.design_censored, "success_rate": observed["rate"]}
    return table, summary


def _design_outcomes(pats: pd.DataFrame, settings: SurvivalSettings) -> dict:
    cohort = pats[pats["cohort"] == settings.design_cohort]
    cohort = cohort.sort_values(["enrollment_date", "patient_id"]) if "enrollment_date" in cohort else cohort
    free = 1 - horizon_outcome(cohort["pfs_months"], cohort["pfs_event"], settings.pfs_endpoint_months)
    result: dict = {
        "n_patients": len(cohort),
        "exclude": free.dropna().astype(int),
        "failure": free.fillna(0).astype(int),
    }
    chosen = result[settings.design_censored]
    result["rate"] = _proportion(chosen, settings.conf_level) | {"n_not_evaluable": int(free.isna().sum())}
    return result


def _proportion(successes: pd.Series, conf_level: float) -> dict:
    if successes.empty:
        return {"n": 0, "successes": 0, "estimate": None, "ci_low": None, "ci_high": None}
    interval = stats.binomtest(int(successes.sum()), len(successes)).proportion_ci(conf_level, method="exact")
    return {
        "n": len(successes),
        "successes": int(successes.sum()),
        "estimate": float(successes.mean()),
        "ci_low": interval.low,
        "ci_high": interval.high,
        "method": "exact (Clopper-Pearson); ignores the two-stage sampling",
    }


def _decide(design, outcomes: pd.Series) -> str:
    stage1 = outcomes.iloc[: design.n1]
    return simon_decision(
        design, int(stage1.sum()), len(stage1), int(outcomes.iloc[: design.n].sum()), len(outcomes)
    )


def _observed_counts(outcomes: pd.Series, n_patients: int, design) -> dict:
    stage1 = outcomes.iloc[: design.n1]
    return {
        "n_patients": n_patients,
        "n_evaluable": len(outcomes),
        "n_success": int(outcomes.sum()),
        "n_not_evaluable": n_patients - len(outcomes),
        "stage1_evaluable": len(stage1),
        "stage1_success": int(stage1.sum()),
    }


def _feature_sets(covariates: list[str]) -> dict[str, list[str]]:
    sets = {
        "mrd_status": ["baseline_mrd_positive"],
        "mrd_status_tf": ["baseline_mrd_positive", "baseline_log10_tf"],
    }
    if covariates:
        sets["mrd_status_tf_covariates"] = [*sets["mrd_status_tf"], *covariates]
    return sets


def prediction_subset(pats: pd.DataFrame, settings: PredictionSettings) -> pd.DataFrame:
    """The patients the prediction model is built on (`prediction: cohort`, default all)."""
    return pats if settings.cohort == "all" else pats[pats["cohort"] == settings.cohort]
