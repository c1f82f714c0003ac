"""Who may safely stop, read as a specification: which patients count at one year, the 1-year figures by MRD
status and the accuracy of MRD-positivity for progression within the year.

Hand-checkable cases here; the agreement with R (binom.test, summary(survfit, times = 12)) on the pipeline's
tables is in tests/test_survival.py, and on the bundled data and a dataset with separation in
tests/test_small_trial_stats.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrdtrack.outcomes.prediction import horizon_outcome
from mrdtrack.outcomes.safe_to_stop import (
    ACCURACY_COLUMNS,
    FIGURE_COLUMNS,
    accuracy_figures,
    clopper_pearson,
    km_at_horizon,
    safe_to_stop,
    status_figures,
)
from mrdtrack.tables import columns_of

YEAR = 12.0


def outcomes(*patients: tuple[float, int]) -> pd.Series:
    """Horizon outcomes of (months, event) patients: 1 progressed within the year, 0 free at it, NA neither."""
    frame = pd.DataFrame(patients, columns=["time", "event"])
    return horizon_outcome(frame["time"], frame["event"], YEAR)


# Six patients: progressed at 3; censored at 8 without progression; followed exactly 12 months; progressed at
# exactly 12; progressed at 15 (after the year); censored at 20.
SIX = pd.DataFrame({"time": [3.0, 8, 12, 12, 15, 20], "event": [1, 0, 0, 1, 1, 0]})


def test_a_patient_censored_at_8_months_without_progression_is_not_evaluable():
    figures = status_figures(SIX["time"], SIX["event"], YEAR)
    assert figures["not_evaluable"] == 1  # the patient censored at 8 months
    assert figures["n"] == 6 and figures["evaluable"] == 5


def test_progression_at_exactly_one_year_is_within_the_year_and_a_full_year_of_follow_up_is_evaluable():
    figures = status_figures(SIX["time"], SIX["event"], YEAR)
    assert figures["progressed_1y"] == 2  # at 3 and at 12; the progression at 15 came after the year
    # progression-free at one year: followed exactly 12 months, progressed at 15, censored at 20
    assert figures["rate_pfs_1y"] == pytest.approx(3 / 5)


def test_binomial_rate_has_the_exact_clopper_pearson_interval_of_r_binom_test():
    figures = status_figures(SIX["time"], SIX["event"], YEAR)
    # R: binom.test(3, 5)$conf.int
    assert (figures["rate_ci_low"], figures["rate_ci_high"]) == pytest.approx(
        (0.146632799634673, 0.947255049473683), rel=1e-12
    )


def test_kaplan_meier_uses_every_patient_until_censored():
    """KM at 12 months: 5/6 after the progression at 3; the patient censored at 8 leaves the risk set; at 12,
    4 at risk and one progression (the one followed to 12 is still at risk then): 5/6 x 3/4."""
    figures = status_figures(SIX["time"], SIX["event"], YEAR, km_ci="log-log")
    assert figures["km_pfs_1y"] == pytest.approx(5 / 6 * 3 / 4)
    # R: summary(survfit(Surv(time, event) ~ 1, conf.type = "log-log"), times = 12)
    assert (figures["km_ci_low"], figures["km_ci_high"]) == pytest.approx(
        (0.141853389931655, 0.893050604498578), rel=1e-12
    )


def test_a_curve_that_reached_zero_stays_zero_and_one_that_stopped_early_is_unknown():
    assert km_at_horizon(pd.Series([2.0, 5.0]), pd.Series([1, 1]), YEAR)[0] == 0.0
    assert np.isnan(km_at_horizon(pd.Series([2.0, 5.0]), pd.Series([1, 1]), YEAR)[1])  # no CI at S = 0
    assert np.isnan(km_at_horizon(pd.Series([2.0, 9.0]), pd.Series([1, 0]), YEAR)[0])  # followed to 9 only


def test_no_patient_evaluable_gives_no_rate():
    figures = status_figures(pd.Series([4.0, 6.0]), pd.Series([0, 0]), YEAR)
    assert figures["evaluable"] == 0 and figures["not_evaluable"] == 2
    assert np.isnan(figures["rate_pfs_1y"]) and np.isnan(figures["rate_ci_low"])


def test_the_two_by_two_table_counts_evaluable_patients_and_says_how_many_are_not():
    positive = outcomes((3, 1), (6, 1), (20, 0), (5, 0))  # progressed, progressed, free, censored at 5
    negative = outcomes((15, 0), (24, 0), (13, 0), (10, 1), (2, 0))  # free x3, progressed, censored at 2
    table = accuracy_figures(positive, negative)
    assert [table[k] for k in ("true_positive", "false_positive", "true_negative", "false_negative")] == [
        2,
        1,
        3,
        1,
    ]
    assert table["not_evaluable"] == 2
    assert table["sensitivity"] == pytest.approx(2 / 3) and table["specificity"] == pytest.approx(3 / 4)
    assert table["ppv"] == pytest.approx(2 / 3) and table["npv"] == pytest.approx(3 / 4)
    # R: binom.test(3, 4)$conf.int and binom.test(2, 3)$conf.int
    assert (table["npv_ci_low"], table["npv_ci_high"]) == pytest.approx((0.194120449683243, 0.99369053679029))
    assert (table["sensitivity_ci_low"], table["sensitivity_ci_high"]) == pytest.approx(
        (0.0942993240502461, 0.9915962413403874)
    )


def test_when_every_progression_is_mrd_positive_the_npv_is_one_with_an_exact_lower_limit():
    """Separation: no MRD-negative patient progressed. NPV = n/n; Clopper-Pearson's lower limit is then
    (alpha/2)^(1/n), the upper 1 (a model would say 'not estimable', the 2x2 table does not)."""
    positive = outcomes((3, 1), (7, 1))
    negative = outcomes(*[(13.0 + k, 0) for k in range(8)])
    table = accuracy_figures(positive, negative)
    assert table["npv"] == 1 and table["sensitivity"] == 1 and table["false_negative"] == 0
    assert table["npv_ci_low"] == pytest.approx(0.025 ** (1 / 8), rel=1e-12) and table["npv_ci_high"] == 1
    assert table["specificity"] == 1  # every patient progression-free at one year was MRD-negative
    assert np.isnan(clopper_pearson(0, 0)[0])


def test_clopper_pearson_ends():
    assert clopper_pearson(0, 10) == pytest.approx(
        (0.0, 0.308497107818761), rel=1e-12
    )  # R: binom.test(0, 10)
    assert clopper_pearson(10, 10)[1] == 1.0


def frame_of(*rows: tuple[str, float, int, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["cohort", "time", "event", "status"])


def test_tables_have_one_row_per_cohort_timepoint_and_status_pooled_first():
    baseline = frame_of(
        ("stop", 3, 1, "positive"), ("stop", 14, 0, "negative"), ("continue", 20, 0, "negative"),
        ("continue", 5, 1, "indeterminate"), ("stop", 7, 0, "none"),
    )  # fmt: skip
    landmark = frame_of(("stop", 11, 0, "negative"), ("stop", 2, 1, ""))
    result = safe_to_stop({"baseline": baseline, "landmark_3m": landmark}, ["continue", "stop"], YEAR)
    assert result.figures.columns.tolist() == FIGURE_COLUMNS == columns_of("safe_to_stop")
    assert result.accuracy.columns.tolist() == ACCURACY_COLUMNS
    keys = result.figures[["cohort", "timepoint", "mrd_status"]].drop_duplicates()
    assert len(keys) == len(result.figures) == 3 * 2 * 2
    assert result.figures["cohort"].iloc[0] == "all"
    by_key = result.figures.set_index(["cohort", "timepoint", "mrd_status"])
    assert by_key.loc[("all", "baseline", "negative"), "n"] == 2  # indeterminate and none left out
    # nobody in `continue` at the landmark: rows with n = 0 and no figures
    empty = by_key.loc[("continue", "landmark_3m", "positive")]
    assert empty["n"] == 0 and np.isnan(empty["km_pfs_1y"]) and np.isnan(empty["rate_pfs_1y"])
    summary = result.summary["all"]["baseline"]
    assert summary["n_without_status"] == 2 and summary["horizon_months"] == YEAR
    assert summary["negative"]["n"] == 2 and summary["accuracy"]["true_positive"] == 1
    assert result.summary["stop"]["landmark_3m"]["n_without_status"] == 1  # unknown status at the landmark
