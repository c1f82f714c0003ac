"""The statistics a small trial needs, read as a specification, and their agreement with R.

- Firth-penalized Cox (mrdtrack.outcomes.firth) against the values coxphf prints and a hand-computable case,
  and against Firth's definition evaluated with R's own partial likelihood;
- the fallback: the ordinary Cox fit, or the Firth fit when monotone likelihood leaves it without an estimate;
- the ordinary Cox fit at R's optimum (eps = 1e-14), and what it reports under monotone likelihood;
- the stratified log-rank test (R's survdiff with strata), restricted mean survival time (print.survfit rmean,
  survRM2::rmst2), median follow-up by reverse Kaplan-Meier, the concordance's standard error (R's
  concordance), a Kaplan-Meier median whose confidence band is not monotone (R's quantile.survfit), and the
  safe-to-stop figures at baseline (R's binom.test and summary(survfit, times = 12)).
Data: the bundled test_data clinical sheet with its true baseline status (6 patients; every progression
before 11 months is MRD-positive: monotone likelihood), the trial-sized demo's 82 patients, and the demo
with no progression among the MRD-negative patients of the `continue` cohort (separation).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from conftest import REPO
from mrdtrack.outcomes.cox import CoxSpec, concordance_with_std_err, fit_cox
from mrdtrack.outcomes.firth import firth_cox, fit_cox_or_firth, fit_firth
from mrdtrack.outcomes.followup import median_follow_up
from mrdtrack.outcomes.km import km_median, km_table, logrank
from mrdtrack.outcomes.logrank import stratified_logrank
from mrdtrack.outcomes.partial_likelihood import CoxArrays, breslow
from mrdtrack.outcomes.rmst import rmst, rmst_comparison
from mrdtrack.outcomes.safe_to_stop import safe_to_stop
from mrdtrack.simulation import DemoStudy
from mrdtrack.simulation.demo import clinical_table
from mrdtrack.simulation.demo_plan import DEFAULT_SEED, plan_patients
from mrdtrack.vocabulary import DAYS_PER_MONTH

R_SCRIPT = Path(__file__).parent / "r" / "trial_stats.R"
RTOL = 1e-9
GROUPS = ("positive", "negative")


# --- data ------------------------------------------------------------------------------------------------------


def months_between(start: pd.Series, end: pd.Series) -> pd.Series:
    return (pd.to_datetime(end) - pd.to_datetime(start)).dt.days / DAYS_PER_MONTH


def patients_from_sheet(clinical: pd.DataFrame, positive: pd.Series) -> pd.DataFrame:
    """One row per patient: PFS and OS in months from the clinical sheet, baseline group from `positive`."""
    frame = clinical.assign(
        pfs_months=months_between(clinical["enrollment_date"], clinical["pfs_date"]),
        os_months=months_between(clinical["enrollment_date"], clinical["os_date"]),
        mrd_positive=positive.astype(int).to_numpy(),
    )
    frame["group"] = np.where(frame["mrd_positive"] == 1, "positive", "negative")
    return frame[["patient_id", "cohort", "group", "mrd_positive", "pfs_months", "pfs_event", "os_months",
                  "os_event", "age"]]  # fmt: skip


def bundled_patients() -> pd.DataFrame:
    """test_data's clinical sheet; baseline status = tumor DNA in the patient's first plasma sample (truth)."""
    data = REPO / "test_data"
    sheets = pd.concat([pd.read_csv(path, sep="\t") for path in sorted(data.glob("batch*/samples.tsv"))])
    truth = pd.read_csv(data / "truth" / "samples.tsv", sep="\t")
    plasma = sheets[sheets["sample_type"] == "plasma"].merge(truth[["sample_id", "true_tf"]], on="sample_id")
    first = plasma.sort_values("collection_date").groupby("patient_id").first()
    clinical = pd.read_csv(data / "clinical.tsv", sep="\t")
    return patients_from_sheet(clinical, clinical["patient_id"].map(first["true_tf"] > 0))


def demo_patients() -> pd.DataFrame:
    """The trial-sized demo's patients (`mrdtrack demo` at its default seed), true baseline status."""
    patients = plan_patients(DemoStudy(), np.random.default_rng([DEFAULT_SEED, 0]))
    return patients_from_sheet(clinical_table(patients), pd.Series([p.baseline_tf > 0 for p in patients]))


