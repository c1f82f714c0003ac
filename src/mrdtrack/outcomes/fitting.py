"""What the survival analyses share to fit pooled and per-cohort models: Kaplan-Meier curves and timepoint
summaries by group, and the run's Cox model of a cohort (strata, confidence level, PH-test transform), its table
rows and notes."""

from __future__ import annotations

import pandas as pd

from mrdtrack.outcomes.cox import CoxResult, CoxSpec
from mrdtrack.outcomes.km import km_median, km_table, value_at
from mrdtrack.outcomes.patients import Notes, cohort_subsets
from mrdtrack.outcomes.survival_settings import SurvivalSettings
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import INDETERMINATE, MRD_STATUSES

CURVE_COLUMNS = columns_of("km_curves")  # mrdtrack.tables.CONTRACTS
KM_SUMMARY_COLUMNS = columns_of("km_summary")  # mrdtrack.tables.CONTRACTS
COX_COLUMNS = columns_of("cox")  # mrdtrack.tables.CONTRACTS


def km_outputs(
    pats: pd.DataFrame, settings: SurvivalSettings, duration: str = "pfs_months", event: str = "pfs_event"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KM curves and timepoint summaries: per analysis/cohort, groups all, positive, negative, indeterminate."""
    curves, rows = [], []
    suffix = "log" if settings.curve_ci == "log" else "loglog"
    for analysis, cohort, subset in cohort_subsets(pats):
        for group in ("all", *MRD_STATUSES):
            rows_of_group = subset if group == "all" else subset[subset["group"] == group]
            if rows_of_group.empty and group == INDETERMINATE:
                continue
            key = {"analysis": analysis, "cohort": cohort, "group": group}
            table = km_table(rows_of_group[duration], rows_of_group[event], settings.conf_level)
            if not table.empty:
                curve = table.rename(columns={f"ci_low_{suffix}": "ci_low", f"ci_high_{suffix}": "ci_high"})
                curves.append(curve.assign(**key))
            rows += _km_summary_rows(key, table, rows_of_group[duration], rows_of_group[event], settings)
    curves_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return curves_frame.reindex(columns=CURVE_COLUMNS), pd.DataFrame(rows, columns=KM_SUMMARY_COLUMNS)


def _km_summary_rows(
    key: dict, table: pd.DataFrame, durations: pd.Series, events: pd.Series, settings: SurvivalSettings
) -> list[dict]:
    base = key | {"n": len(durations), "events": int(events.sum())}
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


def _strata(subset: pd.DataFrame, cohort: str, settings: SurvivalSettings) -> list[str]:
    """Pooled models are stratified by cohort (when there are several and it is configured)."""
    return (
        ["cohort"]
        if cohort == "all" and settings.stratify_by_cohort and subset["cohort"].nunique() > 1
        else []
    )


def cox_table_rows(model: str, cohort: str, result: CoxResult) -> list[dict]:
    """The cox.tsv rows of one fit: one per term, each with the model's size, concordance (and its standard
    error), note, model-level tests and the method that fitted it (`cox`, or `firth` under monotone
    likelihood)."""
    common = {
        "model": model,
        "cohort": cohort,
        "n": result.n,
        "events": result.events,
        "concordance": result.concordance,
    }
    tests = result.model_tests()
    last = {"method": result.method, "concordance_se": result.concordance_se}
    return [common | term | {"note": result.note} | tests | last for term in result.terms.to_dict("records")]


def cohort_spec(
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


def note_model(
    notes: Notes,
    model: str,
    cohort: str,
    result: CoxResult,
    n_rows: int,
    missing: str = "a missing covariate",
) -> None:
    """Note a model that could not be estimated, or one that left rows out (`missing` says why)."""
    if result.note:
        notes.add(f"{model} ({cohort}): {result.note}")
    if result.n < n_rows and not result.note:
        notes.add(f"{model} ({cohort}): {n_rows - result.n} patient(s) with {missing} left out")
