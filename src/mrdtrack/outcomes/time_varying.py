"""Time-varying Cox models on the counting-process rows: MRD status, log10 tumor fraction and ever-positive
as they were known at each moment, alone and adjusted for the baseline covariates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrdtrack.outcomes.firth import fit_cox_or_firth
from mrdtrack.outcomes.fitting import cohort_spec, cox_table_rows, note_model
from mrdtrack.outcomes.patients import MRD_TERM, Notes, cohort_subsets, to_floats
from mrdtrack.outcomes.survival_settings import SurvivalSettings

EVER_POSITIVE_TERM = "ever_positive"


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
        data = data.assign(**{term: to_floats(data[term])})
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
        for _analysis, cohort, subset in cohort_subsets(data[~dropped]):
            spec = cohort_spec(
                terms,
                cohort,
                subset,
                settings,
                event="event",
                start="start",
                stop="stop",
                id_col="patient_id",
            )
            result = fit_cox_or_firth(subset, spec)
            note_model(notes, model, cohort, result, subset["patient_id"].nunique())
            rows += cox_table_rows(model, cohort, result)
            summary[model]["fits"][cohort] = result.summary()
    return rows, summary


def with_ever_positive(counting: pd.DataFrame) -> pd.DataFrame:
    """Add `ever_positive`, an absorbing status built from the same sample dates: 1 from a patient's first
    positive sample on, 0 after a determinate sample while none was positive yet, unknown before the first
    determinate sample. Only earlier rows are used, so no status is known before it was measured."""
    ordered = counting.sort_values(["patient_id", "start"], kind="stable")
    status = to_floats(ordered[MRD_TERM])
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