def with_separation(patients: pd.DataFrame) -> pd.DataFrame:
    """No progression among the MRD-negative patients of `continue` (censored instead): there, every
    progression is MRD-positive."""
    negative_continue = (patients["cohort"] == "continue") & (patients["group"] == "negative")
    return patients.assign(pfs_event=np.where(negative_continue, 0, patients["pfs_event"]))


@pytest.fixture(scope="module")
def data() -> SimpleNamespace:
    demo = demo_patients()
    return SimpleNamespace(bundled=bundled_patients(), demo=demo, separation=with_separation(demo))


def spec(*covariates: str, strata: tuple[str, ...] = ()) -> CoxSpec:
    return CoxSpec(covariates=list(covariates), duration="pfs_months", event="pfs_event", strata=list(strata))


# --- Firth: published and hand-computable values ----------------------------------------------------------------

# survival's test1 data with x as a factor (x1, x2) and sex: coxphf::coxphf(Surv(time, status) ~ x + sex),
# as printed in the documentation of biostatUtil::prettyCoxph (coxphf 1.13).
TEST1 = pd.DataFrame(
    {"time": [4, 3, 1, 1, 2, 2, 3.0], "status": [1, 1, 1, 0, 1, 1, 0], "x": [0, 2, 1, 1, 1, 0, 0],
     "sex": [0, 0, 0, 0, 1, 1, 1.0]}
).assign(x1=lambda f: (f["x"] == 1) * 1.0, x2=lambda f: (f["x"] == 2) * 1.0)  # fmt: skip
COXPHF_TEST1 = {
    "coef": [1.60161779, 0.67787698, -0.09450898],
    "se": [1.354154, 1.551143, 1.380503],
    "lower": [0.56823954, 0.13404776, 0.07179951],
    "upper": [71.53693, 39.18328, 11.88728],
    "chisq": [2.122594512, 0.268749031, 0.006335744],
    "lr": 2.170314,
}


