"""Predicting progression within a horizon (default 1 year) from baseline features, honestly cross-validated.

Penalized (L2) logistic regression in a scikit-learn pipeline (median imputation and scaling are refit inside
every training fold), repeated stratified K-fold cross-validation: every prediction is out-of-fold, no figure
is in-sample. The AUC is the mean over repeats of the AUC of each repeat's pooled out-of-fold predictions
(averaging the predictions over repeats first would not do: with a binary feature the left-out patient's own
outcome shifts its prediction the wrong way, and averaging turns that small bias into the whole ranking).
The CI is a percentile bootstrap over patients (resampled within outcome class); the range of the per-repeat
AUCs is shown too. With too few patients in either outcome class no model is fitted and the row says why.

Outcome: 1 = progression (or death) at or before the horizon; 0 = followed past the horizon without one;
patients censored before the horizon are not evaluable and left out (counted in the table).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mrdtrack.settings import StepSettings
from mrdtrack.tables import columns_of

PREDICTION_COLUMNS = columns_of("prediction")  # mrdtrack.tables.CONTRACTS


@dataclass(frozen=True)
class PredictionSettings(StepSettings):
    """Config `survival: prediction:`: cross-validated logistic regression of progression by a horizon;
    config/README.md documents each key.

    Parameters
    ----------
    horizon_months : float
        Outcome = progression (or death) at or before this time; patients censored before it are not evaluable.
    n_splits : int
        Folds of the stratified K-fold cross-validation (lowered to the smaller outcome class's size if needed).
    n_repeats : int
        Repetitions of the cross-validation with different fold assignments.
    C : float
        Inverse L2 penalty strength (scikit-learn's `C`; features are standardized inside each fold).
    min_class_size : int
        Fewer patients than this in the smaller outcome class: no model, a note instead.
    n_bootstrap : int
        Patient bootstrap replicates of the AUC confidence interval.
    conf_level : float
        Level of the AUC confidence interval.
    seed : int
        Seed of the fold assignments and the bootstrap (reruns give identical tables).
    cohort : str
        The cohort the models are built on, or `all`.
    """

    SECTION: ClassVar[str] = "survival.prediction"

    horizon_months: float = 12.0
    n_splits: int = 5
    n_repeats: int = 20
    C: float = 1.0
    min_class_size: int = 5
    n_bootstrap: int = 1000
    conf_level: float = 0.95
    seed: int = 2023
    cohort: str = "all"


def horizon_outcome(months: pd.Series, event: pd.Series, horizon: float) -> pd.Series:
    """1 = event by the horizon, 0 = known free of it at the horizon, NA = censored before (not evaluable)."""
    failed = (event == 1) & (months <= horizon)
    free = (months >= horizon) & ~failed
    return (
        pd.Series(np.where(failed, 1, np.where(free, 0, -1)), index=months.index)
        .replace(-1, pd.NA)
        .astype("Int64")
    )


def predict_progression(
    patients: pd.DataFrame, feature_sets: dict[str, list[str]], settings: PredictionSettings
) -> pd.DataFrame:
    """One row per feature set: cross-validated AUC with CI, or a note saying why there is none."""
    rows = [_one_model(patients, name, features, settings) for name, features in feature_sets.items()]
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def _one_model(patients: pd.DataFrame, name: str, features: list[str], settings: PredictionSettings) -> dict:
    outcome = horizon_outcome(patients["pfs_months"], patients["pfs_event"], settings.horizon_months)
    has_status = patients["baseline_mrd_positive"].notna()
    usable = outcome.notna() & has_status
    row = {
        "model": name,
        "features": ",".join(features),
        "n": int(usable.sum()),
        "n_events": int(outcome[usable].sum()),
        "n_not_evaluable": int(outcome.isna().sum()),
        "n_without_baseline_status": int((outcome.notna() & ~has_status).sum()),
        "n_repeats": settings.n_repeats,
    }
    y = outcome[usable].astype(int).to_numpy()
    smallest = int(min(y.sum(), len(y) - y.sum())) if len(y) else 0
    if smallest < settings.min_class_size:
        return row | {
            "n_splits": 0,
            "note": f"too few patients in the smaller outcome class ({smallest} < {settings.min_class_size}): "
            "no model fitted",
        }
    x = patients.loc[usable, features].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    return row | _cross_validate(x, y, settings, smallest)


def _cross_validate(x: np.ndarray, y: np.ndarray, settings: PredictionSettings, smallest: int) -> dict:
    n_splits = min(settings.n_splits, smallest)
    probabilities = np.zeros((settings.n_repeats, len(y)))
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=settings.C, max_iter=1000),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for repeat in range(settings.n_repeats):
            folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=settings.seed + repeat)
            probabilities[repeat] = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    per_repeat = np.array([roc_auc_score(y, p) for p in probabilities])
    low, high = bootstrap_auc_ci(y, probabilities, settings)
    note = (
        "" if smallest >= 10 else f"only {smallest} patients in the smaller outcome class: AUC is imprecise"
    )
    return {
        "n_splits": n_splits,
        "auc": float(per_repeat.mean()),
        "auc_ci_low": low,
        "auc_ci_high": high,
        "auc_repeat_min": float(per_repeat.min()),
        "auc_repeat_max": float(per_repeat.max()),
        "brier": float(np.mean([brier_score_loss(y, p) for p in probabilities])),
        "note": note,
    }


def bootstrap_auc_ci(
    y: np.ndarray, probabilities: np.ndarray, settings: PredictionSettings
) -> tuple[float, float]:
    """Percentile bootstrap CI of the repeat-averaged AUC, resampling patients within each outcome class.

    Each replicate draws one set of patients and averages, over the CV repeats, the AUC of those patients'
    out-of-fold predictions: the spread is that of patient sampling, given the cross-validated predictions.
    """
    rng = np.random.default_rng(settings.seed)
    cases, controls = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    draws = np.hstack(
        [
            rng.choice(cases, (settings.n_bootstrap, len(cases))),
            rng.choice(controls, (settings.n_bootstrap, len(controls))),
        ]
    )
    values = np.mean(
        [rank_auc(probabilities[r][draws], len(cases)) for r in range(len(probabilities))], axis=0
    )
    tail = (1 - settings.conf_level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def rank_auc(scores: np.ndarray, n_cases: int) -> np.ndarray:
    """AUC of each row of `scores` whose first n_cases columns are cases (Mann-Whitney: ties count 1/2).

    Row-wise and vectorised because the bootstrap needs thousands of them; equals sklearn's roc_auc_score.
    """
    ranks = stats.rankdata(scores, axis=1)
    n_controls = scores.shape[1] - n_cases
    return (ranks[:, :n_cases].sum(axis=1) - n_cases * (n_cases + 1) / 2) / (n_cases * n_controls)


def feature_sets(covariates: list[str]) -> dict[str, list[str]]:
    """The prediction models and their features: baseline MRD status, then with the baseline log10 tumor
    fraction, then (when configured) with the covariates too."""
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
