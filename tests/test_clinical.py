"""The clinical join, read as a specification: baseline sample, dynamics, counting-process rows.

Small hand-made patients; every expected number can be checked with a calendar (months = days / 30.4375).
"""

from __future__ import annotations

import datetime as dt
import runpy
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mrdtrack.logs import UserFacingError
from mrdtrack.outcomes import ClinicalSettings, run_clinical
from mrdtrack.outcomes.clinical import counting_process, prepare_clinical
from mrdtrack.settings import read_settings
from mrdtrack.tables import read_tsv, write_tsv
from mrdtrack.vocabulary import DAYS_PER_MONTH

CLINICAL_COLUMNS = [
    "patient_id",
    "cohort",
    "enrollment_date",
    "pfs_event",
    "pfs_date",
    "os_event",
    "os_date",
    "age",
]


def clinical_sheet(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=CLINICAL_COLUMNS)


def calls_table(*rows: tuple) -> pd.DataFrame:
    """Rows of (sample_id, patient_id, collection_date, mrd_status, tumor_fraction, lod95)."""
    frame = pd.DataFrame(
        rows, columns=["sample_id", "patient_id", "collection_date", "mrd_status", "tumor_fraction", "lod95"]
    )
    return frame.assign(batch="b1", p_value=0.5, n_loci_used=16, flags="", status_reason="")


def day(enrollment: str, offset: int) -> str:
    return (dt.date.fromisoformat(enrollment) + dt.timedelta(days=offset)).isoformat()


def months(days: float) -> float:
    return days / DAYS_PER_MONTH


ENROLL = "2023-01-01"
DEFAULTS = ClinicalSettings()


def baseline_of(*offsets_and_status: tuple[int, str], settings: ClinicalSettings = DEFAULTS) -> pd.Series:
    """The patients.tsv row of one patient with samples at the given day offsets."""
    clinical = clinical_sheet(("P1", "stop", ENROLL, 0, day(ENROLL, 400), 0, day(ENROLL, 400), 60))
    calls = calls_table(
        *[
            (f"S{i}", "P1", day(ENROLL, off), status, 0.01, 1e-4)
            for i, (off, status) in enumerate(offsets_and_status)
        ]
    )
    return run_clinical(calls, clinical, settings).patients.iloc[0]


# --- baseline sample -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "inside"), [(-30, True), (-31, False), (0, True), (7, True), (8, False)], ids=str
)
def test_baseline_window_is_30_days_before_to_7_after_inclusive(offset, inside):
    row = baseline_of((offset, "negative"))
    assert (row["baseline_sample_id"] == "S0") is inside
    if not inside:
        assert pd.isna(row["baseline_status"]) or row["baseline_status"] == ""
        assert row["baseline_note"].startswith("no plasma sample within the baseline window")
        assert f"nearest at {offset:+d} days" in row["baseline_note"]


def test_baseline_is_the_sample_closest_to_enrollment_and_a_tie_goes_to_the_earlier():
    assert baseline_of((-20, "positive"), (-3, "negative"), (5, "positive"))["baseline_sample_id"] == "S1"
    tie = baseline_of((3, "positive"), (-3, "negative"))
    assert tie["baseline_sample_id"] == "S1"
    assert tie["baseline_days_from_enrollment"] == -3


def test_same_day_duplicate_prefers_the_determinate_call():
    row = baseline_of((-2, "indeterminate"), (-2, "positive"))
    assert (row["baseline_sample_id"], row["baseline_status"], row["baseline_mrd_positive"]) == (
        "S1",
        "positive",
        1,
    )


def test_indeterminate_baseline_is_kept_but_flagged_out_of_the_positive_vs_negative_comparison():
    row = baseline_of((0, "indeterminate"))
    assert row["baseline_status"] == "indeterminate"
    assert pd.isna(row["baseline_mrd_positive"])
    assert "excluded from positive-vs-negative" in row["baseline_note"]


def test_a_window_can_be_configured():
    settings = ClinicalSettings.from_config(
        {"baseline_window_days_before": 60, "baseline_window_days_after": 0}
    )
    assert baseline_of((-45, "negative"), settings=settings)["baseline_sample_id"] == "S0"
    assert pd.isna(baseline_of((3, "negative"), settings=settings)["baseline_sample_id"])


def test_a_sample_after_progression_is_never_the_baseline():
    clinical = clinical_sheet(("P1", "stop", ENROLL, 1, day(ENROLL, 2), 0, day(ENROLL, 400), 60))
    calls = calls_table(("S0", "P1", day(ENROLL, 5), "positive", 0.01, 1e-4))
    row = run_clinical(calls, clinical, DEFAULTS).patients.iloc[0]
    assert pd.isna(row["baseline_sample_id"])


def test_missing_input_columns_are_a_clear_error():
    with pytest.raises(UserFacingError, match="MRD calls: missing column"):
        run_clinical(calls_table().drop(columns="lod95"), TWO, DEFAULTS)


