"""The survival models, read as a specification, and their agreement with R's survival package.

- hand-checkable behavior: KM medians on a plateau, the Simon designs of the literature, landmark status,
  the 1-year outcome of censored patients;
- thin trial data (one group, a group without events, no events, missing covariates) gives notes, not crashes;
- a cross-check against Rscript + survival on a synthetic trial written by mrdtrack and on two datasets shipped
  with R (rotterdam: baseline Cox and KM; heart: time-varying Cox). The trial's figures are compared as the
  workflow writes them: the survival rule's script writes its tables, the tests read them back. Agreement is
  required to 1e-9 relative.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import runpy
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from mrdtrack.outcomes import (
    SURVIVAL_TABLES,
    ClinicalSettings,
    PredictionSettings,
    SurvivalSettings,
    run_clinical,
    run_survival,
)
from mrdtrack.outcomes.cox import CoxSpec, fit_cox
from mrdtrack.outcomes.km import km_median, km_table, logrank
from mrdtrack.outcomes.landmark import landmark_data
from mrdtrack.outcomes.prediction import horizon_outcome, rank_auc
from mrdtrack.outcomes.simon import reject_probability, simon_decision, simon_designs
from mrdtrack.outcomes.time_varying import with_ever_positive
from mrdtrack.tables import read_tsv, write_json, write_tsv

R_SCRIPT = Path(__file__).parent / "r" / "crosscheck.R"
RTOL = 1e-9
FAST = {"prediction": {"n_repeats": 3, "n_bootstrap": 200}}


# --- data ------------------------------------------------------------------------------------------------------


def synthetic_trial(n: int = 80, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Calls and clinical sheet of a two-cohort trial: MRD-positive patients progress sooner; follow-up in
    whole days, so event times tie; a few indeterminate samples and missing covariates."""
    rng = np.random.default_rng(seed)
    clinical, calls = [], []
    for i in range(n):
        patient, cohort = f"P{i:03d}", "stop" if i % 3 else "continue"
        enrolled = dt.date(2023, 4, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
        positive, age = rng.random() < 0.3, int(rng.integers(40, 80))
        rate = 0.03 * (2.5 if positive else 1) * (1.8 if cohort == "stop" else 1)
        event_day, censor_day = rng.exponential(30.4375 / rate), rng.uniform(300, 1100)
        days, event = int(max(1, min(event_day, censor_day))), int(event_day <= censor_day)
        clinical.append(
            {
                "patient_id": patient,
                "cohort": cohort,
                "enrollment_date": enrolled.isoformat(),
                "pfs_event": event,
                "pfs_date": (enrolled + dt.timedelta(days=days)).isoformat(),
                "os_event": int(rng.random() < 0.2),
                "os_date": (enrolled + dt.timedelta(days=days + int(rng.integers(0, 400)))).isoformat(),
                "age": age,
                "hr_positive": int(rng.integers(0, 2)) if rng.random() > 0.05 else None,
                "restart_benefit": int(rng.random() < 0.6) if event and cohort == "stop" else None,
            }
        )
        # Follow-up draws every 90 days, give or take 11 (so some fall just after a landmark).
        follow_up = [visit + (7 * k) % 23 - 11 for k, visit in enumerate(range(90, days + 200, 90))]
        for k, day in enumerate([int(rng.integers(-20, 5)), *follow_up]):
            late = event and day > days - 150 and rng.random() < 0.7
            status = "positive" if positive or late or rng.random() < 0.05 else "negative"
            tf = 10 ** rng.uniform(-3.5, -2) if status == "positive" else 0.0
            calls.append(
                {
                    "sample_id": f"{patient}_{k}",
                    "patient_id": patient,
                    "collection_date": (enrolled + dt.timedelta(days=day)).isoformat(),
                    "mrd_status": "indeterminate" if rng.random() < 0.05 else status,
                    "tumor_fraction": tf,
                    "lod95": 1e-4 * rng.uniform(0.5, 2),
                }
            )
    return pd.DataFrame(calls), with_restarts(pd.DataFrame(clinical), seed)


def with_restarts(clinical: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Most stop-cohort patients who progressed restart therapy 0-35 days later (never after their last
    follow-up), with a best response and, for some, a next progression before the last follow-up. A generator
    of its own, so the rest of the trial is the same with or without these columns."""
    rng = np.random.default_rng([seed, 1])
    columns = {"restart_date": [], "restart_best_response": [], "restart_progression_date": []}
    for row in clinical.itertuples():
        progressed, last = dt.date.fromisoformat(row.pfs_date), dt.date.fromisoformat(row.os_date)
        if row.cohort != "stop" or not row.pfs_event or rng.random() < 0.15:
            values = ["", "", ""]
        else:
            restart = min(progressed + dt.timedelta(days=int(rng.integers(0, 36))), last)
            response = str(rng.choice(["CR", "PR", "SD", "SD", "PD", "NE", ""]))
            gap = (last - restart).days
            next_day = int(rng.integers(0, gap + 1)) if gap and rng.random() < 0.6 else None
            next_pd = "" if next_day is None else (restart + dt.timedelta(days=next_day)).isoformat()
            values = [restart.isoformat(), response, next_pd]
        for column, value in zip(columns, values, strict=True):
            columns[column].append(value)
    return clinical.assign(**columns)


def survival_rule_outputs() -> dict[str, str]:
    """Output name -> file name of the `survival` rule, as workflow/rules/clinical.smk declares them."""
    rule = (REPO / "workflow/rules/clinical.smk").read_text().split("rule survival:")[1].split("    log:")[0]
    return dict(re.findall(r'(\w+)=(?:report\(\s*)?"results/survival/([\w.]+)"', rule))


def run_survival_script(folder: Path, settings: dict) -> SimpleNamespace:
    """The survival rule's script on folder/patients.tsv and counting_process.tsv; outputs in folder/survival."""
    outputs = {name: str(folder / "survival" / file) for name, file in survival_rule_outputs().items()}
    snakemake = SimpleNamespace(
        input=SimpleNamespace(
            patients=str(folder / "patients.tsv"), counting_process=str(folder / "counting_process.tsv")
        ),
        params=SimpleNamespace(settings=settings),
        output=SimpleNamespace(**outputs),
        log=[str(folder / "survival.log")],
    )
    runpy.run_path(str(REPO / "workflow/scripts/survival.py"), init_globals={"snakemake": snakemake})
    tables = {name: read_tsv(outputs[name], dtype={"patient_id": str}) for name in SURVIVAL_TABLES}
    return SimpleNamespace(**tables, summary=json.loads(Path(outputs["summary"]).read_text()))


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> SimpleNamespace:
    """The synthetic trial through the clinical step and the survival rule's script: every table written and
    read back exactly as the workflow does."""
    folder = tmp_path_factory.mktemp("trial")
    calls, clinical = synthetic_trial()
    tables = run_clinical(calls, clinical, ClinicalSettings())
    write_tsv(tables.patients, folder / "patients.tsv")
    write_tsv(tables.counting_process, folder / "counting_process.tsv")
    return SimpleNamespace(
        folder=folder,
        patients=read_tsv(folder / "patients.tsv", dtype={"patient_id": str}),
        counting=read_tsv(folder / "counting_process.tsv", dtype={"patient_id": str}),
        results=run_survival_script(folder, {"covariates": ["age", "hr_positive"]}),
    )


def patients_table(*rows: tuple, **extra: list) -> pd.DataFrame:
    """Rows of (patient_id, cohort, pfs_months, pfs_event, baseline_status)."""
    frame = pd.DataFrame(rows, columns=["patient_id", "cohort", "pfs_months", "pfs_event", "baseline_status"])
    frame["baseline_mrd_positive"] = frame["baseline_status"].map({"positive": 1, "negative": 0})
    frame["baseline_log10_tf"] = np.where(frame["baseline_status"] == "positive", -2.5, -4.3)
    frame["os_months"], frame["os_event"] = frame["pfs_months"] + 6, 0
    frame["enrollment_date"] = "2023-05-01"
    frame["lead_time_months"] = np.nan
    return frame.assign(**extra)


def counting_from(patients: pd.DataFrame) -> pd.DataFrame:
    """One row per patient carrying the baseline status through follow-up."""
    return pd.DataFrame(
        {
            "patient_id": patients["patient_id"],
            "cohort": patients["cohort"],
            "start": 0.0,
            "stop": patients["pfs_months"],
            "event": patients["pfs_event"],
            "mrd_status": patients["baseline_status"],
            "mrd_positive": patients["baseline_mrd_positive"],
            "log10_tf": patients["baseline_log10_tf"],
            "sample_id": "s",
        }
    )


# --- Kaplan-Meier ----------------------------------------------------------------------------------------------


def test_km_median_on_an_exact_half_plateau_is_its_midpoint_as_in_r():
    # 4 of 8 progress at months 1-4, the others are censored at 5-8: S = 0.5 from month 4 to the end.
    table = km_table(pd.Series([1, 2, 3, 4, 5, 6, 7, 8.0]), pd.Series([1, 1, 1, 1, 0, 0, 0, 0]))
    assert table["survival"].iloc[-1] == 0.5
    assert km_median(table, "log").median == 6.0  # (4 + last time 8) / 2, as quantile.survfit
    two = km_table(pd.Series([1, 2, 3, 4.0]), pd.Series([1, 1, 0, 0]))
    assert km_median(two, "log").median == 3.0  # S = 0.5 on [2, 3): midpoint of 2 and 3... R says 3
    assert km_median(two, "log").low == 1.0 and np.isnan(km_median(two, "log").high)


def test_km_table_starts_at_time_zero_and_counts_the_risk_set():
    table = km_table(pd.Series([2, 2, 3, 5.0]), pd.Series([1, 0, 1, 0]))
    assert table["time"].tolist() == [0, 2, 3, 5]
    assert table["at_risk"].tolist() == [4, 4, 2, 1]
    assert table["censored"].tolist() == [0, 1, 0, 1]
    np.testing.assert_allclose(table["survival"], [1, 0.75, 0.375, 0.375])
    # Greenwood: sqrt(1/(4*3)) then sqrt(1/12 + 1/(2*1))
    np.testing.assert_allclose(table["std_err"].iloc[1:3], [np.sqrt(1 / 12), np.sqrt(1 / 12 + 1 / 2)])


def test_before_the_first_event_both_intervals_are_one_to_one():
    # Censored at 1 and 2 before the first event at 3: S = 1 with a zero standard error (R's survival >= 3.8-4).
    table = km_table(pd.Series([1, 2, 3, 4.0]), pd.Series([0, 0, 1, 0]))
    before = table[table["time"] < 3]
    assert len(before) == 3  # the start row and the two censorings
    for column in ("ci_low_log", "ci_high_log", "ci_low_loglog", "ci_high_loglog"):
        assert (before[column] == 1).all(), column
    assert table["ci_low_loglog"].iloc[-1] < table["survival"].iloc[-1] < 1


def test_logrank_expected_events_share_each_death_by_the_risk_set():
    frame = pd.DataFrame({"t": [1.0, 3.0, 2.0, 4.0], "e": [1, 1, 1, 0], "g": ["a", "a", "b", "b"]})
    result = logrank(frame, "t", "e", "g", ("a", "b"))
    # deaths at 1 (a has 2 of 4 at risk), 2 (1 of 3), 3 (1 of 2): E_a = 1/2 + 1/3 + 1/2
    np.testing.assert_allclose(result["expected"], [4 / 3, 3 - 4 / 3], rtol=1e-12)
    assert result["events"] == [2, 1]


def test_score_test_of_one_binary_term_is_the_logrank_test_without_ties():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"t": rng.permutation(40) + 1.0, "e": rng.integers(0, 2, 40), "x": np.repeat([0, 1], 20)}
    )
    result = fit_cox(frame, CoxSpec(covariates=["x"], duration="t", event="e"))
    chisq = logrank(frame, "t", "e", "x", (0, 1))["chisq"]
    np.testing.assert_allclose(result.score_chisq, chisq, rtol=1e-12)
    assert result.loglik > result.loglik_null
    np.testing.assert_allclose(2 * (result.loglik - result.loglik_null), result.lr_chisq, rtol=1e-9)
    assert result.wald_chisq == pytest.approx((result.terms["coef"] / result.terms["se"]).iloc[0] ** 2)


