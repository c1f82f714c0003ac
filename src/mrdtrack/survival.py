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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mrdtrack.clinical import config_section
from mrdtrack.cox import CoxResult, CoxSpec, fit_cox
from mrdtrack.design import DESIGNS, simon_decision, simon_designs
from mrdtrack.km import TRANSFORMS, km_median, km_table, logrank, value_at
from mrdtrack.logs import UserFacingError
from mrdtrack.prediction import PredictionSettings, horizon_outcome, predict_progression

log = logging.getLogger(__name__)

GROUPS = ("positive", "negative")
MRD_TERM = "mrd_positive"
CENSORED_HANDLING = ("exclude", "failure")


@dataclass(frozen=True)
class SurvivalSettings:
    """Config section `survival`; every key is documented in config/README.md."""

    covariates: tuple[str, ...] = ()
    landmarks_months: tuple[float, ...] = (3.0, 6.0, 12.0)
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

    @classmethod
    def from_config(cls, config: Any) -> SurvivalSettings:
        values = config_section(config, cls, "survival")
        for key in ("covariates", "landmarks_months", "timepoints_months"):
            if key in values:
                values[key] = tuple(values[key] or ())
        values["prediction"] = PredictionSettings(
            **config_section(values.get("prediction"), PredictionSettings, "prediction")
        )
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        problems = []
        if self.curve_ci not in TRANSFORMS or self.endpoint_ci not in TRANSFORMS:
            problems.append(f"curve_ci and endpoint_ci must be one of {TRANSFORMS}")
        if self.design not in DESIGNS:
            problems.append(f"design must be one of {DESIGNS}")
        if self.design_censored not in CENSORED_HANDLING:
            problems.append(f"design_censored must be one of {CENSORED_HANDLING}")
        if not 0 < self.p0 < self.p1 < 1:
            problems.append("need 0 < p0 < p1 < 1")
        if not 0 < self.conf_level < 1:
            problems.append("conf_level must be between 0 and 1")
        if problems:
            raise UserFacingError("survival config: " + "; ".join(problems))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SurvivalResults:
    km_curves: pd.DataFrame
    km_summary: pd.DataFrame
    cox: pd.DataFrame
    endpoints: pd.DataFrame
    design: pd.DataFrame
    prediction: pd.DataFrame
    summary: dict


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
    landmark_rows, landmarks = landmark_analyses(pats, counting, settings, notes)
    tv_rows, time_varying = time_varying_cox(counting, pats, settings, notes)
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
        "landmarks": landmarks,
        "time_varying": time_varying,
        "lead_time": lead_time_summary(pats),
        "endpoints": _endpoint_summary(endpoints),
        "design": design,
        "prediction": {
            "horizon_months": settings.prediction.horizon_months,
            "models": prediction.to_dict("records"),
        },
        "settings": settings.as_dict(),
        "notes": notes,
    }
    cox = pd.DataFrame(cox_rows + landmark_rows + tv_rows, columns=COX_COLUMNS)
    return SurvivalResults(curves, km_rows, cox, endpoints, design_table, prediction, summary)


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
    pats["group"] = pats["baseline_status"].where(
        pats["baseline_status"].isin(["positive", "negative", "indeterminate"]), "none"
    )
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
        "n_indeterminate_baseline": int((pats["group"] == "indeterminate").sum()),
        "n_by_baseline_status": {
            g: int((pats["group"] == g).sum()) for g in (*GROUPS, "indeterminate", "none")
        },
        "n_by_cohort": pats["cohort"].value_counts().sort_index().to_dict(),
    }