def test_firth_reproduces_coxphf_printed_output():
    fit = firth_cox(CoxArrays.of(TEST1, ["x1", "x2", "sex"], "status", "time"))
    published = COXPHF_TEST1
    # coxphf stops once a step changes the coefficients by < 1e-6: they are good to about that.
    np.testing.assert_allclose(fit.coef, published["coef"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.se, published["se"], rtol=1e-6)
    np.testing.assert_allclose(np.exp(fit.ci_low), published["lower"], rtol=1e-6)
    np.testing.assert_allclose(np.exp(fit.ci_high), published["upper"], rtol=1e-6)
    np.testing.assert_allclose(fit.term_chisq, published["chisq"], rtol=1e-6, atol=1e-9)
    assert fit.lr_chisq == pytest.approx(published["lr"], rel=1e-6)


def test_firth_of_three_patients_is_the_maximum_of_the_penalized_likelihood_by_hand():
    """coxphf's own example: times 1, 2, 3, all events, x = 1, 1, 0; the ordinary estimate is infinite."""
    frame = pd.DataFrame({"time": [1, 2, 3.0], "status": [1, 1, 1], "x": [1, 1, 0.0]})

    def penalized(b: float) -> float:  # Breslow partial likelihood (no ties) + 0.5 log information
        loglik = 2 * b - np.log(2 * np.exp(b) + 1) - np.log(np.exp(b) + 1)
        information = 2 * np.exp(b) / (2 * np.exp(b) + 1) ** 2 + np.exp(b) / (np.exp(b) + 1) ** 2
        return loglik + 0.5 * np.log(information)

    best = optimize.minimize_scalar(lambda b: -penalized(b), bounds=(-5, 10), method="bounded",
                                    options={"xatol": 1e-12})  # fmt: skip
    top = penalized(best.x)
    cut = top - stats.chi2.ppf(0.95, 1) / 2
    lower = optimize.brentq(lambda b: penalized(b) - cut, best.x - 20, best.x, xtol=1e-13)
    upper = optimize.brentq(lambda b: penalized(b) - cut, best.x, best.x + 20, xtol=1e-13)
    fit = firth_cox(CoxArrays.of(frame, ["x"], "status", "time"))
    assert fit.coef[0] == pytest.approx(best.x, rel=1e-7)
    assert (fit.ci_low[0], fit.ci_high[0]) == pytest.approx((lower, upper), rel=1e-9)
    assert fit.term_chisq[0] == pytest.approx(2 * (top - penalized(0.0)), rel=1e-9)
    assert fit.loglik_null == pytest.approx(penalized(0.0), rel=1e-12)


def test_breslow_derivatives_are_those_of_the_likelihood():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"t": rng.integers(1, 8, 30).astype(float), "e": rng.integers(0, 2, 30),
                          "a": rng.normal(size=30), "b": rng.integers(0, 2, 30).astype(float)})  # fmt: skip
    data = CoxArrays.of(frame, ["a", "b"], "e", "t")
    beta, h = np.array([0.3, -0.4]), 1e-6
    value = breslow(data, beta)
    for j, shift in enumerate(np.eye(2) * h):
        up, down = breslow(data, beta + shift), breslow(data, beta - shift)
        assert (up.loglik - down.loglik) / (2 * h) == pytest.approx(value.score[j], rel=1e-6)
        np.testing.assert_allclose((down.score - up.score) / (2 * h), value.information[:, j], rtol=1e-6)
        np.testing.assert_allclose(
            (up.information - down.information) / (2 * h), value.d_information[:, :, j], rtol=1e-5, atol=1e-9
        )
        np.testing.assert_allclose(
            (up.d_information - down.d_information) / (2 * h),
            value.d2_information[..., j],
            rtol=1e-5,
            atol=1e-9,
        )


# --- Firth as the fallback ---------------------------------------------------------------------------------------


def test_separation_gives_the_firth_row_with_finite_profile_limits(data):
    continue_cohort = data.separation[data.separation["cohort"] == "continue"]
    result = fit_cox_or_firth(continue_cohort, spec("mrd_positive"))
    row = result.terms.iloc[0]
    assert result.method == "firth"
    assert "Firth" in result.note and "no events when mrd_positive = 0" in result.note
    assert 1 < row["hr_ci_low"] < row["hr"] < row["hr_ci_high"] < np.inf
    assert 0 < row["p_lr"] < 0.05 and result.lr_chisq > 0
    assert result.score_chisq == fit_cox(continue_cohort, spec("mrd_positive")).score_chisq


def test_an_estimable_fit_stays_the_ordinary_one(data):
    result = fit_cox_or_firth(data.demo, spec("mrd_positive", strata=("cohort",)))
    assert result.method == "cox" and not result.monotone_likelihood
    assert result.terms["hr"].notna().all()


def test_firth_stays_near_an_estimable_ordinary_fit(data):
    """The penalty is a small-sample correction (O(1/events)): with 34 progressions the estimate and its
    interval move by a few percent only."""
    stop = data.demo[data.demo["cohort"] == "stop"]
    ordinary = fit_cox(stop, spec("mrd_positive")).terms.iloc[0]
    penalized = fit_firth(stop, spec("mrd_positive")).terms.iloc[0]
    for column in ("coef", "se", "hr_ci_low", "hr_ci_high"):
        assert penalized[column] == pytest.approx(ordinary[column], rel=0.05), column


