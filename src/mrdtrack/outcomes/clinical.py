"""Joining MRD calls with the clinical sheet: baseline sample, per-patient dynamics, counting-process rows.

Time is measured from enrollment in months (days / 30.4375). Two rules keep the later survival models honest:
- the baseline status comes only from a sample inside the baseline window around enrollment; a patient without
  one keeps a row with an empty status and a `baseline_note` (never silently dropped);
- in the counting-process table a status holds from its sample date until the next sample, so a status is never
  known before the day it was measured (no immortal-time bias). Samples on or after the event/censoring date
  are ignored there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mrdtrack.logs import UserFacingError
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

CLINICAL_DATES = ("enrollment_date", "pfs_date", "os_date", "restart_date", "restart_progression_date")
COUNTING_COLUMNS = columns_of("counting_process")  # mrdtrack.tables.CONTRACTS


@dataclass(frozen=True)
class ClinicalSettings(StepSettings):
    """Settings of the clinical join (config section `clinical_join`); config/README.md documents each key.

    Parameters
    ----------
    baseline_window_days_before, baseline_window_days_after : int
        The baseline sample is the plasma draw closest to enrollment from this many days before it to this many
        days after it (both inclusive). The window's start also bounds the samples of the dynamics and of the
        counting process.
    tf_floor_fraction_of_lod : float
        log10 tumor fraction floor, as a fraction of the sample's lod95 (0.5: "below the detection limit, half
        of it"): a TF <= 0 or missing, or a negative sample's TF below it, becomes the floor.
    tf_floor_default : float
        The floor (a tumor fraction) for a sample without a usable lod95.
    indeterminate_in_counting_process : str
        What an indeterminate sample means in the counting-process table: `missing` (status and level unknown
        until the next sample) or `carry_forward` (the previous status and level go on).
    """

    SECTION: ClassVar[str] = "clinical_join"

    baseline_window_days_before: int = 30
    baseline_window_days_after: int = 7
    tf_floor_fraction_of_lod: float = 0.5
    tf_floor_default: float = 1e-5
    indeterminate_in_counting_process: str = "missing"


@dataclass
class ClinicalTables:
    """The three tables written by the clinical step (results/clinical/; docs/tables.md lists their columns).

    Parameters
    ----------
    joined : pandas.DataFrame
        joined.tsv: one row per plasma sample of calls.tsv with its patient's clinical columns, time from
        enrollment (days and months) and floored log10 TF.
    patients : pandas.DataFrame
        patients.tsv: one row per patient of the clinical sheet: PFS/OS in months, the baseline sample and its
        status, and the MRD dynamics (conversion, first positive, lead time, TF slope).
    counting_process : pandas.DataFrame
        counting_process.tsv: (start, stop] intervals in months per patient, each carrying the status and
        log10 TF of the latest sample, with the PFS event on the last one.
    """

    joined: pd.DataFrame
    patients: pd.DataFrame
    counting_process: pd.DataFrame


CALL_COLUMNS = ("sample_id", "patient_id", "collection_date", "mrd_status", "tumor_fraction", "lod95")
CLINICAL_COLUMNS = ("patient_id", "cohort", "enrollment_date", "pfs_event", "pfs_date", "os_event", "os_date")


def run_clinical(calls: pd.DataFrame, clinical: pd.DataFrame, settings: ClinicalSettings) -> ClinicalTables:
    """Join calls and clinical data and derive the per-patient and counting-process tables.

    Parameters
    ----------
    calls
        The calling step's calls (calls.tsv).
    clinical
        The clinical sheet: one row per patient with enrollment, PFS and OS.
    settings
        Config section `clinical_join`.

    Returns
    -------
    ClinicalTables
        The joined samples, the per-patient table and the counting-process rows.

    Raises
    ------
    UserFacingError
        When a required column of the calls or the clinical sheet is missing.
    """
    _require_columns(calls, CALL_COLUMNS, "MRD calls")
    _require_columns(clinical, CLINICAL_COLUMNS, "clinical sheet")
    clinical = prepare_clinical(clinical)
    joined = join_calls(calls, clinical, settings)
    patients = build_patients(joined, clinical, settings)
    counting = counting_process(joined, clinical, settings)
    return ClinicalTables(joined=_format_dates(joined), patients=patients, counting_process=counting)


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserFacingError(f"{what}: missing column(s) {', '.join(missing)}")


def prepare_clinical(clinical: pd.DataFrame) -> pd.DataFrame:
    """Parse dates, compute PFS/OS in months; one row per patient."""
    clinical = clinical.copy()
    clinical["patient_id"] = clinical["patient_id"].astype(str)
    duplicated = clinical["patient_id"].duplicated()
    if duplicated.any():
        raise UserFacingError(
            f"clinical sheet: duplicated patient_id {sorted(clinical.loc[duplicated, 'patient_id'])}"
        )
    for column in CLINICAL_DATES:
        if column in clinical.columns:
            clinical[column] = _dates(clinical[column])
    for column in ("pfs_event", "os_event"):
        clinical[column] = pd.to_numeric(clinical[column], errors="coerce").astype("Int64")
    clinical["cohort"] = clinical["cohort"].astype(str)
    clinical["pfs_months"] = _months(clinical["pfs_date"] - clinical["enrollment_date"])
    clinical["os_months"] = _months(clinical["os_date"] - clinical["enrollment_date"])
    return clinical


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.astype("string"), format="%Y-%m-%d", errors="coerce")


def _months(delta: pd.Series) -> pd.Series:
    return delta.dt.days / DAYS_PER_MONTH


def join_calls(calls: pd.DataFrame, clinical: pd.DataFrame, settings: ClinicalSettings) -> pd.DataFrame:
    """One row per plasma sample with its patient's clinical columns and time from enrollment.

    Samples of patients missing from the clinical sheet are kept with empty clinical columns and a note.
    """
    calls = calls.copy()
    calls["patient_id"] = calls["patient_id"].astype(str)
    calls["collection_date"] = _dates(calls["collection_date"])
    unknown_status = ~calls["mrd_status"].isin(MRD_STATUSES)
    if unknown_status.any():
        log.warning(
            "%d call(s) with an unknown mrd_status are treated as indeterminate", unknown_status.sum()
        )
        calls.loc[unknown_status, "mrd_status"] = INDETERMINATE
    joined = calls.merge(clinical, on="patient_id", how="left", suffixes=("", "_clinical"), indicator=True)
    days = (joined["collection_date"] - joined["enrollment_date"]).dt.days
    joined["days_from_enrollment"] = days.astype("Int64")
    joined["months_from_enrollment"] = days / DAYS_PER_MONTH
    joined["log10_tf"] = log10_tf(joined, settings)
    joined["join_note"] = np.where(
        joined.pop("_merge") == "left_only", "patient not in the clinical sheet", ""
    )
    missing = joined.loc[joined["join_note"] != "", "patient_id"].unique()
    if len(missing):
        log.warning("samples of %d patient(s) without clinical data: %s", len(missing), list(missing))
    return joined.sort_values(["patient_id", "collection_date", "sample_id"], ignore_index=True)


def log10_tf(samples: pd.DataFrame, settings: ClinicalSettings) -> pd.Series:
    """log10 tumor fraction with a floor so that TF = 0 can be logged.

    The floor is `tf_floor_fraction_of_lod` x the sample's lod95 (the usual 'below the detection limit -> half
    of it' substitution), or `tf_floor_default` when the LOD is missing. Negative samples never sit below the
    floor (their small TFs are noise); positive samples keep their own TF when it is > 0. Indeterminate samples
    get no value: their TF is not informative either way.
    """
    tf = pd.to_numeric(samples["tumor_fraction"], errors="coerce")
    lod = pd.to_numeric(samples["lod95"], errors="coerce")
    floor = (lod * settings.tf_floor_fraction_of_lod).where(lod > 0, settings.tf_floor_default)
    positive = samples["mrd_status"] == POSITIVE
    use_floor = (tf.isna() | (tf <= 0)) | (~positive & (tf < floor))
    value = np.log10(tf.where(~use_floor, floor).clip(lower=1e-300))
    return value.where(samples["mrd_status"] != INDETERMINATE)


def _status_rank(status: pd.Series) -> pd.Series:
    """Same-day duplicates: a determinate status is preferred over an indeterminate one."""
    return (status == INDETERMINATE).astype(int)


def one_per_day(samples: pd.DataFrame) -> pd.DataFrame:
    """Keep one sample per patient and day (determinate first, then the smallest sample_id)."""
    ranked = samples.assign(_rank=_status_rank(samples["mrd_status"]))
    ranked = ranked.sort_values(["patient_id", "collection_date", "_rank", "sample_id"])
    return ranked.drop_duplicates(["patient_id", "collection_date"]).drop(columns="_rank")


def select_baseline(joined: pd.DataFrame, clinical: pd.DataFrame, settings: ClinicalSettings) -> pd.DataFrame:
    """Per clinical patient, the plasma sample closest to enrollment inside the window (ties: the earlier).

    Same-day samples: determinate before indeterminate, then the smallest sample_id. A sample after the
    progression/censoring date is never a baseline. Patients without a sample in the window get empty
    baseline columns and a `baseline_note` saying why.
    """
    before, after = settings.baseline_window_days_before, settings.baseline_window_days_after
    days = joined["days_from_enrollment"]
    in_window = days.between(-before, after).fillna(False).astype(bool)
    in_window &= ~(joined["collection_date"] > joined["pfs_date"])
    candidates = joined[in_window].assign(_distance=days.abs(), _rank=_status_rank(joined["mrd_status"]))
    candidates = candidates.sort_values(
        ["patient_id", "_distance", "days_from_enrollment", "_rank", "sample_id"]
    )
    chosen = candidates.drop_duplicates("patient_id").set_index("patient_id")
    baseline = pd.DataFrame(index=pd.Index(clinical["patient_id"], name="patient_id"))
    baseline["baseline_sample_id"] = chosen["sample_id"]
    baseline["baseline_date"] = chosen["collection_date"]
    baseline["baseline_days_from_enrollment"] = chosen["days_from_enrollment"]
    baseline["baseline_status"] = chosen["mrd_status"]
    baseline["baseline_mrd_positive"] = chosen["mrd_status"].map({POSITIVE: 1, NEGATIVE: 0}).astype("Int64")
    baseline["baseline_tf"] = pd.to_numeric(chosen["tumor_fraction"], errors="coerce")
    baseline["baseline_log10_tf"] = chosen["log10_tf"]
    baseline["baseline_lod95"] = pd.to_numeric(chosen["lod95"], errors="coerce")
    baseline["baseline_note"] = [_baseline_note(p, chosen, joined, settings) for p in baseline.index]
    return baseline.reset_index()


def _baseline_note(
    patient: str, chosen: pd.DataFrame, joined: pd.DataFrame, settings: ClinicalSettings
) -> str:
    if patient in chosen.index:
        if chosen.at[patient, "mrd_status"] == INDETERMINATE:
            return "baseline sample indeterminate: excluded from positive-vs-negative comparisons"
        return ""
    days = joined.loc[joined["patient_id"] == patient, "days_from_enrollment"].dropna()
    if days.empty:
        return "no plasma sample"
    nearest = int(days.iloc[int(np.argmin(days.abs().to_numpy()))])
    return (
        f"no plasma sample within the baseline window (-{settings.baseline_window_days_before} to "
        f"+{settings.baseline_window_days_after} days); nearest at {nearest:+d} days"
    )


def build_patients(joined: pd.DataFrame, clinical: pd.DataFrame, settings: ClinicalSettings) -> pd.DataFrame:
    """One row per clinical patient: clinical columns, PFS/OS months, baseline and dynamics."""
    baseline = select_baseline(joined, clinical, settings)
    dynamics = patient_dynamics(joined, clinical, settings)
    patients = clinical.merge(baseline, on="patient_id", how="left").merge(
        dynamics, on="patient_id", how="left"
    )
    return _format_dates(patients)


def dynamics_samples(joined: pd.DataFrame, settings: ClinicalSettings) -> pd.DataFrame:
    """Samples used for dynamics: from the baseline-window start up to and including the PFS date."""
    start = -settings.baseline_window_days_before
    keep = joined["days_from_enrollment"].ge(start) & (joined["collection_date"] <= joined["pfs_date"])
    return one_per_day(joined[keep.fillna(False)])


def patient_dynamics(
    joined: pd.DataFrame, clinical: pd.DataFrame, settings: ClinicalSettings
) -> pd.DataFrame:
    """Per patient: status sequence, conversion, first positive, lead time, TF slope, last status before PD."""
    used = dynamics_samples(joined, settings)
    counts = joined.groupby("patient_id").size()
    rows = []
    for patient in clinical.itertuples(index=False):
        samples = used[used["patient_id"] == patient.patient_id]
        row = {"patient_id": patient.patient_id, "n_samples": int(counts.get(patient.patient_id, 0))}
        row |= _dynamics_of(samples, patient.pfs_date, patient.pfs_event)
        rows.append(row)
    return pd.DataFrame(rows, columns=DYNAMICS_COLUMNS)


DYNAMICS_COLUMNS = [
    "patient_id",
    "n_samples",
    "n_samples_used",
    "statuses",
    "converted_date",
    "first_positive_date",
    "lead_time_months",
    "tf_log10_slope_per_month",
    "last_status_before_progression",
]


def _dynamics_of(samples: pd.DataFrame, pfs_date: pd.Timestamp, pfs_event: Any) -> dict[str, Any]:
    determinate = samples[samples["mrd_status"].isin(DETERMINATE_STATUSES)]
    positive_dates = determinate.loc[determinate["mrd_status"] == POSITIVE, "collection_date"]
    first_positive = positive_dates.min() if len(positive_dates) else pd.NaT
    progressed = pfs_event == 1
    lead = (
        (pfs_date - first_positive).days / DAYS_PER_MONTH
        if progressed and pd.notna(first_positive)
        else np.nan
    )
    before_pd = determinate[determinate["collection_date"] < pfs_date]
    last_status = before_pd["mrd_status"].iloc[-1] if progressed and len(before_pd) else ""
    return {
        "n_samples_used": len(samples),
        "statuses": ";".join(
            f"{d:%Y-%m-%d}:{s}"
            for d, s in zip(samples["collection_date"], samples["mrd_status"], strict=True)
        ),
        "converted_date": _conversion_date(determinate),
        "first_positive_date": first_positive,
        "lead_time_months": lead,
        "tf_log10_slope_per_month": _tf_slope(determinate),
        "last_status_before_progression": last_status,
    }


def _conversion_date(determinate: pd.DataFrame) -> pd.Timestamp:
    """Date of the first positive sample that follows a negative one (indeterminate samples are skipped)."""
    seen_negative = False
    for date, status in zip(determinate["collection_date"], determinate["mrd_status"], strict=True):
        if status == NEGATIVE:
            seen_negative = True
        elif seen_negative:
            return date
    return pd.NaT


def _tf_slope(determinate: pd.DataFrame) -> float:
    """Least-squares slope of log10 TF (floored) per month; needs two determinate samples on different days."""
    points = determinate[["months_from_enrollment", "log10_tf"]].dropna()
    if points["months_from_enrollment"].nunique() < 2:
        return np.nan
    slope, _intercept = np.polyfit(points["months_from_enrollment"], points["log10_tf"], 1)
    return float(slope)


def counting_process(
    joined: pd.DataFrame, clinical: pd.DataFrame, settings: ClinicalSettings
) -> pd.DataFrame:
    """Counting-process rows (start, stop] in months: each sample's status holds until the next sample.

    The latest sample on or before enrollment (within the baseline window) gives the status at time 0; when
    there is none, the first row has an unknown (empty) status. Samples on or after the PFS date are ignored,
    so a status is only ever used after it was measured. The event flag is set on the last row only.
    Patients with a PFS time <= 0 or missing get no rows.
    """
    usable = joined[joined["days_from_enrollment"].ge(-settings.baseline_window_days_before).fillna(False)]
    usable = one_per_day(usable[usable["collection_date"] < usable["pfs_date"]])
    rows: list[dict[str, Any]] = []
    for patient in clinical.itertuples(index=False):
        if not patient.pfs_months > 0 or pd.isna(patient.pfs_event):
            log.warning(
                "patient %s: PFS time %s is not > 0; no counting-process rows",
                patient.patient_id,
                patient.pfs_months,
            )
            continue
        samples = usable[usable["patient_id"] == patient.patient_id]
        rows += _patient_intervals(patient, samples, settings)
    table = pd.DataFrame(rows, columns=COUNTING_COLUMNS)
    table["event"] = table["event"].astype(int)
    table["mrd_positive"] = table["mrd_positive"].astype("Int64")
    return table


def _patient_intervals(
    patient: Any, samples: pd.DataFrame, settings: ClinicalSettings
) -> list[dict[str, Any]]:
    changes = _status_changes(samples, settings)
    if not changes or changes[0]["start"] > 0:
        changes.insert(
            0, {"start": 0.0, "mrd_status": "", "mrd_positive": pd.NA, "log10_tf": np.nan, "sample_id": ""}
        )
    rows = []
    for index, change in enumerate(changes):
        stop = changes[index + 1]["start"] if index + 1 < len(changes) else patient.pfs_months
        is_last = index + 1 == len(changes)
        rows.append(
            {"patient_id": patient.patient_id, "cohort": patient.cohort, **change, "stop": stop}
            | {"event": int(patient.pfs_event) if is_last else 0}
        )
    return rows


def _status_changes(samples: pd.DataFrame, settings: ClinicalSettings) -> list[dict[str, Any]]:
    """One entry per sample, start = its time (pre-enrollment samples collapse to the latest one, at 0)."""
    samples = samples.sort_values("collection_date")
    at_or_before_zero = samples[samples["days_from_enrollment"] <= 0]
    samples = pd.concat([at_or_before_zero.tail(1), samples[samples["days_from_enrollment"] > 0]])
    carry = settings.indeterminate_in_counting_process == "carry_forward"
    changes: list[dict[str, Any]] = []
    for sample in samples.itertuples(index=False):
        entry = {
            "start": max(float(sample.months_from_enrollment), 0.0),
            "mrd_status": sample.mrd_status,
            "mrd_positive": {POSITIVE: 1, NEGATIVE: 0}.get(sample.mrd_status, pd.NA),
            "log10_tf": sample.log10_tf,
            "sample_id": sample.sample_id,
        }
        if carry and sample.mrd_status == INDETERMINATE and changes:
            # LOCF: the indeterminate draw tells nothing new, the previous status and level go on.
            entry |= {k: changes[-1][k] for k in ("mrd_status", "mrd_positive", "log10_tf")}
        changes.append(entry)
    return changes


def _format_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates back to ISO text for writing (empty when missing)."""
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = (
                frame[column].dt.strftime("%Y-%m-%d").astype(object).where(frame[column].notna(), "")
            )
    return frame