def test_logrank_reports_rather_than_tests_an_empty_group():
    frame = pd.DataFrame({"t": [1.0, 2.0], "e": [1, 0], "g": ["negative", "negative"]})
    result = logrank(frame, "t", "e", "g", ("positive", "negative"))
    assert result["chisq"] is None and result["note"] == "one group is empty: no comparison"


# --- Simon two-stage -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p0", "p1", "alpha", "power", "optimal", "minimax"),
    [
        (0.05, 0.25, 0.05, 0.80, (0, 9, 2, 17), (0, 12, 2, 16)),  # Simon 1989, Table 1
        (0.10, 0.30, 0.05, 0.80, (1, 10, 5, 29), (1, 15, 5, 25)),
        (0.20, 0.40, 0.05, 0.80, (3, 13, 12, 43), (4, 18, 10, 33)),
    ],
)
def test_simon_designs_reproduce_the_published_table(p0, p1, alpha, power, optimal, minimax):
    designs = simon_designs(p0, p1, alpha, power, nmax=60)
    for name, expected in (("optimal", optimal), ("minimax", minimax)):
        design = designs[name]
        assert (design.r1, design.n1, design.r, design.n) == expected
        assert design.alpha <= alpha and design.power >= power


def test_simon_design_of_stop_her2_meets_its_targets():
    """H0 1-year PFS <= 50%, 80% power at 68%, one-sided alpha 10% (the trial's stated design)."""
    designs = simon_designs(0.5, 0.68, 0.10, 0.80)
    optimal = designs["optimal"]
    assert (optimal.r1, optimal.n1, optimal.r, optimal.n) == (11, 20, 23, 40)
    assert optimal.alpha == pytest.approx(reject_probability(0.5, 11, 20, 23, 40))
    assert optimal.alpha <= 0.10 and optimal.power >= 0.80
    assert designs["minimax"].n <= optimal.n