def test_monotone_likelihood_keeps_the_tests_r_reports(data):
    continue_cohort = data.separation[data.separation["cohort"] == "continue"]
    result = fit_cox(continue_cohort, spec("mrd_positive", "age"))
    terms = result.terms.set_index("term")
    assert result.monotone_likelihood and result.method == "cox"
    assert np.isnan(terms.loc["mrd_positive", "hr"]) and np.isfinite(terms.loc["age", "hr"])
    assert result.lr_chisq > 0 and result.score_chisq > 0 and result.loglik > result.loglik_null
    assert result.wald_chisq is None  # a Wald test of an infinite coefficient means nothing
    assert "no events when mrd_positive = 0" in result.note


def test_monotone_likelihood_with_a_supremum_of_zero():
    """Two patients, the MRD-positive one progressing first: the partial likelihood rises to 1 (log 0) as the
    coefficient grows, so LR = 2 log 2; the score (log-rank) test is 1. R gives the same (coef ~33, flagged)."""
    frame = pd.DataFrame({"pfs_months": [1.0, 2.0], "pfs_event": [1, 1], "mrd_positive": [1.0, 0.0]})
    result = fit_cox(frame, spec("mrd_positive"))
    assert result.monotone_likelihood and np.isnan(result.terms["hr"].iloc[0])
    assert result.lr_chisq == pytest.approx(2 * np.log(2), rel=1e-12)
    assert result.score_chisq == pytest.approx(1.0) and result.loglik == pytest.approx(0.0, abs=1e-13)
    assert result.terms["p_lr"].iloc[0] == pytest.approx(stats.chi2.sf(2 * np.log(2), 1))


def test_a_covariate_constant_within_every_stratum_has_no_comparison():
    frame = pd.DataFrame({"pfs_months": [1.0, 2, 3, 4], "pfs_event": [1, 0, 1, 1],
                          "mrd_positive": [1.0, 1, 0, 0], "cohort": ["stop", "stop", "continue", "continue"]})  # fmt: skip
    for fit in (fit_cox, fit_firth):
        result = fit(frame, spec("mrd_positive", strata=("cohort",)))
        assert result.terms["hr"].isna().all() and result.lr_chisq is None
        assert result.note.startswith("not estimable: at no progression were patients at risk who differ")


# --- log-rank, RMST, follow-up, concordance by hand -------------------------------------------------------------


def test_stratified_logrank_sums_observed_expected_and_variance_over_strata():
    frame = pd.DataFrame({"t": [1.0, 2, 3, 4, 1, 2, 3, 4], "e": [1, 1, 1, 0, 1, 0, 1, 1],
                          "g": list("abab" * 2), "s": [0] * 4 + [1] * 4})  # fmt: skip
    result = stratified_logrank(frame, "t", "e", "g", ("a", "b"), ["s"])
    per_stratum = [stratified_logrank(frame[frame["s"] == s], "t", "e", "g", ("a", "b")) for s in (0, 1)]
    expected = [sum(r["expected"][k] for r in per_stratum) for k in (0, 1)]
    assert result["expected"] == pytest.approx(expected)
    assert result["events"] == [4, 2] and result["df"] == 1
    # stratum 0: deaths at 1 (a; 4 at risk, 2 a), 2 (b; 3, 1 a), 3 (a; 2, 1 a): E_a = 1/2 + 1/3 + 1/2
    assert per_stratum[0]["expected"][0] == pytest.approx(4 / 3)


def test_unstratified_logrank_is_the_ordinary_test(data):
    ours = stratified_logrank(data.demo, "pfs_months", "pfs_event", "group", GROUPS)
    ordinary = logrank(data.demo, "pfs_months", "pfs_event", "group", GROUPS)
    assert ours["chisq"] == pytest.approx(ordinary["chisq"], rel=1e-10)
    assert ours["expected"] == pytest.approx(ordinary["expected"], rel=1e-12)