def test_patients_without_samples_are_reported_not_dropped():
    clinical = clinical_sheet(
        ("P1", "stop", ENROLL, 0, "2024-01-01", 0, "2024-01-01", 60),
        ("P2", "continue", ENROLL, 1, "2023-06-01", 0, "2024-01-01", 50),
    )
    calls = calls_table(
        ("S1", "P1", ENROLL, "negative", 0.0, 1e-4), ("X1", "P9", ENROLL, "positive", 0.1, 1e-4)
    )
    tables = run_clinical(calls, clinical, DEFAULTS)
    patients = tables.patients.set_index("patient_id")
    assert list(patients.index) == ["P1", "P2"]
    assert patients.at["P2", "baseline_note"] == "no plasma sample"
    assert patients.at["P2", "n_samples"] == 0
    # a sample of a patient missing from the clinical sheet stays visible in joined.tsv, with a note
    orphan = tables.joined.set_index("sample_id").loc["X1"]
    assert orphan["join_note"] == "patient not in the clinical sheet"


def test_settings_fall_back_to_defaults_and_a_sheet_path_is_not_taken_for_settings():
    assert ClinicalSettings.from_config({}) == DEFAULTS
    assert ClinicalSettings.from_config(None) == DEFAULTS
    with pytest.raises(UserFacingError, match="'clinical_join' must be a mapping"):
        ClinicalSettings.from_config("test_data/clinical.tsv")
    assert ClinicalSettings.from_config({"baseline_window_days_after": 14}).baseline_window_days_after == 14


# --- two-patient example: counting process and dynamics --------------------------------------------------------

TWO = clinical_sheet(
    # P1 progresses on day 181; P2 is censored on day 365.
    ("P1", "stop", "2023-01-01", 1, "2023-07-01", 0, "2024-01-01", 61),
    ("P2", "continue", "2023-02-01", 0, "2024-02-01", 0, "2024-02-01", 55),
)
TWO_CALLS = calls_table(
    ("S1a", "P1", "2022-12-20", "negative", 0.0, 1e-4),  # day -12
    ("S1b", "P1", "2022-12-29", "negative", 2e-5, 1e-4),  # day -3: baseline, status at time 0
    ("S1c", "P1", "2023-03-02", "positive", 1e-3, 1e-4),  # day 60: conversion
    ("S1d", "P1", "2023-07-01", "positive", 4e-3, 1e-4),  # day 181 = progression day: not a covariate value
    ("S1e", "P1", "2023-08-01", "positive", 1e-2, 1e-4),  # after progression: ignored
    ("S2a", "P2", "2023-02-05", "positive", 1e-2, 2e-4),  # day 4: baseline, but NOT the status at time 0
    ("S2b", "P2", "2023-05-02", "indeterminate", 0.0, 5e-2),  # day 90
    ("S2c", "P2", "2023-08-01", "negative", 0.0, 2e-4),  # day 181
)


@pytest.fixture(scope="module")
def two() -> SimpleNamespace:
    tables = run_clinical(TWO_CALLS, TWO, DEFAULTS)
    return SimpleNamespace(
        patients=tables.patients.set_index("patient_id"), cp=tables.counting_process, joined=tables.joined
    )


def test_counting_process_rows_of_the_two_patients(two):
    expected = pd.DataFrame(
        [
            ("P1", 0.0, months(60), 0, "negative", 1, "S1b"),
            ("P1", months(60), months(181), 1, "positive", 1, "S1c"),
            ("P2", 0.0, months(4), 0, "", None, ""),  # no sample by time 0: status unknown, not the day-4 one
            ("P2", months(4), months(90), 0, "positive", 1, "S2a"),
            ("P2", months(90), months(181), 0, "indeterminate", None, "S2b"),
            ("P2", months(181), months(365), 0, "negative", 0, "S2c"),
        ],
        columns=["patient_id", "start", "stop", "event", "mrd_status", "positive", "sample_id"],
    )
    expected.loc[0, "positive"] = 0
    cp = two.cp
    assert list(cp.columns) == [
        "patient_id", "cohort", "start", "stop", "event", "mrd_status", "mrd_positive", "log10_tf", "sample_id"
    ]  # fmt: skip
    assert cp["patient_id"].tolist() == expected["patient_id"].tolist()
    np.testing.assert_allclose(cp["start"], expected["start"], rtol=1e-12)
    np.testing.assert_allclose(cp["stop"], expected["stop"], rtol=1e-12)
    assert cp["event"].tolist() == expected["event"].tolist()
    assert cp["mrd_status"].tolist() == expected["mrd_status"].tolist()
    assert cp["sample_id"].tolist() == expected["sample_id"].tolist()
    assert [None if pd.isna(v) else int(v) for v in cp["mrd_positive"]] == [0, 1, None, 1, None, 0]