def test_simon_decision_walks_through_the_stages():
    design = simon_designs(0.05, 0.25, 0.05, 0.80)["optimal"]  # 0/9, 2/17
    assert simon_decision(design, 0, 5, 0, 5).startswith("stage 1 incomplete (5 of 9")
    assert simon_decision(design, 0, 9, 0, 9).startswith("stop after stage 1 for futility")
    assert simon_decision(design, 1, 9, 2, 12).startswith("stage 1 passed")
    assert simon_decision(design, 1, 9, 3, 17).startswith("reject H0")
    assert simon_decision(design, 1, 9, 2, 17).startswith("do not reject H0")


def test_one_year_outcome_leaves_out_patients_censored_before_one_year():
    months = pd.Series([3.0, 14.0, 12.0, 8.0, 12.0])
    events = pd.Series([1, 1, 0, 0, 1])
    # progressed at 3 -> 1; progressed after a year -> 0; censored at exactly 12 -> 0 (followed a year);
    # censored at 8 -> not evaluable; progressed at exactly 12 -> 1
    assert horizon_outcome(months, events, 12).tolist() == [1, 0, 0, pd.NA, 1]


def test_design_counts_censored_patients_as_configured():
    rows = [(f"S{i}", "stop", 15.0, 0, "negative") for i in range(20)]  # 20 free at 1 year
    rows += [(f"E{i}", "stop", 4.0, 1, "positive") for i in range(5)]  # 5 progressions
    rows += [(f"C{i}", "stop", 5.0, 0, "negative") for i in range(5)]  # 5 censored early
    patients = patients_table(*rows)
    summary = run_survival(patients, counting_from(patients), SurvivalSettings.from_config(FAST)).summary
    assert (
        summary["design"]["success_rate"]["n"] == 25 and summary["design"]["success_rate"]["successes"] == 20
    )
    failure = SurvivalSettings.from_config(FAST | {"design_censored": "failure"})
    assert (
        run_survival(patients, counting_from(patients), failure).summary["design"]["success_rate"]["n"] == 30
    )


# --- landmark and prediction -----------------------------------------------------------------------------------


def test_landmark_status_is_the_one_known_at_the_landmark():
    patients = patients_table(("A", "stop", 10.0, 1, "negative"), ("B", "stop", 2.0, 1, "negative"))
    counting = pd.DataFrame(
        {
            "patient_id": ["A", "A", "B"],
            "cohort": "stop",
            "start": [0.0, 4.0, 0.0],
            "stop": [4.0, 10.0, 2.0],
            "event": [0, 1, 1],
            "mrd_positive": [0, 1, 0],
            "sample_id": ["A0", "A1", "B0"],
        }
    )
    at_3 = landmark_data(patients, counting, 3.0)
    assert at_3["patient_id"].tolist() == ["A"]  # B progressed before the landmark
    assert at_3["mrd_positive"].tolist() == [0] and at_3["time"].tolist() == [7.0]  # A turns positive at 4
    at_4 = landmark_data(patients, counting, 4.0)
    assert at_4["mrd_positive"].tolist() == [1]  # a sample on the landmark day counts
    assert at_4["sample_id"].tolist() == ["A1"] and at_4["sample_offset_days"].tolist() == [0.0]


def _counting_rows(*rows: tuple) -> pd.DataFrame:
    """Counting-process rows of one patient 'A' from (start day, mrd_positive or None); PFS at day 400."""
    starts = [day / 30.4375 for day, _ in rows]
    return pd.DataFrame(
        {
            "patient_id": "A",
            "cohort": "stop",
            "start": starts,
            "stop": [*starts[1:], 400 / 30.4375],
            "event": [0] * (len(rows) - 1) + [1],
            "mrd_positive": [status for _, status in rows],
            "sample_id": [f"A_{day}" for day, _ in rows],
        }
    )


def test_closest_sample_within_the_window_may_be_drawn_after_the_landmark():
    patients = patients_table(("A", "stop", 400 / 30.4375, 1, "negative"))
    landmark = 3.0  # 91.3125 days
    # negative at 0, indeterminate at 85, positive at 100: the last sample at or before the landmark is the
    # indeterminate one (status unknown); the closest determinate one is the positive sample 8.69 days later.
    counting = _counting_rows((0, 0), (85, None), (100, 1))
    last = landmark_data(patients, counting, landmark)
    assert last["mrd_positive"].isna().all() and last["sample_id"].tolist() == ["A_85"]
    closest = landmark_data(patients, counting, landmark, window_days=45)
    assert closest["mrd_positive"].tolist() == [1] and closest["sample_offset_days"].tolist() == [8.6875]
    assert landmark_data(patients, counting, landmark, window_days=8)["mrd_positive"].isna().all()


def test_closest_sample_ties_go_to_the_earlier_one():
    patients = patients_table(("A", "stop", 400 / 30.4375, 1, "negative"))
    counting = _counting_rows((0, 0), (81.3125, 0), (101.3125, 1))  # 10 days either side of 91.3125
    closest = landmark_data(patients, counting, 3.0, window_days=45)
    assert closest["mrd_positive"].tolist() == [0] and closest["sample_offset_days"].tolist() == [-10.0]