def test_rmst_is_the_area_under_the_curve_with_greenwood_type_variance():
    # S = 1 to month 2, 2/3 to month 4, then 1/3; tau = 5
    mean, se = rmst(pd.Series([2.0, 4.0, 6.0]), pd.Series([1, 1, 0]), 5.0)
    assert mean == pytest.approx(2 + 2 * 2 / 3 + 1 / 3)
    # event at 2: d/(n(n-d)) = 1/6, area after it 5/3; at 4: 1/2, area after it 1/3
    assert se**2 == pytest.approx((5 / 3) ** 2 / 6 + (1 / 3) ** 2 / 2)
    assert rmst(pd.Series([2.0, 4.0, 6.0]), pd.Series([1, 1, 0]), 1.0) == (1.0, 0.0)


def test_rmst_comparison_is_refused_beyond_a_censored_group_end():
    frame = pd.DataFrame({"t": [2.0, 4, 6, 3, 5, 8], "e": [1, 1, 0, 1, 0, 0], "g": list("aaabbb")})
    at_6, at_7 = rmst_comparison(frame, "t", "e", "g", ("a", "b"), horizons=(6, 7))
    assert at_6["difference"] == pytest.approx(at_6["rmst"][0] - at_6["rmst"][1])
    assert at_6["difference_ci_low"] < at_6["difference"] < at_6["difference_ci_high"]
    assert at_7["difference"] is None and "beyond the follow-up (6)" in at_7["note"]
    assert at_7["rmst"][0] == pytest.approx(at_6["rmst"][0] + 1 / 3)  # group a's last value carried flat


def test_median_follow_up_reverses_the_censoring():
    # progressed at 1 and 3 (censoring the follow-up), still free at 2, 4, 5, 6: reverse KM 1, 1, 0.8,
    # 0.8, 0.533, 0.267, 0 -> median at 5
    result = median_follow_up(pd.Series([1.0, 2, 3, 4, 5, 6]), pd.Series([1, 0, 1, 0, 0, 0]))
    assert result["median"] == 5.0 and result["n_censored"] == 4
    assert result["median_observed"] == 3.5


def test_concordance_standard_error_is_the_infinitesimal_jackknife():
    # no ties: the row-wise counts of concordant and discordant pairs define dfbeta
    frame = pd.DataFrame({"t": [1.0, 2, 3, 4], "e": [1, 1, 0, 1], "x": [0.9, 0.4, 0.8, 0.1]})
    data = CoxArrays.of(frame, ["x"], "e", "t")
    c_index, se = concordance_with_std_err(frame["x"].to_numpy(), data)
    # pairs (event, at risk): (1,2) c, (1,3) c, (1,4) c, (2,3) d, (2,4) c; somers' d = (4 - 1) / 5
    assert c_index == pytest.approx(4 / 5)
    counts = np.array(
        [[3, 0], [2, 1], [1, 1], [2, 0]]
    )  # per row, either side of a pair: concordant, discordant
    dfbeta = ((counts[:, 0] - counts[:, 1]) - counts.sum(axis=1) * 3 / 5) / (2 * 5)
    assert se == pytest.approx(np.sqrt(np.sum(dfbeta**2)))


def test_km_median_limit_where_the_band_rises_again_is_the_first_crossing_in_sorted_order():
    # The upper curve 1 - S_upper goes 0.4, 0.55, 0.45, 0.6: R's approx() sorts the knots, so the limit is the
    # time where it first reaches 0.5 among the sorted values: 0.55, at time 2.
    table = pd.DataFrame(
        {"time": [0.0, 1, 2, 3, 4], "survival": [1, 0.5, 0.4, 0.35, 0.3], "ci_low_log": [1, 0.4, 0.3, 0.25, 0.2],
         "ci_high_log": [1, 0.6, 0.45, 0.55, 0.4]}
    )  # fmt: skip
    assert km_median(table, "log").high == 2.0


# --- against R ---------------------------------------------------------------------------------------------------

R_TABLES = ("logrank", "rmst", "followup", "concordance", "cox", "zph", "firth", "quantile", "heart",
            "pbcseq_landmark", "safe_to_stop", "safe_to_stop_accuracy")  # fmt: skip


