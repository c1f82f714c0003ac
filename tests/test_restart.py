"""Clinical benefit after restarting anti-HER2 therapy, read as a specification: who counts, what benefit is,
and the time on restarted therapy."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mrdtrack.outcomes.patients import Notes
from mrdtrack.outcomes.restart import restart_benefit
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import DAYS_PER_MONTH

PROGRESSED = dt.date(2024, 1, 15)
RESTARTED = dt.date(2024, 2, 1)
RESTART_DATE = RESTARTED.isoformat()


def on(days: int | None) -> str:
    """The date `days` after the restart ('' for none)."""
    return "" if days is None else (RESTARTED + dt.timedelta(days=days)).isoformat()


def patient(pid, cohort="stop", progressed=1, restart=RESTART_DATE, response="", next_pd=None,
            last_seen=400, died=0) -> dict:  # fmt: skip
    return {
        "patient_id": pid, "cohort": cohort, "pfs_event": progressed, "pfs_date": PROGRESSED.isoformat(),
        "os_event": died, "os_date": on(last_seen), "restart_date": restart, "restart_best_response": response,
        "restart_progression_date": on(next_pd),
    }  # fmt: skip


WEEK = 7
PATIENTS = pd.DataFrame(
    [
        patient(
            "CR_short", response="CR", last_seen=41
        ),  # a response is a benefit however short the follow-up
        patient("SD_30_weeks", response="SD", next_pd=30 * WEEK),  # stable for >= 24 weeks: benefit
        patient("SD_10_weeks", response="SD", next_pd=10 * WEEK),  # progressed before 24 weeks: no benefit
        patient("SD_followed_10_weeks", response="SD", last_seen=10 * WEEK),  # not long enough to tell
        patient("PD", response="PD", next_pd=6 * WEEK),
        patient("NE", response="NE", next_pd=12 * WEEK),  # response not evaluable
        patient("SD_died_8_weeks", response="SD", last_seen=8 * WEEK, died=1),  # death ends the therapy
        patient("no_restart", restart=""),
        patient("restart_before_progression", restart="2024-01-02", response="PR"),
        patient("not_progressed", progressed=0, response="PR"),
        patient("continue_progressed", cohort="continue", restart=""),
    ]
)


@pytest.fixture(scope="module")
def restart():
    notes = Notes()
    table, summary = restart_benefit(PATIENTS, notes)
    return table.set_index("cohort"), summary, notes


def test_only_patients_who_progressed_and_restarted_after_it_count(restart):
    table, _summary, notes = restart
    stop = table.loc["stop"]
    assert stop["n_progressed"] == 9  # every stop patient but the one who did not progress
    assert stop["n_restarted"] == 7  # not: no restart, a restart dated before the progression, no progression
    assert "1 restart(s) dated before the progression left out" in " ".join(notes)
    assert table.loc["continue", "n_restarted"] == 0
    assert table.loc["continue", "note"] == "no patient progressed and restarted"


def test_clinical_benefit_is_a_response_or_stable_disease_for_24_weeks(restart):
    stop = restart[0].loc["stop"]
    # benefit: CR_short, SD_30_weeks; none: SD_10_weeks, PD, SD_died_8_weeks; not evaluable: SD followed 10
    # weeks without progression, NE
    assert (stop["clinical_benefit"], stop["evaluable"], stop["not_evaluable"]) == (2, 5, 2)
    assert stop["benefit_rate"] == pytest.approx(2 / 5)
    # R: binom.test(2, 5)$conf.int
    assert (stop["benefit_ci_low"], stop["benefit_ci_high"]) == pytest.approx(
        (0.0527449505263169, 0.853367200365327), rel=1e-12
    )
    counts = stop[["complete_response", "partial_response", "stable_disease", "progressive_disease",
                   "response_not_evaluable", "response_missing"]].tolist()  # fmt: skip
    assert counts == [1, 0, 4, 1, 1, 0]


def test_time_on_restarted_therapy_runs_to_the_next_progression_or_death(restart):
    """Ends (weeks): 5.9 censored (CR, last seen), 6 PD, 8 death, 10 progression and 10 censored, 12, 30.
    KM: 5/6 after 6 weeks, 4/6 after 8, exactly 1/2 after 10, 1/4 after 12: the median is the midpoint of the
    flat stretch at 0.5, 11 weeks (R's quantile.survfit)."""
    stop = restart[0].loc["stop"]
    assert (stop["time_on_therapy_n"], stop["time_on_therapy_events"]) == (7, 5)
    assert stop["time_on_therapy_median"] == pytest.approx(11 * WEEK / DAYS_PER_MONTH)


def test_the_table_follows_its_contract_and_summary_json_repeats_it(restart):
    table, summary, _notes = restart
    assert ["cohort", *table.columns] == columns_of("restart")
    assert summary["stop"]["clinical_benefit"] == 2 and set(summary) == {"continue", "stop"}


def test_without_the_restart_columns_the_analysis_is_skipped_with_a_note():
    notes = Notes()
    table, summary = restart_benefit(PATIENTS.drop(columns=["restart_progression_date"]), notes)
    assert table.empty and table.columns.tolist() == columns_of("restart") and summary == {}
    assert notes == [
        "the clinical sheet has no restart_progression_date column(s): clinical benefit after restart not derived"
    ]


def test_a_follow_up_date_before_the_restart_gives_no_time_on_therapy():
    notes = Notes()
    broken = pd.DataFrame([patient("odd", response="PR", last_seen=-5)])
    table, _summary = restart_benefit(broken, notes)
    row = table.iloc[0]
    assert row["clinical_benefit"] == 1 and row["time_on_therapy_n"] == 0
    assert np.isnan(row["time_on_therapy_median"])
    assert any("without a usable time on restarted therapy" in note for note in notes)