def test_ever_positive_stays_one_from_the_first_positive_sample_and_never_looks_ahead():
    # unknown before the first sample, negative, positive, indeterminate, negative again
    counting = _counting_rows((0, None), (30, 0), (90, 1), (180, None), (270, 0))
    ever = with_ever_positive(counting)["ever_positive"]
    np.testing.assert_array_equal(ever, [np.nan, 0, 1, 1, 1])
    shuffled = counting.sample(frac=1, random_state=1)  # row order does not matter, only the dates
    assert with_ever_positive(shuffled)["ever_positive"].sort_index().equals(ever)
    still_negative = with_ever_positive(_counting_rows((0, 0), (90, None)))["ever_positive"]
    np.testing.assert_array_equal(still_negative, [0, 0])  # tested negative, no positive sample yet


def test_rank_auc_equals_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(5, 12)).astype(float)  # many ties
    y = np.array([1] * 5 + [0] * 7)
    np.testing.assert_allclose(rank_auc(scores, 5), [roc_auc_score(y, s) for s in scores])


def test_prediction_is_cross_validated_and_says_so(trial):
    prediction = trial.results.prediction.set_index("model")
    assert set(prediction.index) == {"mrd_status", "mrd_status_tf", "mrd_status_tf_covariates"}
    row = prediction.loc["mrd_status_tf"]
    assert row["n_splits"] == 5 and row["n_repeats"] == 20
    assert row["auc_ci_low"] < row["auc"] < row["auc_ci_high"]
    assert row["auc_repeat_min"] <= row["auc"] <= row["auc_repeat_max"]


def test_prediction_with_too_few_events_gives_a_note_not_a_number():
    patients = patients_table(
        *[(f"P{i}", "stop", 20.0 if i else 3.0, int(i == 0), "negative") for i in range(12)]
    )
    patients.loc[:5, "baseline_status"] = "positive"
    patients["baseline_mrd_positive"] = (patients["baseline_status"] == "positive").astype(int)
    results = run_survival(patients, counting_from(patients), SurvivalSettings.from_config(FAST))
    row = results.prediction.iloc[0]
    assert pd.isna(row["auc"]) and row["note"].startswith(
        "too few patients in the smaller outcome class (1 < 5)"
    )
    assert any(n.startswith("prediction: too few") for n in results.summary["notes"])


# --- thin data -------------------------------------------------------------------------------------------------

SUMMARY_KEYS = {
    "n_patients", "n_events", "n_without_baseline", "logrank", "cox", "landmarks", "time_varying", "lead_time",
    "endpoints", "design", "prediction", "notes", "os", "rmst", "follow_up", "safe_to_stop", "restart",
}  # fmt: skip


def run_thin(patients: pd.DataFrame, tmp_path: Path, **config) -> SimpleNamespace:
    settings = SurvivalSettings.from_config(FAST | config)
    results = run_survival(patients, counting_from(patients), settings)
    write_json(results.summary, tmp_path / "summary.json")  # refuses NaN: every missing figure is null
    assert set(results.summary) >= SUMMARY_KEYS
    return results


def test_a_group_without_events_gives_the_firth_hazard_ratio_and_says_why(tmp_path):
    rows = [(f"N{i}", "stop", 5.0 + i, 1, "negative") for i in range(6)]
    rows += [(f"P{i}", "stop", 20.0 + i, 0, "positive") for i in range(4)]
    results = run_thin(patients_table(*rows), tmp_path)
    row = results.cox.query("model == 'baseline_unadjusted' and cohort == 'stop'").iloc[0]
    # The ordinary hazard ratio is 0 (infinite log); the penalized one is finite, with profile limits.
    assert row["method"] == "firth" and 0 < row["hr_ci_low"] < row["hr"] < min(row["hr_ci_high"], 1)
    assert row["note"].startswith("Firth-penalized Cox") and "no events when mrd_positive = 1" in row["note"]
    assert pd.isna(row["ph_p"])  # no proportional-hazards test of a penalized fit
    assert results.summary["logrank"]["overall"]["p"] < 0.05  # the log-rank test still compares them


def test_one_group_only_and_no_events(tmp_path):
    rows = [(f"N{i}", "continue", 13.0, 0, "negative") for i in range(5)]
    results = run_thin(patients_table(*rows), tmp_path)
    assert results.summary["logrank"]["overall"]["note"] == "one group is empty: no comparison"
    assert results.summary["n_events"] == 0
    assert set(results.cox["note"]) <= {"no events", "no complete rows"}
    assert results.cox["hr"].isna().all()
    pfs = results.endpoints.query("endpoint == 'pfs_1y' and cohort == 'continue'").iloc[0]
    # No event: S = 1 with a zero standard error, so the log-log CI is 1 to 1 (R's survival >= 3.8-4).
    assert (pfs["estimate"], pfs["ci_low"], pfs["ci_high"]) == (1.0, 1.0, 1.0)


def test_patients_without_baseline_or_with_indeterminate_baseline_are_counted_not_compared(tmp_path):
    rows = [
        ("A", "stop", 3.0, 1, "positive"),
        ("B", "stop", 9.0, 1, "negative"),
        ("C", "stop", 12.0, 0, "negative"),
    ]
    rows += [("D", "stop", 4.0, 1, "indeterminate"), ("E", "stop", 6.0, 1, None)]
    results = run_thin(patients_table(*rows), tmp_path)
    summary = results.summary
    assert summary["n_without_baseline"] == 1 and summary["n_indeterminate_baseline"] == 1
    assert summary["logrank"]["overall"]["n"] == [1, 2]
    groups = set(results.km_summary.query("cohort == 'all'")["group"])
    assert groups == {"all", "positive", "negative", "indeterminate"}
    assert results.km_summary.query("group == 'all' and cohort == 'all'")["n"].iloc[0] == 5


def test_missing_and_text_covariates(tmp_path):
    rows = [(f"P{i}", "stop", 2.0 + i, i % 2, "positive" if i % 3 else "negative") for i in range(12)]
    patients = patients_table(*rows, site=["a", "b", "c"] * 4, age=[50.0, None] + [60.0] * 10)
    results = run_thin(patients, tmp_path, covariates=["age", "site", "not_a_column"])
    terms = set(results.cox.query("model == 'baseline_adjusted'")["term"])
    assert terms == {"mrd_positive", "age", "site[b]", "site[c]"}
    notes = "\n".join(results.summary["notes"])
    assert "covariate 'not_a_column' is not in the patients table: ignored" in notes
    assert (
        "baseline_adjusted (all): 1 patient(s) with a missing covariate left out" in notes
        or "events per variable" in notes
    )