@pytest.fixture(scope="module")
def r_reference(data, tmp_path_factory) -> dict[str, pd.DataFrame]:
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript is not installed (apt-get install r-base-core); the R cross-check needs it")
    check = subprocess.run([rscript, "-e", "library(survival)"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip("R package 'survival' is not installed (apt-get install r-cran-survival)")
    folder = tmp_path_factory.mktemp("trial_stats")
    for name in ("bundled", "demo", "separation"):
        getattr(data, name).to_csv(folder / f"{name}.tsv", sep="\t", index=False)
    run = subprocess.run([rscript, str(R_SCRIPT), str(folder)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return {name: pd.read_csv(folder / f"{name}.tsv", sep="\t") for name in R_TABLES}


def close(actual, expected, what: str, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=0,
                               equal_nan=True, err_msg=what)  # fmt: skip


@pytest.mark.external
@pytest.mark.parametrize("dataset", ["bundled", "demo", "separation"])
@pytest.mark.parametrize("stratified", [True, False])
def test_stratified_logrank_matches_survdiff(data, r_reference, dataset, stratified):
    r = r_reference["logrank"].query("dataset == @dataset and stratified == @stratified").set_index("group")
    ours = stratified_logrank(getattr(data, dataset), "pfs_months", "pfs_event", "group", GROUPS,
                              ["cohort"] if stratified else [])  # fmt: skip
    close(ours["chisq"], r["chisq"].iloc[0], f"{dataset} chisq")
    close(ours["expected"], r.loc[list(GROUPS), "expected"], f"{dataset} expected")
    assert ours["events"] == r.loc[list(GROUPS), "observed"].tolist()


@pytest.mark.external
@pytest.mark.parametrize("dataset", ["bundled", "demo"])
def test_rmst_matches_survfit_rmean_and_rmst2(data, r_reference, dataset):
    rows = rmst_comparison(getattr(data, dataset), "pfs_months", "pfs_event", "group", GROUPS)
    for row in rows:
        r = r_reference["rmst"].query("dataset == @dataset and tau == @row['tau']").set_index("group")
        what = f"{dataset} tau {row['tau']:g}"
        close(row["rmst"], r.loc[list(GROUPS), "rmst"], f"{what} rmst")
        close(row["rmst_se"], r.loc[list(GROUPS), "se"], f"{what} se")
        if row["difference"] is None:
            continue
        for mine, theirs in [("difference", "difference"), ("difference_ci_low", "difference_low"),
                             ("difference_ci_high", "difference_high"), ("difference_p", "difference_p"),
                             ("ratio", "ratio"), ("ratio_ci_low", "ratio_low"), ("ratio_ci_high", "ratio_high"),
                             ("ratio_p", "ratio_p")]:  # fmt: skip
            close(row[mine], r[theirs].iloc[0], f"{what} {mine}")
    assert any(row["difference"] is not None for row in rows)


@pytest.mark.external
@pytest.mark.parametrize("dataset", ["bundled", "demo", "separation"])
def test_median_follow_up_matches_reverse_survfit(data, r_reference, dataset):
    patients = getattr(data, dataset)
    for conf in ("log", "log-log"):
        r = r_reference["followup"].query("dataset == @dataset and conf == @conf").iloc[0]
        ours = median_follow_up(patients["pfs_months"], patients["pfs_event"], transform=conf)
        mine = [ours[k] if ours[k] is not None else np.nan for k in ("median", "ci_low", "ci_high")]
        close(mine, r[["median", "lower", "upper"]], f"{dataset} {conf}")


def cox_cases(data, r_reference) -> dict[tuple[str, str], tuple[pd.DataFrame, CoxSpec]]:
    continue_separated = data.separation[data.separation["cohort"] == "continue"]
    heart = r_reference["heart"]
    return {
        ("demo", "mrd_strata"): (data.demo, spec("mrd_positive", strata=("cohort",))),
        ("demo", "mrd_age_strata"): (data.demo, spec("mrd_positive", "age", strata=("cohort",))),
        ("demo", "mrd_age_stop"): (data.demo[data.demo["cohort"] == "stop"], spec("mrd_positive", "age")),
        ("heart", "time_varying"): (
            heart,
            CoxSpec(
                covariates=["transplant", "age", "surgery"],
                start="start",
                stop="stop",
                id_col="id",
                event="event",
            ),
        ),  # fmt: skip
        ("separation", "mrd"): (continue_separated, spec("mrd_positive")),
        ("separation", "mrd_age"): (continue_separated, spec("mrd_positive", "age")),
        ("bundled", "mrd_strata"): (data.bundled, spec("mrd_positive", strata=("cohort",))),
    }


@pytest.mark.external
def test_cox_fits_reach_rs_optimum_and_concordance_se(data, r_reference):
    """Coefficients, standard errors, log likelihoods and cox.zph to 1e-12 (R's optimum at eps = 1e-14), the
    concordance and its standard error; under monotone likelihood the finite coefficients, LR and score."""
    for (dataset, model), (frame, model_spec) in cox_cases(data, r_reference).items():
        result = fit_cox(frame, model_spec)
        r = r_reference["cox"].query("dataset == @dataset and model == @model").set_index("term")
        terms = result.terms.set_index("term")
        finite = terms["coef"].notna()
        what = f"{dataset} {model}"
        close(terms.loc[finite, "coef"], r.loc[finite[finite].index, "coef"], f"{what} coef", rtol=1e-12)
        close(terms.loc[finite, "se"], r.loc[finite[finite].index, "se"], f"{what} se", rtol=1e-11)
        close([result.loglik_null, result.score_chisq], r[["loglik_null", "score"]].iloc[0], what, rtol=1e-12)
        # Under monotone likelihood R's log likelihood is within ~1e-13 of the supremum ours reaches.
        close([result.loglik, result.lr_chisq], r[["loglik", "lr"]].iloc[0], f"{what} loglik, LR", rtol=1e-11)
        assert result.monotone_likelihood == (~finite).any(), what
        c = r_reference["concordance"].query("dataset == @dataset and model == @model").iloc[0]
        close([result.concordance, result.concordance_se], [c["concordance"], c["se"]], f"{what} C")
        zph = r_reference["zph"].query("dataset == @dataset and model == @model").set_index("term")
        if not result.monotone_likelihood:
            close(terms["ph_chisq"], zph.loc[terms.index, "chisq"], f"{what} cox.zph", rtol=1e-11)
            close(
                result.zph_global["chisq"], zph.loc["GLOBAL", "chisq"], f"{what} cox.zph GLOBAL", rtol=1e-11
            )


@pytest.mark.external
def test_firth_matches_its_definition_evaluated_in_r(data, r_reference):
    """Estimate, profile penalized-likelihood limits, penalized LR statistic and log likelihoods against Firth's
    penalized Breslow likelihood maximised in R (optimize/uniroot on coxph's own likelihood and information)."""
    continue_separated = data.separation[data.separation["cohort"] == "continue"]
    cases = {
        ("separation", "mrd"): (continue_separated, spec("mrd_positive")),
        ("separation", "mrd_age"): (continue_separated, spec("mrd_positive", "age")),
        ("separation", "mrd_strata"): (data.separation, spec("mrd_positive", strata=("cohort",))),
        ("bundled", "mrd"): (data.bundled, spec("mrd_positive")),
        ("heart", "separated"): (heart_without_deaths_after_transplant(r_reference["heart"]), HEART_SPEC),
    }
    for (dataset, model), (frame, model_spec) in cases.items():
        r = r_reference["firth"].query("dataset == @dataset and model == @model").iloc[0]
        fit = firth_cox(model_spec.arrays(frame))
        what = f"{dataset} {model}"
        # R's optimize places a flat maximum to ~1e-8; the values there, and the limits (roots of a sloped
        # function), are exact.
        close(fit.coef[0], r["coef"], f"{what} coef", rtol=1e-7)
        close([fit.ci_low[0], fit.ci_high[0]], r[["lower", "upper"]], f"{what} limits", rtol=1e-11)
        close([fit.loglik_null, fit.loglik], r[["loglik_null", "loglik"]], f"{what} logliks", rtol=1e-12)
        close(fit.term_chisq[0], r["chisq"], f"{what} penalized LR", rtol=1e-12)
        if model in ("mrd_age", "separated"):
            close(fit.coef[1], r["other_coef"], f"{what} age coef", rtol=1e-5)


HEART_SPEC = CoxSpec(covariates=["transplant", "age"], start="start", stop="stop", id_col="id", event="event")


def heart_without_deaths_after_transplant(heart: pd.DataFrame) -> pd.DataFrame:
    """survival's heart data (counting-process rows) with every death after a transplant censored: the
    transplant coefficient runs off to minus infinity (monotone likelihood) on (start, stop] rows."""
    return heart.assign(event=np.where(heart["transplant"] == 1, 0, heart["event"]))


@pytest.mark.external
def test_a_time_varying_covariate_with_no_event_while_it_is_one_gets_the_firth_row(r_reference):
    heart = heart_without_deaths_after_transplant(r_reference["heart"])
    result = fit_cox_or_firth(heart, HEART_SPEC)
    transplant = result.terms.set_index("term").loc["transplant"]
    assert result.method == "firth" and result.n == heart["id"].nunique()
    assert 0 < transplant["hr_ci_low"] < transplant["hr"] < transplant["hr_ci_high"] < 1


@pytest.mark.external
def test_km_median_limit_of_a_non_monotone_band_matches_quantile_survfit(r_reference):
    """pbcseq, patients alive and transplant-free at 12 months, placebo arm: R's upper log limit 114.13."""
    landmark = r_reference["pbcseq_landmark"]
    table = km_table(landmark["time"], landmark["event"])
    for conf in ("log", "log-log"):
        r = r_reference["quantile"].query("conf == @conf").iloc[0]
        median = km_median(table, conf)
        close([median.median, median.low, median.high], r[["median", "lower", "upper"]], conf)
    assert km_median(table, "log").high == pytest.approx(114.13, abs=0.005)  # months from the landmark


@pytest.mark.external
@pytest.mark.parametrize("dataset", ["bundled", "demo", "separation"])
def test_safe_to_stop_at_baseline_matches_binom_test_and_survfit(data, r_reference, dataset):
    """1-year PFS by baseline status and the accuracy of MRD-positivity, per cohort and pooled: counts exactly,
    the KM estimate and every exact interval to 1e-9. With separation (no progression among the MRD-negative
    patients of `continue`), where the Cox model needs Firth's penalty, the 2x2 table is plain: NPV = 1."""
    patients = getattr(data, dataset)
    frame = patients.rename(columns={"pfs_months": "time", "pfs_event": "event", "group": "status"})
    result = safe_to_stop({"baseline": frame}, sorted(patients["cohort"].unique()), 12.0)
    for name, ours, key in [
        ("safe_to_stop", result.figures, ["cohort", "mrd_status"]),
        ("safe_to_stop_accuracy", result.accuracy, ["cohort"]),
    ]:
        r = r_reference[name].query("dataset == @dataset").set_index(key)
        ours = ours.set_index(key)
        assert sorted(ours.index) == sorted(r.index)
        for column in ours.columns.drop("timepoint"):
            close(ours[column], r.loc[ours.index, column], f"{dataset} {name} {column}")
    accuracy = result.accuracy.set_index("cohort")
    if dataset == "separation":
        assert accuracy.loc["continue", "false_negative"] == 0 and accuracy.loc["continue", "npv"] == 1
    if dataset == "bundled":  # six patients; one MRD-negative baseline, progression-free for 19 months
        assert result.figures["n"].sum() == 2 * 6 and accuracy.loc["all", "not_evaluable"] == 0