def test_log10_tf_floors_zero_and_sub_floor_negatives_at_half_the_lod(two):
    cp = two.cp.set_index("sample_id")
    assert cp.at["S1b", "log10_tf"] == pytest.approx(np.log10(0.5e-4))  # negative, TF 2e-5 < LOD/2
    assert cp.at["S1c", "log10_tf"] == pytest.approx(-3.0)  # positive keeps its own TF
    assert cp.at["S2c", "log10_tf"] == pytest.approx(np.log10(1e-4))  # TF 0 -> half of LOD 2e-4
    assert pd.isna(cp.at["S2b", "log10_tf"])  # indeterminate: no level


def test_the_status_at_time_zero_is_never_a_later_status(two):
    """Immortal-time guard: the day-4 positive of P2 does not cover days 0-4, and P1's month-2 conversion
    does not reach back to time 0."""
    cp = two.cp
    for _patient, rows in cp.groupby("patient_id"):
        first = rows.iloc[0]
        assert first["start"] == 0
        sample = first["sample_id"]
        if sample:
            sample_day = two.joined.set_index("sample_id").at[sample, "days_from_enrollment"]
            assert sample_day <= 0
    assert (cp["stop"] > cp["start"]).all()
    assert cp.groupby("patient_id")["event"].sum().to_dict() == {"P1": 1, "P2": 0}


def test_carry_forward_mode_keeps_the_previous_status_through_an_indeterminate_draw():
    settings = ClinicalSettings(indeterminate_in_counting_process="carry_forward")
    cp = counting_process(
        run_clinical(TWO_CALLS, TWO, settings).joined.pipe(_reparse), prepare_clinical(TWO), settings
    )
    row = cp[cp["sample_id"] == "S2b"].iloc[0]
    assert (row["mrd_status"], row["mrd_positive"]) == ("positive", 1)


def _reparse(joined: pd.DataFrame) -> pd.DataFrame:
    for column in ("collection_date", "enrollment_date", "pfs_date"):
        joined[column] = pd.to_datetime(joined[column])
    return joined


def test_dynamics_of_the_progressing_patient(two):
    p1 = two.patients.loc["P1"]
    assert p1["pfs_months"] == pytest.approx(months(181))
    assert (p1["baseline_sample_id"], p1["baseline_status"]) == ("S1b", "negative")
    assert p1["n_samples"] == 5 and p1["n_samples_used"] == 4  # S1e after progression is not used
    assert p1["statuses"] == (
        "2022-12-20:negative;2022-12-29:negative;2023-03-02:positive;2023-07-01:positive"
    )
    assert p1["converted_date"] == "2023-03-02"
    assert p1["first_positive_date"] == "2023-03-02"
    assert p1["lead_time_months"] == pytest.approx(months(121))
    assert p1["last_status_before_progression"] == "positive"
    points_x = np.array([-12, -3, 60, 181]) / DAYS_PER_MONTH
    points_y = np.log10([0.5e-4, 0.5e-4, 1e-3, 4e-3])
    assert p1["tf_log10_slope_per_month"] == pytest.approx(np.polyfit(points_x, points_y, 1)[0])


def test_dynamics_of_the_censored_patient(two):
    p2 = two.patients.loc["P2"]
    assert (p2["baseline_sample_id"], p2["baseline_status"], p2["baseline_mrd_positive"]) == (
        "S2a",
        "positive",
        1,
    )
    assert p2["converted_date"] == "" and p2["first_positive_date"] == "2023-02-05"
    assert pd.isna(p2["lead_time_months"])  # no progression, no lead time
    assert p2["last_status_before_progression"] == ""


def test_joined_has_time_from_enrollment(two):
    joined = two.joined.set_index("sample_id")
    assert joined.at["S1a", "days_from_enrollment"] == -12
    assert joined.at["S2c", "months_from_enrollment"] == pytest.approx(months(181))
    assert joined.at["S1a", "cohort"] == "stop"


def test_workflow_script_writes_the_three_tables(tmp_path, repo):
    calls, clinical = tmp_path / "calls.tsv", tmp_path / "clinical.tsv"
    write_tsv(TWO_CALLS, calls)
    write_tsv(TWO, clinical)
    out = {name: str(tmp_path / f"{name}.tsv") for name in ("joined", "patients", "counting_process")}
    out["settings"] = str(tmp_path / "settings.json")
    snakemake = SimpleNamespace(
        input=SimpleNamespace(calls=str(calls), clinical=str(clinical)),
        params=SimpleNamespace(settings={"baseline_window_days_before": 30}),
        output=SimpleNamespace(**out),
        log=[str(tmp_path / "clinical.log")],
    )
    runpy.run_path(str(repo / "workflow/scripts/clinical.py"), init_globals={"snakemake": snakemake})
    patients = read_tsv(out["patients"])
    assert patients["patient_id"].tolist() == ["P1", "P2"]
    assert read_tsv(out["counting_process"]).shape == (6, 9)
    assert "days_from_enrollment" in read_tsv(out["joined"]).columns
    assert read_settings(out["settings"])["clinical_join"]["baseline_window_days_before"] == 30