def test_summary_and_tables_of_the_trial(trial):
    summary = trial.results.summary
    assert set(summary) >= SUMMARY_KEYS
    assert summary["n_patients"] == 80
    landmarks = summary["landmarks"].values()
    assert all(at["closest"]["window_days"] == 45 for at in landmarks)
    assert all("information from the future" in at["closest"]["caveat"] for at in landmarks)
    assert sum(at["closest"]["n_status_after_landmark"] for at in landmarks) > 0  # the variant looks ahead
    assert sum(at["n_status_after_landmark"] for at in landmarks) == 0  # the primary rule never does
    assert set(summary["lead_time"]) == {"all", "continue", "stop"}
    assert set(trial.results.endpoints["endpoint"]) == {"pfs_1y", "os_3y", "restart_clinical_benefit"}
    design = trial.results.design.set_index("design")
    assert (
        design.loc["optimal", "selected"]
        and (design.loc["optimal", ["r1", "n1", "r", "n"]] == [11, 20, 23, 40]).all()
    )
    models = set(trial.results.cox["model"])
    assert models == {
        "baseline_unadjusted", "baseline_adjusted", "os_baseline_unadjusted", "os_baseline_adjusted",
        "landmark_3m", "landmark_6m", "landmark_12m",
        "landmark_3m_closest", "landmark_6m_closest", "landmark_12m_closest", "time_varying_status",
        "time_varying_log10_tf", "time_varying_status_adjusted", "time_varying_ever_positive",
        "time_varying_ever_positive_adjusted",
    }  # fmt: skip
    adjusted = trial.results.cox.query("model == 'time_varying_status_adjusted' and cohort == 'all'")
    assert adjusted["term"].tolist() == ["mrd_positive", "age", "hr_positive"]


def test_landmark_data_has_one_row_per_patient_still_at_risk_at_each_landmark(trial):
    table = trial.results.landmark_data
    patients = trial.patients
    for landmark in (3, 6, 12):
        rows = table[table["landmark_months"] == landmark].set_index("patient_id")
        at_risk = patients[patients["pfs_months"] > landmark].set_index("patient_id")
        assert sorted(rows.index) == sorted(at_risk.index)
        np.testing.assert_allclose(
            rows["time_from_landmark"], at_risk.loc[rows.index, "pfs_months"] - landmark
        )
        assert (rows["sample_offset_days"].dropna() <= 0).all()  # the primary rule never looks ahead
        assert (rows["closest_offset_days"].dropna().abs() <= 45).all()
        assert set(rows["status"].fillna("")) <= {"positive", "negative", ""}


def test_settings_defaults_and_validation():
    settings = SurvivalSettings.from_config({})
    assert settings.landmarks_months == (3.0, 6.0, 12.0) and settings.timepoints_months == (6.0, 12.0, 24.0)
    assert settings.landmark_closest_window_days == 45
    with pytest.raises(Exception, match="landmark_closest_window_days: -1 is less than the minimum of 0"):
        SurvivalSettings.from_config({"landmark_closest_window_days": -1})
    assert (settings.p0, settings.p1, settings.alpha, settings.power) == (0.5, 0.68, 0.1, 0.8)
    assert settings.prediction == PredictionSettings()
    assert SurvivalSettings.from_config({"prediction": {"n_repeats": 2}}).prediction.n_repeats == 2
    with pytest.raises(Exception, match="survival.design: .best. is not one of"):
        SurvivalSettings.from_config({"design": "best"})


def test_the_survival_rule_declares_every_file_its_script_writes(trial):
    outputs = survival_rule_outputs()
    assert set(outputs) == {*SURVIVAL_TABLES, "summary", "settings"}
    assert {p.name for p in (trial.folder / "survival").iterdir()} == set(outputs.values())
    assert trial.results.km_curves.columns[:4].tolist() == ["analysis", "cohort", "group", "time"]


def test_every_survival_column_is_documented(trial):
    docs = (REPO / "docs/tables.md").read_text().split("## results/survival/")[1]
    for name in SURVIVAL_TABLES:
        undocumented = [
            c for c in getattr(trial.results, name).columns if not re.search(rf"\b{re.escape(c)}\b", docs)
        ]
        assert undocumented == [], f"{name}: {undocumented}"


# --- agreement with R ------------------------------------------------------------------------------------------

R_TABLES = (
    "km_curves",
    "km_times",
    "km_medians",
    "logrank",
    "cox",
    "zph",
    "landmark_data",
    "rotterdam",
    "heart",
    "safe_to_stop",
    "safe_to_stop_accuracy",
    "rmst",
    "followup",
    "restart",
)
LANDMARK_MODELS = {  # (landmark, status rule) -> model name, in cox.tsv and in crosscheck.R
    (landmark, rule): f"landmark_{landmark}m" + ("_closest" if rule == "closest_within_window" else "")
    for landmark in (3, 6, 12)
    for rule in ("last_at_or_before", "closest_within_window")
}


@pytest.fixture(scope="module")
def r_reference(trial) -> dict[str, pd.DataFrame]:
    """R's figures, from one Rscript run on the trial's clinical tables (and R's own datasets)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript is not installed (apt-get install r-base-core); the R cross-check needs it")
    check = subprocess.run([rscript, "-e", "library(survival)"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip("R package 'survival' is not installed (install.packages('survival'))")
    subprocess.run([rscript, str(R_SCRIPT), str(trial.folder)], check=True, capture_output=True, text=True)
    return {
        name: pd.read_csv(trial.folder / f"{name}.tsv", sep="\t", dtype={"patient_id": str, "group": str})
        for name in R_TABLES
    }


def assert_close(actual, expected, what: str) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, float),
        np.asarray(expected, float),
        rtol=RTOL,
        atol=0,
        equal_nan=True,
        err_msg=what,
    )


def assert_figure_close(name: str, actual, expected, what: str) -> None:
    """A figure to RTOL; a p-value far in the tail (< 1e-12) on the -log scale, because there a relative
    difference of 1e-12 in the statistic (convergence noise) is amplified about z^2 / 2-fold in p."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    if name.endswith("_p") or name.startswith("p_"):
        tail = expected < 1e-12
        actual, expected = (
            np.where(tail, -np.log(actual), actual),
            np.where(tail, -np.log(expected), expected),
        )
    assert_close(actual, expected, what)


def _trial_group(trial, group: str) -> pd.DataFrame:
    return trial.patients[trial.patients["baseline_status"] == group]


def _r_rows(table: pd.DataFrame, dataset: str, group: str, conf: str) -> pd.DataFrame:
    return table[
        (table["dataset"] == dataset) & (table["group"].astype(str) == group) & (table["conf"] == conf)
    ]


