"""The patients table every survival analysis starts from: patients with a usable PFS, their baseline group
and covariate columns, the cohort subsets analyses run on, the summaries of the table itself, and the notes
collected along the way."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from mrdtrack.vocabulary import INDETERMINATE, MRD_STATUSES

log = logging.getLogger(__name__)

MRD_TERM = "mrd_positive"  # the model column of MRD status: 1 positive, 0 negative, missing unknown


class Notes(list):
    """Plain-language notes collected for summary.json (each also logged)."""

    def add(self, text: str) -> None:
        if text and text not in self:
            log.info("note: %s", text)
            self.append(text)


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


def usable_os(pats: pd.DataFrame) -> pd.DataFrame:
    """The patients with a usable OS time and event (OS analyses leave the others out)."""
    return pats[(pats["os_months"] >= 0) & pats["os_event"].isin([0, 1])]


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
    """How many patients and events, by baseline status and by cohort (summary.json)."""
    return {
        "n_patients": len(pats),
        "n_events": int(pats["pfs_event"].sum()),
        "n_without_baseline": int((pats["group"] == "none").sum()),
        "n_indeterminate_baseline": int((pats["group"] == INDETERMINATE).sum()),
        "n_by_baseline_status": {g: int((pats["group"] == g).sum()) for g in (*MRD_STATUSES, "none")},
        "n_by_cohort": pats["cohort"].value_counts().sort_index().to_dict(),
    }


def cohort_subsets(pats: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(analysis, cohort, rows): pooled first, then one per cohort."""
    return [("overall", "all", pats)] + [("cohort", c, g) for c, g in pats.groupby("cohort", sort=True)]


def lead_time_summary(pats: pd.DataFrame) -> dict:
    """Months from the first positive sample to progression, among patients who progressed."""
    result = {}
    for _analysis, cohort, subset in cohort_subsets(pats):
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


def to_floats(values: pd.Series) -> pd.Series:
    """Floats with NaN for missing (the clinical step's nullable Int64 status has pd.NA, read back it is NaN)."""
    return pd.to_numeric(values, errors="coerce").astype(float)
