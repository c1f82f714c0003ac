"""Clinical benefit after restarting anti-HER2 therapy, among patients who progressed and restarted.

In the stop cohort a progression is followed by restarting anti-HER2 therapy; whether the restarted therapy
still works is the safety net that makes stopping acceptable. From the clinical sheet's optional columns
`restart_date`, `restart_best_response` (RECIST: CR, PR, SD, PD, or NE = not evaluable) and
`restart_progression_date` (the next progression after the restart; empty when none is recorded):
- time on restarted therapy: from the restart to the next progression or death, whichever comes first,
  censored at the last follow-up (`os_date`) otherwise; Kaplan-Meier median with its CI;
- clinical benefit (RECIST's clinical benefit rate): a complete or partial response, or stable disease lasting
  at least 24 weeks on the restarted therapy. Stable disease followed for less than 24 weeks without a next
  progression, a response that could not be evaluated (NE) and a missing response are not evaluable; the rate
  is among evaluable patients, with an exact (Clopper-Pearson) CI.
Only patients who progressed (`pfs_event` 1) and restarted on or after their progression date count; one row per
cohort. Without the three columns the analysis is skipped with a note.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrdtrack.outcomes.km import km_median, km_table
from mrdtrack.outcomes.patients import Notes
from mrdtrack.outcomes.safe_to_stop import clopper_pearson
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import DAYS_PER_MONTH

RESTART_COLUMNS = columns_of("restart")  # mrdtrack.tables.CONTRACTS
REQUIRED_COLUMNS = ("restart_date", "restart_best_response", "restart_progression_date")
RESPONSES = {"CR": "complete_response", "PR": "partial_response", "SD": "stable_disease",
             "PD": "progressive_disease", "NE": "response_not_evaluable"}  # fmt: skip
STABLE_DISEASE_WEEKS = 24
STABLE_DISEASE_MONTHS = STABLE_DISEASE_WEEKS * 7 / DAYS_PER_MONTH


def restart_benefit(
    pats: pd.DataFrame, notes: Notes, conf_level: float = 0.95, transform: str = "log-log"
) -> tuple[pd.DataFrame, dict]:
    """restart.tsv (one row per cohort) and summary.json's `restart {cohort {...}}`; an empty table and a
    note when the clinical sheet lacks a restart column.

    Parameters
    ----------
    pats
        The survival step's patients: cohort, pfs_event, pfs_date, os_event, os_date and the restart columns.
    notes
        Where to say what was skipped or left out.
    conf_level, transform
        Confidence level of the rate and the median; CI transform of the Kaplan-Meier median.
    """
    missing = [column for column in REQUIRED_COLUMNS if column not in pats.columns]
    if missing:
        notes.add(
            f"the clinical sheet has no {', '.join(missing)} column(s): clinical benefit after restart not derived"
        )
        return pd.DataFrame(columns=RESTART_COLUMNS), {}
    restarts = restarted_patients(pats, notes)
    rows = []
    for cohort in sorted(pats["cohort"].astype(str).unique()):
        in_cohort = pats["cohort"].astype(str) == cohort
        rows.append(
            {"cohort": cohort, "n_progressed": int((pats.loc[in_cohort, "pfs_event"] == 1).sum())}
            | cohort_benefit(restarts[restarts["cohort"] == cohort], conf_level, transform)
        )
    table = pd.DataFrame(rows).reindex(columns=RESTART_COLUMNS)
    return table, {row["cohort"]: row for row in table.to_dict("records")}


def restarted_patients(pats: pd.DataFrame, notes: Notes) -> pd.DataFrame:
    """Patients who progressed and restarted on or after their progression date, with `months_on_therapy`,
    `therapy_event` (next progression or death) and `benefit` (1, 0, or NA = not evaluable)."""
    dates = {c: pd.to_datetime(pats[c].astype("string"), errors="coerce")
             for c in ("pfs_date", "os_date", "restart_date", "restart_progression_date")}  # fmt: skip
    progressed = pats["pfs_event"] == 1
    restarted = progressed & dates["restart_date"].notna()
    early = restarted & (dates["restart_date"] < dates["pfs_date"])
    if early.any():
        notes.add(f"restart: {int(early.sum())} restart(s) dated before the progression left out")
    chosen = restarted & ~early
    next_progression = dates["restart_progression_date"]
    died = pd.to_numeric(pats["os_event"], errors="coerce") == 1
    end = next_progression.where(next_progression.notna(), dates["os_date"])
    frame = pd.DataFrame(
        {
            "cohort": pats["cohort"].astype(str),
            "response": pats["restart_best_response"].fillna("").astype(str).str.strip().str.upper(),
            "months_on_therapy": (end - dates["restart_date"]).dt.days / DAYS_PER_MONTH,
            "therapy_event": (next_progression.notna() | died).astype(int),
        }
    )[chosen]
    unusable = frame["months_on_therapy"].isna() | (frame["months_on_therapy"] < 0)
    if unusable.any():
        notes.add(
            f"restart: {int(unusable.sum())} patient(s) without a usable time on restarted therapy (no follow-up "
            "date, or one before the restart): no time on therapy"
        )
        frame.loc[unusable, "months_on_therapy"] = np.nan
    return frame.assign(benefit=clinical_benefit(frame))


def clinical_benefit(frame: pd.DataFrame) -> pd.Series:
    """1 = CR, PR or stable disease for >= 24 weeks; 0 = PD, or stable disease ended by a progression or death
    before 24 weeks; NA = not evaluable (NE, missing, or stable disease followed < 24 weeks without one)."""
    lasted = frame["months_on_therapy"] >= STABLE_DISEASE_MONTHS
    ended_early = (frame["therapy_event"] == 1) & (frame["months_on_therapy"] < STABLE_DISEASE_MONTHS)
    response = frame["response"]
    benefit = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    benefit[response.isin(["CR", "PR"]) | ((response == "SD") & lasted)] = 1
    benefit[(response == "PD") | ((response == "SD") & ended_early)] = 0
    return benefit


def cohort_benefit(restarts: pd.DataFrame, conf_level: float, transform: str) -> dict:
    """The figures of one cohort's restarted patients (see restart.tsv in docs/tables.md)."""
    benefit = restarts["benefit"]
    evaluable, benefited = int(benefit.notna().sum()), int((benefit == 1).sum())
    low, high = clopper_pearson(benefited, evaluable, conf_level)
    row = {
        "n_restarted": len(restarts),
        "evaluable": evaluable,
        "clinical_benefit": benefited,
        "not_evaluable": len(restarts) - evaluable,
        "benefit_rate": benefited / evaluable if evaluable else np.nan,
        "benefit_ci_low": low,
        "benefit_ci_high": high,
        "response_missing": int((~restarts["response"].isin(list(RESPONSES))).sum()),
    }
    row |= {name: int((restarts["response"] == code).sum()) for code, name in RESPONSES.items()}
    row |= _time_on_therapy(restarts, conf_level, transform)
    row["note"] = "" if len(restarts) else "no patient progressed and restarted"
    return row


def _time_on_therapy(restarts: pd.DataFrame, conf_level: float, transform: str) -> dict:
    timed = restarts.dropna(subset=["months_on_therapy"])
    result = {"time_on_therapy_n": len(timed), "time_on_therapy_events": int(timed["therapy_event"].sum())}
    if timed.empty:
        return result
    median = km_median(km_table(timed["months_on_therapy"], timed["therapy_event"], conf_level), transform)
    return result | {
        "time_on_therapy_median": median.median,
        "time_on_therapy_ci_low": median.low,
        "time_on_therapy_ci_high": median.high,
    }