@pytest.mark.external
def test_km_curves_and_both_ci_types_match_r(trial, r_reference):
    curves = r_reference["km_curves"]
    rotterdam = r_reference["rotterdam"]
    data = {
        ("trial", g): (_trial_group(trial, g)["pfs_months"], _trial_group(trial, g)["pfs_event"])
        for g in ("positive", "negative")
    } | {
        ("rotterdam", str(g)): (
            rotterdam.query(f"hormon == {g}")["rtime"],
            rotterdam.query(f"hormon == {g}")["recur"],
        )
        for g in (0, 1)
    }
    for (dataset, group), (durations, events) in data.items():
        table = km_table(durations, events).iloc[1:]  # R's curve has no start row
        for conf, suffix in (("log", "log"), ("log-log", "loglog")):
            r = _r_rows(curves, dataset, group, conf)
            what = f"{dataset} {group} {conf}"
            assert_close(table["time"], r["time"], what + " time")
            assert_close(table["at_risk"], r["n_risk"], what + " n.risk")
            assert_close(table["survival"], r["surv"], what + " surv")
            assert_close(table["std_err"], r["std_err"], what + " std.err")
            assert_close(table[f"ci_low_{suffix}"], r["lower"], what + " lower")
            assert_close(table[f"ci_high_{suffix}"], r["upper"], what + " upper")


def assert_curve_matches_r(ours: pd.DataFrame, r: pd.DataFrame, what: str) -> None:
    """A curve of km_curves.tsv (log-log CI, the default curve_ci) against R's survfit of the same patients."""
    observed = ours.iloc[1:]  # R's curve has no start row
    for mine, theirs in [("time", "time"), ("survival", "surv"), ("at_risk", "n_risk")]:
        assert_close(observed[mine], r[theirs], f"{what} {mine}")
    assert_close(observed["ci_low"], r["lower"], f"{what} lower")
    assert_close(observed["ci_high"], r["upper"], f"{what} upper")


def assert_km_summary_matches_r(ours: pd.DataFrame, r_reference: dict, dataset: str, group: str, what: str):
    """Rows of km_summary.tsv (one curve, indexed by timepoint) against R's summary(survfit) and quantile."""
    for conf, suffix in (("log", "log"), ("log-log", "loglog")):
        times = _r_rows(r_reference["km_times"], dataset, group, conf)
        mine = ours.loc[times["time"]]
        assert_close(mine["survival"], times["surv"], f"{what} S(t)")
        assert_close(mine["survival_std_err"], times["surv_std_err"], f"{what} SE of S(t)")
        assert_close(mine[f"ci_low_{suffix}"], times["lower"], f"{what} {conf} lower")
        assert_close(mine[f"ci_high_{suffix}"], times["upper"], f"{what} {conf} upper")
        assert_close(mine["at_risk"], times["n_risk"], f"{what} at risk")
        median = _r_rows(r_reference["km_medians"], dataset, group, conf)
        row = ours.iloc[0]
        assert_close(row["median"], median["median"], f"{what} median")
        assert_close(row[f"median_ci_low_{suffix}"], median["lower"], f"{what} median {conf} lower")
        assert_close(row[f"median_ci_high_{suffix}"], median["upper"], f"{what} median {conf} upper")


@pytest.mark.external
def test_km_tables_of_the_pipeline_match_r(trial, r_reference):
    """km_curves.tsv and km_summary.tsv as written: curves, S(t), its SE, both CIs, at risk, medians."""
    curves = trial.results.km_curves.query("analysis == 'overall' and cohort == 'all'")
    summary = trial.results.km_summary.query("analysis == 'overall' and cohort == 'all'")
    for group in ("positive", "negative"):
        r_curve = _r_rows(r_reference["km_curves"], "trial", group, "log-log")
        assert_curve_matches_r(curves[curves["group"] == group], r_curve, f"{group} curve")
        ours = summary[summary["group"] == group].set_index("timepoint_months")
        assert_km_summary_matches_r(ours, r_reference, "trial", group, group)


@pytest.mark.external
def test_os_km_tables_match_r(trial, r_reference):
    """os_km_curves.tsv and os_km_summary.tsv: overall survival by baseline status."""
    curves = trial.results.os_km_curves.query("analysis == 'overall' and cohort == 'all'")
    summary = trial.results.os_km_summary.query("analysis == 'overall' and cohort == 'all'")
    for group in ("positive", "negative"):
        r_curve = _r_rows(r_reference["km_curves"], "os_trial", group, "log-log")
        assert_curve_matches_r(curves[curves["group"] == group], r_curve, f"OS {group} curve")
        ours = summary[summary["group"] == group].set_index("timepoint_months")
        assert_km_summary_matches_r(ours, r_reference, "os_trial", group, f"OS {group}")
    assert summary["events"].sum() > 0


@pytest.mark.external
def test_km_inside_landmark_groups_match_r(trial, r_reference):
    """landmark_km_curves.tsv and landmark_km_summary.tsv (time from the landmark) for both status rules."""
    curves = trial.results.landmark_km_curves.query("analysis == 'overall' and cohort == 'all'")
    summary = trial.results.landmark_km_summary.query("analysis == 'overall' and cohort == 'all'")
    for (landmark, rule), model in LANDMARK_MODELS.items():
        for group in ("positive", "negative", "all"):
            key = f"landmark_months == {landmark} and status_rule == '{rule}' and group == '{group}'"
            r_curve = _r_rows(r_reference["km_curves"], model, group, "log-log")
            assert_curve_matches_r(curves.query(key), r_curve, f"{model} {group} curve")
            ours = summary.query(key).set_index("timepoint_months")
            assert_km_summary_matches_r(ours, r_reference, model, group, f"{model} {group}")


@pytest.mark.external
def test_logrank_statistic_observed_and_expected_events_match_r(trial, r_reference):
    r = r_reference["logrank"].set_index(["dataset", "group"])

    def check(result: dict, dataset: str, r_groups: tuple[str, str]) -> None:
        assert_close(result["chisq"], r.loc[(dataset, r_groups[0]), "chisq"], f"{dataset} log-rank")
        expected = [r.loc[(dataset, g), "expected"] for g in r_groups]
        observed = [r.loc[(dataset, g), "observed"] for g in r_groups]
        assert_close(result["expected"], expected, f"{dataset} expected events")
        assert_close(result["events"], observed, f"{dataset} observed events")

    summary = trial.results.summary
    check(summary["logrank"]["overall"], "trial", ("1", "0"))  # groups (positive, negative)
    check(summary["logrank"]["stratified"], "trial_stratified", ("1", "0"))
    check(summary["os"]["logrank"]["overall"], "os_trial", ("1", "0"))
    for (landmark, rule), model in LANDMARK_MODELS.items():
        at_landmark = summary["landmarks"][str(landmark)]
        check(
            (at_landmark if rule == "last_at_or_before" else at_landmark["closest"])["logrank"],
            model,
            ("1", "0"),
        )
    check(logrank(r_reference["rotterdam"], "rtime", "recur", "hormon", (0, 1)), "rotterdam", ("0", "1"))