def _subsets(pats: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(analysis, cohort, rows): pooled first, then one per cohort."""
    return [("overall", "all", pats)] + [("cohort", c, g) for c, g in pats.groupby("cohort", sort=True)]


# --- Kaplan-Meier ----------------------------------------------------------------------------------------------

CURVE_COLUMNS = [
    "analysis",
    "cohort",
    "group",
    "time",
    "survival",
    "ci_low",
    "ci_high",
    "at_risk",
    "events",
    "censored",
]
KM_SUMMARY_COLUMNS = [
    "analysis", "cohort", "group", "n", "events", "timepoint_months", "survival",
    "ci_low_log", "ci_high_log", "ci_low_loglog", "ci_high_loglog", "at_risk",
    "median", "median_ci_low_log", "median_ci_high_log", "median_ci_low_loglog", "median_ci_high_loglog", "note",
]  # fmt: skip


def km_outputs(pats: pd.DataFrame, settings: SurvivalSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KM curves and timepoint summaries: per analysis/cohort, groups all, positive, negative, indeterminate."""
    curves, rows = [], []
    suffix = "log" if settings.curve_ci == "log" else "loglog"
    for analysis, cohort, subset in _subsets(pats):
        for group in ("all", *GROUPS, "indeterminate"):
            rows_of_group = subset if group == "all" else subset[subset["group"] == group]
            if rows_of_group.empty and group == "indeterminate":
                continue
            key = {"analysis": analysis, "cohort": cohort, "group": group}
            table = km_table(rows_of_group["pfs_months"], rows_of_group["pfs_event"], settings.conf_level)
            if not table.empty:
                curve = table.rename(columns={f"ci_low_{suffix}": "ci_low", f"ci_high_{suffix}": "ci_high"})
                curves.append(curve.assign(**key))
            rows += _km_summary_rows(key, table, rows_of_group, settings)
    curves_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return curves_frame.reindex(columns=CURVE_COLUMNS), pd.DataFrame(rows, columns=KM_SUMMARY_COLUMNS)


def _km_summary_rows(
    key: dict, table: pd.DataFrame, subset: pd.DataFrame, settings: SurvivalSettings
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
        base | {"timepoint_months": t} | value_at(table, subset["pfs_months"], t) | median
        for t in settings.timepoints_months
    ]


def logrank_summary(pats: pd.DataFrame, notes: Notes) -> dict:
    """Positive vs negative baseline: pooled (unstratified) and per cohort."""
    result: dict = {"per_cohort": {}}
    for analysis, cohort, subset in _subsets(pats):
        test = logrank(subset, "pfs_months", "pfs_event", "group", GROUPS)
        if test["note"]:
            notes.add(f"log-rank ({cohort}): {test['note']}")
        if analysis == "overall":
            result["overall"] = test
        else:
            result["per_cohort"][cohort] = test
    return result


# --- Cox models ------------------------------------------------------------------------------------------------

COX_COLUMNS = [
    "model", "cohort", "term", "n", "events", "coef", "se", "hr", "hr_ci_low", "hr_ci_high",
    "p_wald", "p_lr", "concordance", "ph_chisq", "ph_p", "note",
]  # fmt: skip


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
    return [common | term | {"note": result.note} for term in result.terms.to_dict("records")]


def baseline_cox(
    pats: pd.DataFrame, covariates: list[str], settings: SurvivalSettings, notes: Notes
) -> tuple[list[dict], dict]:
    """Baseline MRD (positive vs negative), unadjusted and adjusted for the covariates; pooled and per cohort."""
    determinate = pats[pats["group"].isin(GROUPS)].assign(
        mrd_positive=lambda f: (f["group"] == "positive").astype(int)
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
            strata = _strata(subset, cohort, settings)
            spec = CoxSpec(
                covariates=_without_cohort(terms, cohort, strata),
                duration="pfs_months",
                event="pfs_event",
                strata=strata,
                conf_level=settings.conf_level,
                zph_transform=settings.ph_transform,
            )
            result = fit_cox(subset, spec)
            _note_model(notes, model, cohort, result, len(subset))
            rows += _cox_rows(model, cohort, result)
            summary[model][cohort] = result.summary() | {"strata": spec.strata}
    return rows, summary


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


def landmark_analyses(
    pats: pd.DataFrame, counting: pd.DataFrame, settings: SurvivalSettings, notes: Notes
) -> tuple[list[dict], dict]:
    """Status at each landmark (last sample at or before it) among patients still progression-free then;
    time is counted from the landmark. Patients with no known status at the landmark are left out."""
    rows, summary = [], {}
    for landmark in settings.landmarks_months:
        name = f"landmark_{landmark:g}m"
        data = landmark_data(pats, counting, landmark)
        summary[f"{landmark:g}"] = {
            "landmark_months": landmark,
            "n_at_risk": len(data),
            "n_unknown_status": int(data["mrd_positive"].isna().sum()),
            "n_positive": int((data["mrd_positive"] == 1).sum()),
            "n_negative": int((data["mrd_positive"] == 0).sum()),
            "logrank": logrank(_with_status_label(data), "time", "pfs_event", "status", GROUPS),
            "cox": {},
        }
        for _analysis, cohort, subset in _subsets(data):
            spec = CoxSpec(
                covariates=[MRD_TERM],
                duration="time",
                event="pfs_event",
                strata=_strata(subset, cohort, settings),
                conf_level=settings.conf_level,
                zph_transform=settings.ph_transform,
            )
            result = fit_cox(subset, spec)
            _note_model(notes, name, cohort, result, len(subset), "no known status at the landmark")
            rows += _cox_rows(name, cohort, result)
            summary[f"{landmark:g}"]["cox"][cohort] = result.summary()
    return rows, summary


def _with_status_label(data: pd.DataFrame) -> pd.DataFrame:
    return data.assign(status=data[MRD_TERM].map({1: "positive", 0: "negative"}))


def landmark_data(pats: pd.DataFrame, counting: pd.DataFrame, landmark: float) -> pd.DataFrame:
    """Patients with PFS > landmark, their status at the landmark and the time since it."""
    at_risk = pats[pats["pfs_months"] > landmark][["patient_id", "cohort", "pfs_months", "pfs_event"]]
    covering = counting[(counting["start"] <= landmark) & (counting["stop"] > landmark)]
    status = covering.set_index("patient_id")[MRD_TERM]
    data = at_risk.assign(time=at_risk["pfs_months"] - landmark)
    data[MRD_TERM] = pd.to_numeric(data["patient_id"].map(status), errors="coerce")
    return data.reset_index(drop=True)


def time_varying_cox(
    counting: pd.DataFrame, pats: pd.DataFrame, settings: SurvivalSettings, notes: Notes
) -> tuple[list[dict], dict]:
    """Status (and, separately, log10 TF) as a time-varying covariate on the counting-process rows.

    Intervals with an unknown value (before the first sample, indeterminate samples) are left out: the
    patient is simply not in the risk set then.
    """
    counting = counting[counting["patient_id"].astype(str).isin(pats["patient_id"])]
    rows, summary = [], {}
    for model, term in (("time_varying_status", MRD_TERM), ("time_varying_log10_tf", "log10_tf")):
        data = counting.assign(**{term: pd.to_numeric(counting[term], errors="coerce")})
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
            spec = CoxSpec(
                covariates=[term],
                event="event",
                start="start",
                stop="stop",
                id_col="patient_id",
                strata=_strata(subset, cohort, settings),
                conf_level=settings.conf_level,
                zph_transform=settings.ph_transform,
            )
            result = fit_cox(subset, spec)
            _note_model(notes, model, cohort, result, subset["patient_id"].nunique())
            rows += _cox_rows(model, cohort, result)
            summary[model]["fits"][cohort] = result.summary()
    return rows, summary


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


ENDPOINT_COLUMNS = [
    "cohort", "endpoint", "timepoint_months", "n", "events", "at_risk", "estimate", "ci_low", "ci_high", "method",
    "note",
]  # fmt: skip


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


DESIGN_COLUMNS = [
    "design", "selected", "p0", "p1", "target_alpha", "target_power", "r1", "n1", "r", "n", "en0", "pet0",
    "alpha", "power", "cohort", "n_patients", "n_evaluable", "n_success", "n_not_evaluable", "stage1_evaluable",
    "stage1_success", "decision", "decision_other_handling",
]  # fmt: skip


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
