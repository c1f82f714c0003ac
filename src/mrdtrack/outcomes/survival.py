"""The survival step: progression-free survival by MRD, every analysis of results/survival/ put together.

The analyses live beside this module: `baseline` (log-rank, Cox and restricted mean survival by baseline
status), `overall_survival` (the same for OS), `landmark`, `time_varying`, `safe_to_stop` (1-year PFS by status
and the accuracy of MRD-positivity for progression within the year), `endpoints` (trial endpoints and the Simon
design's decision), `restart` (clinical benefit after restarting therapy), `followup` (median follow-up) and
`prediction`; `fitting` holds the KM curves and the per-cohort Cox plumbing they share (`firth` steps in where
an ordinary fit diverges), `patients` the table they start from and `survival_settings` the config section.

Inputs are results/clinical/patients.tsv and counting_process.tsv. Conventions (also in docs/tables.md):
- groups are the baseline MRD status; positive-vs-negative tests and models use only patients with a
  determinate baseline: indeterminate baselines get their own descriptive KM curve, patients without a
  baseline sample appear only in the `all` curves; both are counted in summary.json;
- pooled (all-cohort) Cox models are stratified by cohort (the cohorts differ in baseline hazard by design:
  one stops anti-HER2 therapy); the pooled log-rank test is given plain and stratified by cohort, per-cohort
  tests as well; under monotone likelihood a Cox row is the Firth-penalized fit (method `firth`);
- thin data never crash and never produce a number that is not one: a note says what was not estimable.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mrdtrack.outcomes.baseline import baseline_cox, logrank_summary, rmst_table
from mrdtrack.outcomes.endpoints import endpoint_summary, trial_design, trial_endpoints
from mrdtrack.outcomes.fitting import COX_COLUMNS, km_outputs
from mrdtrack.outcomes.followup import follow_up_summary
from mrdtrack.outcomes.landmark import landmark_analyses
from mrdtrack.outcomes.overall_survival import overall_survival
from mrdtrack.outcomes.patients import (
    Notes,
    counts_summary,
    encode_covariates,
    lead_time_summary,
    prepare_patients,
)
from mrdtrack.outcomes.prediction import feature_sets, predict_progression, prediction_subset
from mrdtrack.outcomes.restart import restart_benefit
from mrdtrack.outcomes.safe_to_stop import safe_to_stop, status_sets
from mrdtrack.outcomes.survival_settings import SurvivalSettings
from mrdtrack.outcomes.time_varying import time_varying_cox

#: The tables the survival step writes, results/survival/{name}.tsv, each an attribute of `SurvivalResults`.
SURVIVAL_TABLES = (
    "km_curves", "km_summary", "cox", "endpoints", "design", "prediction", "landmark_data", "landmark_km_curves",
    "landmark_km_summary", "os_km_curves", "os_km_summary", "rmst", "safe_to_stop", "safe_to_stop_accuracy",
    "restart",
)  # fmt: skip


@dataclass
class SurvivalResults:
    """The tables of results/survival/ (one attribute per name in `SURVIVAL_TABLES`) and summary.json;
    docs/tables.md lists every column.

    Parameters
    ----------
    km_curves : pandas.DataFrame
        Kaplan-Meier curves by baseline status, overall and per cohort: one row per distinct time per curve.
    km_summary : pandas.DataFrame
        Per curve and timepoint: survival with both CI types, number at risk, median and its CIs.
    cox : pandas.DataFrame
        One row per Cox model, cohort and term (baseline PFS and OS, landmark and time-varying models), with
        the model-level tests repeated on each row and the method (`cox`, or `firth` where the ordinary fit
        diverges).
    endpoints : pandas.DataFrame
        Trial endpoints per cohort: PFS and OS at their timepoints, and the clinical benefit after a restart.
    design : pandas.DataFrame
        The Simon two-stage designs (`optimal`, `minimax`) with the observed counts of `design_cohort` and the
        decision.
    prediction : pandas.DataFrame
        The cross-validated AUC of each feature set predicting progression by the horizon.
    summary : dict
        summary.json: patient and event counts, log-rank tests (plain and stratified by cohort), Cox model
        tests, OS, RMST, median follow-up, the safe-to-stop figures, landmark and time-varying summaries, lead
        time, the restart benefit, the design's decision, the settings, and the notes on what was not
        estimable.
    landmark_data : pandas.DataFrame
        One row per landmark and patient progression-free at it, with the status under both landmark rules.
    landmark_km_curves : pandas.DataFrame
        `km_curves` counted from each landmark, by the status there.
    landmark_km_summary : pandas.DataFrame
        `km_summary` for the landmark curves.
    os_km_curves : pandas.DataFrame
        `km_curves` of overall survival by baseline status.
    os_km_summary : pandas.DataFrame
        `km_summary` of overall survival by baseline status.
    rmst : pandas.DataFrame
        Restricted mean PFS time by baseline status up to 12, 24 and 36 months, with the difference and ratio
        of positive to negative, per cohort and pooled.
    safe_to_stop : pandas.DataFrame
        1-year PFS (Kaplan-Meier and the exact binomial rate among evaluable patients) by MRD status at
        baseline and at each landmark, per cohort and pooled, with the counts behind them.
    safe_to_stop_accuracy : pandas.DataFrame
        MRD-positivity as a test for progression within 1 year at the same timepoints: the 2x2 counts, the
        patients not evaluable, and sensitivity, specificity, PPV and NPV with exact CIs.
    restart : pandas.DataFrame
        Per cohort, clinical benefit and time on restarted anti-HER2 therapy among patients who progressed
        and restarted (empty without the clinical sheet's restart columns).
    """

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
    os_km_curves: pd.DataFrame
    os_km_summary: pd.DataFrame
    rmst: pd.DataFrame
    safe_to_stop: pd.DataFrame
    safe_to_stop_accuracy: pd.DataFrame
    restart: pd.DataFrame


def run_survival(
    patients: pd.DataFrame, counting: pd.DataFrame, settings: SurvivalSettings
) -> SurvivalResults:
    """Every analysis of results/survival/ from the clinical step's patients and counting-process tables.

    Parameters
    ----------
    patients
        The clinical step's patients table (patients.tsv): PFS/OS, baseline status and TF, covariates.
    counting
        The clinical step's counting-process rows (counting_process.tsv): status and TF per interval.
    settings
        Config section `survival`.

    Returns
    -------
    SurvivalResults
        One table per name in `SURVIVAL_TABLES`, and the summary written as summary.json (with the notes on
        what could not be estimated).
    """
    notes = Notes()
    pats = prepare_patients(patients, notes)
    covariates = encode_covariates(pats, settings.covariates, notes)
    curves, km_rows = km_outputs(pats, settings)
    cox_rows, cox_summary = baseline_cox(pats, covariates, settings, notes)
    os_ = overall_survival(pats, covariates, settings, notes)
    landmark = landmark_analyses(pats, counting, settings, notes)
    tv_rows, time_varying = time_varying_cox(counting, pats, covariates, settings, notes)
    stopping = safe_to_stop(
        status_sets(pats, landmark.data, settings.landmarks_months),
        sorted(pats["cohort"].unique()),
        settings.pfs_endpoint_months,
        settings.conf_level,
        settings.endpoint_ci,
    )
    endpoints = trial_endpoints(pats, settings, notes)
    restart, restart_summary = restart_benefit(pats, notes, settings.conf_level, settings.endpoint_ci)
    design_table, design = trial_design(pats, settings, notes)
    prediction = predict_progression(
        prediction_subset(pats, settings.prediction), feature_sets(covariates), settings.prediction
    )
    for note in prediction["note"]:
        notes.add(f"prediction: {note}" if note else "")
    rmst = rmst_table(pats, settings)
    summary = {
        **counts_summary(pats),
        "logrank": logrank_summary(pats, notes),
        "cox": cox_summary | os_.cox_summary,
        "os": os_.summary,
        "rmst": _rmst_summary(rmst),
        "follow_up": follow_up_summary(pats, settings.conf_level),
        "safe_to_stop": stopping.summary,
        "landmarks": landmark.summary,
        "time_varying": time_varying,
        "lead_time": lead_time_summary(pats),
        "endpoints": endpoint_summary(endpoints),
        "restart": restart_summary,
        "design": design,
        "prediction": {
            "horizon_months": settings.prediction.horizon_months,
            "models": prediction.to_dict("records"),
        },
        "settings": settings.to_dict(),
        "notes": notes,
    }
    cox = pd.DataFrame(cox_rows + os_.cox_rows + landmark.cox_rows + tv_rows, columns=COX_COLUMNS)
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
        os_.km_curves,
        os_.km_summary,
        rmst,
        stopping.figures,
        stopping.accuracy,
        restart,
    )


def _rmst_summary(rmst: pd.DataFrame) -> dict:
    """summary.json `rmst {cohort {tau: row}}`: the rows of rmst.tsv."""
    summary: dict = {}
    for row in rmst.to_dict("records"):
        summary.setdefault(row.pop("cohort"), {})[f"{row['tau_months']:g}"] = row
    return summary