@pytest.mark.external
def test_landmark_data_sets_match_r(trial, r_reference):
    """landmark_data.tsv against the landmark data sets R builds from the same clinical tables."""
    ours = trial.results.landmark_data
    status_codes = {"positive": 1.0, "negative": 0.0}
    for (landmark, rule), model in LANDMARK_MODELS.items():
        r = r_reference["landmark_data"].query(f"landmark_months == {landmark} and status_rule == '{rule}'")
        r = r.set_index("patient_id").sort_index()
        mine = ours[ours["landmark_months"] == landmark].set_index("patient_id").sort_index()
        assert mine.index.tolist() == r.index.tolist(), model
        assert_close(mine["time_from_landmark"], r["time"], f"{model} time from landmark")
        status, offset = (
            ("status", "sample_offset_days")
            if rule == "last_at_or_before"
            else ("closest_status", "closest_offset_days")
        )
        assert_close(mine[status].map(status_codes), r["mrd_positive"], f"{model} status")
        known = r["mrd_positive"].notna()
        assert_close(mine.loc[known, offset], r.loc[known, "offset"], f"{model} sample offset")


COX_CHECKS = {  # our (model, cohort) -> R model
    ("baseline_unadjusted", "all"): "baseline_unadjusted",
    ("baseline_unadjusted", "stop"): "baseline_unadjusted_stop",
    ("baseline_adjusted", "all"): "baseline_adjusted",
    ("os_baseline_unadjusted", "all"): "os_baseline_unadjusted",
    ("os_baseline_unadjusted", "stop"): "os_baseline_unadjusted_stop",
    ("os_baseline_adjusted", "all"): "os_baseline_adjusted",
    ("time_varying_status", "all"): "time_varying_status",
    ("time_varying_log10_tf", "all"): "time_varying_log10_tf",
    ("time_varying_status_adjusted", "all"): "time_varying_status_adjusted",
    ("time_varying_ever_positive", "all"): "time_varying_ever_positive",
    ("time_varying_ever_positive_adjusted", "all"): "time_varying_ever_positive_adjusted",
} | {(model, "all"): model for model in LANDMARK_MODELS.values()}
TERM_FIGURES = {  # cox.tsv column -> crosscheck.R column, per term
    "coef": "coef", "se": "se", "hr": "hr", "hr_ci_low": "lower", "hr_ci_high": "upper", "p_wald": "p_wald",
    "p_lr": "p_lr",
}  # fmt: skip
MODEL_TESTS = {  # cox.tsv column -> crosscheck.R column: what R's summary(coxph) prints, and fit$loglik
    "model_df": "df", "model_lr_chisq": "lr", "model_lr_p": "lr_p", "model_wald_chisq": "wald",
    "model_wald_p": "wald_p", "model_score_chisq": "score", "model_score_p": "score_p",
    "loglik_null": "loglik_null", "loglik": "loglik", "concordance": "concordance",
    "concordance_se": "concordance_se",
}  # fmt: skip


@pytest.mark.external
def test_cox_models_of_the_pipeline_match_r(trial, r_reference):
    """cox.tsv as written, stratified by cohort when pooled, Efron ties: HR, CI, Wald and LR p, the model tests
    and log-likelihoods, concordance (time-varying models included), cox.zph."""
    cox, zph = r_reference["cox"], r_reference["zph"]
    for (model, cohort), r_model in COX_CHECKS.items():
        ours = trial.results.cox.query(f"model == '{model}' and cohort == '{cohort}'").set_index("term")
        r = cox.query(f"dataset == 'trial' and model == '{r_model}'").set_index("term")
        assert ours.index.tolist() == r.index.tolist(), model
        assert (ours["method"] == "cox").all(), model  # R's coxph: the ordinary fit
        assert ours["events"].iloc[0] == r["events"].iloc[0], model
        if not model.startswith("time_varying"):  # R counts rows there, we count patients
            assert ours["n"].iloc[0] == r["n"].iloc[0], model
        for mine, theirs in TERM_FIGURES.items():
            assert_figure_close(mine, ours[mine], r[theirs], f"{model} {mine}")
        for mine, theirs in MODEL_TESTS.items():
            assert_figure_close(mine, ours[mine], r[theirs], f"{model} {mine}")
        r_zph = zph.query(f"dataset == 'trial' and model == '{r_model}'").set_index("term")
        assert_close(ours["ph_chisq"], r_zph.loc[ours.index, "chisq"], f"{model} cox.zph chisq")
        assert_figure_close("ph_p", ours["ph_p"], r_zph.loc[ours.index, "p"], f"{model} cox.zph p")
        global_test = _fit_summary(trial.results.summary, model, cohort)["ph_global"]
        assert_close(global_test["chisq"], r_zph.loc["GLOBAL", "chisq"], f"{model} cox.zph GLOBAL")


def _fit_summary(summary: dict, model: str, cohort: str) -> dict:
    if model in summary["cox"]:
        return summary["cox"][model][cohort]
    if model in summary["time_varying"]:
        return summary["time_varying"][model]["fits"][cohort]
    landmark = re.match(r"landmark_(\d+)m", model).group(1)
    at_landmark = summary["landmarks"][landmark]
    return (at_landmark["closest"] if model.endswith("_closest") else at_landmark)["cox"][cohort]


def test_cox_model_tests_in_summary_json_are_the_tables(trial):
    fit = trial.results.summary["time_varying"]["time_varying_status_adjusted"]["fits"]["all"]
    row = trial.results.cox.query("model == 'time_varying_status_adjusted' and cohort == 'all'").iloc[0]
    for key, column in [
        ("wald_chisq", "model_wald_chisq"),
        ("score_p", "model_score_p"),
        ("loglik", "loglik"),
    ]:
        assert fit[key] == row[column], key  # the same double, through JSON and TSV


@pytest.mark.external
def test_cox_and_cox_zph_on_rs_own_datasets_match_r(r_reference):
    cases = {
        ("rotterdam", "baseline"): (
            r_reference["rotterdam"],
            CoxSpec(covariates=["age", "nodes", "hormon", "pgr"], duration="rtime", event="recur"),
        ),
        ("heart", "time_varying"): (
            r_reference["heart"],
            CoxSpec(
                covariates=["transplant", "age", "surgery"],
                start="start",
                stop="stop",
                id_col="id",
                event="event",
            ),
        ),
    }
    for (dataset, model), (data, spec) in cases.items():
        result = fit_cox(data, spec)
        ours = result.terms.set_index("term")
        r = r_reference["cox"].query(f"dataset == '{dataset}' and model == '{model}'").set_index("term")
        for mine, theirs in TERM_FIGURES.items():
            assert_figure_close(mine, ours[mine], r[theirs], f"{dataset} {mine}")
        model_tests = pd.Series(
            result.model_tests()
            | {"concordance": result.concordance, "concordance_se": result.concordance_se}
        )
        for mine, theirs in MODEL_TESTS.items():
            assert_figure_close(mine, model_tests[mine], r[theirs].iloc[0], f"{dataset} {mine}")
        r_zph = r_reference["zph"].query("dataset == @dataset").set_index("term")
        assert_close(ours["ph_chisq"], r_zph.loc[ours.index, "chisq"], f"{dataset} cox.zph")
        assert_close(result.zph_global["chisq"], r_zph.loc["GLOBAL", "chisq"], f"{dataset} cox.zph GLOBAL")


# --- the small-trial figures against R ---------------------------------------------------------------------------


@pytest.mark.external
@pytest.mark.parametrize("name", ["safe_to_stop", "safe_to_stop_accuracy"])
def test_safe_to_stop_tables_match_binom_test_and_survfit(trial, r_reference, name):
    """Every row of the two tables as written (baseline and each landmark, per cohort and pooled): the counts
    exactly, the KM estimate at 12 months (log-log, R's summary(survfit, times = 12)) and the exact binomial
    intervals (R's binom.test) to 1e-9."""
    key = ["cohort", "timepoint"] + (["mrd_status"] if name == "safe_to_stop" else [])
    ours = getattr(trial.results, name).set_index(key)
    r = r_reference[name].set_index(key)
    assert sorted(ours.index) == sorted(r.index)
    r = r.loc[ours.index]
    for column in ours.columns:
        assert_close(ours[column], r[column], f"{name} {column}")
    assert ours["not_evaluable"].sum() > 0  # the landmarks leave patients censored before a year after them


def test_safe_to_stop_in_summary_json_is_the_tables(trial):
    figures = trial.results.safe_to_stop.set_index(["cohort", "timepoint", "mrd_status"])
    accuracy = trial.results.safe_to_stop_accuracy.set_index(["cohort", "timepoint"])
    for cohort, timepoints in trial.results.summary["safe_to_stop"].items():
        assert set(timepoints) == {"baseline", "landmark_3m", "landmark_6m", "landmark_12m"}
        for timepoint, entry in timepoints.items():
            for status in ("positive", "negative"):
                row = figures.loc[(cohort, timepoint, status)]
                assert pd.Series(entry[status], dtype=float)[row.index].equals(row.astype(float)), (
                    cohort,
                    timepoint,
                )
            row = accuracy.loc[(cohort, timepoint)]
            assert pd.Series(entry["accuracy"], dtype=float)[row.index].equals(row.astype(float)), (
                cohort,
                timepoint,
            )
    # The NPV of a negative baseline test is the 1-year rate of the MRD-negative patients.
    assert (
        accuracy.loc[("stop", "baseline"), "npv"]
        == figures.loc[("stop", "baseline", "negative"), "rate_pfs_1y"]
    )


def test_safe_to_stop_counts_the_landmark_data_sets_patients(trial):
    figures = trial.results.safe_to_stop.set_index(["cohort", "timepoint", "mrd_status"])
    for landmark, at in trial.results.summary["landmarks"].items():
        timepoint = f"landmark_{landmark}m"
        assert figures.loc[("all", timepoint, "positive"), "n"] == at["n_positive"]
        assert figures.loc[("all", timepoint, "negative"), "n"] == at["n_negative"]
        assert (
            trial.results.summary["safe_to_stop"]["all"][timepoint]["n_without_status"]
            == at["n_unknown_status"]
        )


@pytest.mark.external
def test_rmst_matches_survfit_rmean(trial, r_reference):
    r = r_reference["rmst"].set_index(["cohort", "tau"])
    compared = 0
    for row in trial.results.rmst.to_dict("records"):
        theirs = r.loc[(row["cohort"], row["tau_months"])]
        what = f"RMST {row['cohort']} {row['tau_months']:g}"
        for column in ("rmst_positive", "rmst_positive_se", "rmst_negative", "rmst_negative_se"):
            assert_close(row[column], theirs[column], f"{what} {column}")
        if np.isnan(row["difference"]):
            assert "beyond the follow-up" in row["note"]
            continue
        compared += 1
        for column in (
            "difference",
            "difference_se",
            "difference_p",
            "ratio",
            "ratio_ci_low",
            "ratio_ci_high",
        ):
            assert_close(row[column], theirs[column], f"{what} {column}")
    assert compared > 0


@pytest.mark.external
def test_median_follow_up_matches_reverse_survfit(trial, r_reference):
    r = r_reference["followup"].set_index(["cohort", "endpoint"])
    for cohort, endpoints in trial.results.summary["follow_up"].items():
        for endpoint, ours in endpoints.items():
            mine = [np.nan if ours[k] is None else ours[k] for k in ("median", "ci_low", "ci_high")]
            assert_close(
                mine, r.loc[(cohort, endpoint), ["median", "lower", "upper"]], f"{cohort} {endpoint}"
            )


@pytest.mark.external
def test_restart_benefit_and_time_on_therapy_match_r(trial, r_reference):
    """restart.tsv against the definition written again in R: binom.test of the benefit among evaluable
    patients, the Kaplan-Meier median time on restarted therapy (log-log CI)."""
    ours = trial.results.restart.set_index("cohort")
    r = r_reference["restart"].set_index("cohort")
    assert ours.loc["continue", "n_restarted"] == 0 and "continue" not in r.index
    row, theirs = ours.loc["stop"], r.loc["stop"]
    for column in (
        "n_restarted",
        "evaluable",
        "clinical_benefit",
        "benefit_rate",
        "benefit_ci_low",
        "benefit_ci_high",
    ):
        assert_close(row[column], theirs[column], f"restart {column}")
    assert row["time_on_therapy_events"] == theirs["events"]
    mine = row[["time_on_therapy_median", "time_on_therapy_ci_low", "time_on_therapy_ci_high"]]
    assert_close(mine, theirs[["median", "lower", "upper"]], "time on restarted therapy")
    assert 0 < row["evaluable"] < row["n_restarted"] and row["response_missing"] > 0
