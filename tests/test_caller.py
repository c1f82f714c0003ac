"""MRD calling: likelihood, tumor fraction and its interval, the test of TF = 0, calibration, LOD95, status."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats
from test_background import CohortSpec, simulate_cohort

from mrdtrack.calling import (
    CALL_COLUMNS,
    CallSettings,
    LikelihoodTerms,
    NullDistribution,
    build_background,
    call_cohort,
    lod95,
    null_distribution,
    seeded_rng,
)
from mrdtrack.calling.analytic_lod import AnalyticDetection
from mrdtrack.calling.calibration import mark_contamination, null_panels
from mrdtrack.calling.caller import _flags, decide_status
from mrdtrack.calling.inference import chibar_p_value, lr_statistic_rows, mle, profile_ci
from mrdtrack.calling.likelihood import log_likelihood
from mrdtrack.calling.null import calibrate_threshold, simulate_null_statistics
from mrdtrack.calling.score import find_outliers, mtm_per_ml
from mrdtrack.logs import UserFacingError
from mrdtrack.tables import write_tsv

FAST = CallSettings(
    null_draws=2000, lod_draws=400, fragment_lengths=False
)  # counts only (test_fraglen: lengths)


def arrays(*values):
    return tuple(np.asarray(v, dtype=float) for v in values)


# ----------------------------------------------------------------------------------------------------------
# Likelihood and tumor fraction
# ----------------------------------------------------------------------------------------------------------
def test_log_likelihood_is_the_binomial_with_alt_probability_e_plus_tumor_share():
    a, n, e, w = arrays([2, 0], [10, 50], [0.01, 0.001], [1.0, 0.5])
    f = 0.1
    p = np.array([0.01 + 0.99 * 0.1 / 2, 0.001 + 0.999 * 0.1 * 0.5 / 2])
    by_hand = (np.log(special.comb(10, 2)) + 2 * np.log(p[0]) + 8 * np.log(1 - p[0])) + 50 * np.log(1 - p[1])
    assert log_likelihood(f, a, n, e, w) == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize(("a", "n", "w"), [(3, 200, 0.8), (1, 10_000, 1.0), (40, 100, 1.0)])
def test_with_no_background_one_locus_gives_the_closed_form_tf(a, n, w):
    assert mle(*arrays([a], [n], [0.0], [w])) == pytest.approx(2 * a / (n * w), rel=1e-9)


def test_tf_is_zero_without_excess_and_bounded_by_one():
    assert mle(*arrays([0, 0], [500, 500], [1e-4, 1e-4], [1, 1])) == 0.0
    assert mle(*arrays([1], [10_000], [1e-3], [1])) == 0.0  # 1 ALT where 10 are expected
    assert mle(*arrays([100], [100], [1e-4], [1])) == 1.0  # more ALT than a heterozygous SNV can give


def test_mle_maximizes_the_likelihood():
    a, n, e, w = arrays([2, 1, 0, 4], [300, 250, 400, 350], [1e-4, 2e-5, 3e-4, 1e-5], [1, 0.6, 1, 0.9])
    f = mle(a, n, e, w)
    assert 0 < f < 1
    for other in (f * 0.99, f * 1.01):
        assert log_likelihood(f, a, n, e, w) > log_likelihood(other, a, n, e, w)


def test_profile_interval_ends_where_twice_the_log_likelihood_drop_is_3_841():
    a, n, e, w = arrays([3, 5, 2], [400, 500, 300], [1e-4, 1e-4, 1e-4], [1, 1, 0.7])
    f = mle(a, n, e, w)
    low, high = profile_ci(a, n, e, w)
    assert 0 < low < f < high < 1
    for bound in (low, high):
        drop = 2 * (log_likelihood(f, a, n, e, w) - log_likelihood(bound, a, n, e, w))
        assert drop == pytest.approx(stats.chi2.ppf(0.95, 1), abs=1e-6)


def test_profile_interval_starts_at_zero_when_zero_is_not_excluded():
    a, n, e, w = arrays([1, 0], [400, 500], [1e-4, 1e-4], [1, 1])
    low, high = profile_ci(a, n, e, w)
    assert low == 0.0 and high > mle(a, n, e, w)


# ----------------------------------------------------------------------------------------------------------
# The test of TF = 0
# ----------------------------------------------------------------------------------------------------------
def test_boundary_lrt_p_value_is_the_50_50_chi_bar_mixture():
    assert chibar_p_value(0.0) == 1.0
    assert chibar_p_value(stats.chi2.ppf(0.95, 1)) == pytest.approx(0.025)
    assert chibar_p_value(stats.chi2.ppf(0.90, 1)) == pytest.approx(0.05)
    assert np.allclose(chibar_p_value(np.array([0.0, 2.7055])), [1.0, 0.05], atol=1e-4)


def test_monte_carlo_null_is_exact_and_matches_the_asymptotics_with_many_expected_molecules():
    n, e, w = arrays([200] * 20, [5e-3] * 20, [1] * 20)  # 20 background molecules expected
    stats_null = simulate_null_statistics(LikelihoodTerms.of_loci(n, e, w), 20_000, np.random.default_rng(1))
    mc = NullDistribution("monte_carlo", stats_null)
    crit = stats.chi2.isf(2 * 0.01, 1)
    assert mc.p_value(crit) == pytest.approx(0.01, abs=0.003)


def test_monte_carlo_p_values_keep_the_false_positive_rate_with_few_expected_molecules():
    rng = np.random.default_rng(2)
    n, e, w = arrays([150] * 30, rng.lognormal(np.log(2e-5), 1, 30), rng.uniform(0.4, 1, 30))
    null = null_distribution(
        LikelihoodTerms.of_loci(n, e, w), CallSettings(p_value_method="monte_carlo"), seeded_rng(1, "x")
    )
    tables = rng.binomial(n.astype(int), e, size=(20_000, 30))
    p = null.p_value(lr_statistic_rows(tables, n, e, w))
    for alpha in (0.01, 0.05):
        assert (p <= alpha).mean() <= alpha + 2 * np.sqrt(alpha / 20_000)


def test_auto_picks_monte_carlo_only_when_few_background_molecules_are_expected():
    settings = CallSettings(monte_carlo_max_expected=20, null_draws=100)
    few = null_distribution(
        LikelihoodTerms.of_loci(*arrays([100] * 10, [1e-4] * 10, [1] * 10)), settings, seeded_rng(1)
    )
    many = null_distribution(
        LikelihoodTerms.of_loci(*arrays([10_000] * 10, [1e-3] * 10, [1] * 10)), settings, seeded_rng(1)
    )
    assert (few.method, many.method) == ("monte_carlo", "asymptotic")


# ----------------------------------------------------------------------------------------------------------
# Calibration
# ----------------------------------------------------------------------------------------------------------
def test_threshold_is_the_configured_rate_when_the_null_scores_allow_it():
    null = np.linspace(0.001, 1, 1000)  # exactly uniform: 1% at or below 0.01
    assert calibrate_threshold(null, 0.01) == 0.01


def test_threshold_drops_to_the_largest_cut_with_at_most_the_rate_of_null_positives():
    null = np.concatenate([[1e-6, 2e-6, 5e-4, 8e-4, 0.002, 0.004], np.linspace(0.02, 1, 194)])  # 200 scores
    threshold = calibrate_threshold(null, 0.01)  # 2 false positives allowed
    assert threshold == 2e-6
    assert (null <= threshold).mean() <= 0.01


def test_calibration_holds_the_false_positive_rate_on_fresh_overdispersed_null_samples():
    """The model assumes a fixed e per locus; here each sample's noise differs (batch-like), so model
    p-values are too small. The threshold learnt on one half of the null samples protects the other half."""
    rng = np.random.default_rng(3)
    loci = 25
    n, e, w = arrays([300] * loci, rng.lognormal(np.log(1e-4), 0.7, loci), [1] * loci)
    scale = rng.gamma(2.0, 0.5, size=(4000, 1))  # per-sample noise multiplier, mean 1
    tables = rng.binomial(n.astype(int), np.minimum(e * scale, 1))
    p = NullDistribution("asymptotic").p_value(lr_statistic_rows(tables, n, e, w))
    train, test = p[:2000], p[2000:]
    assert (test <= 0.01).mean() > 0.015  # uncalibrated: too many false positives
    threshold = calibrate_threshold(train, 0.01)
    assert threshold < 0.01
    assert (test <= threshold).mean() <= 0.01 + 2 * np.sqrt(0.01 / 2000)


# ----------------------------------------------------------------------------------------------------------
# LOD95
# ----------------------------------------------------------------------------------------------------------
def test_lod95_matches_the_poisson_three_molecule_rule_when_one_mutant_molecule_may_call():
    # Background so low that a single ALT molecule is significant and, with the support rule off, may call:
    # detection = at least one tumor molecule, P(>= 1) = 1 - exp(-N f / 2) = 0.95  =>  f = 2 ln(20) / N.
    n, e, w = arrays([1000] * 10, [1e-7] * 10, [1] * 10)
    settings = CallSettings(lod_draws=4000, null_draws=2000, min_mutant_fragments=1, min_mutant_loci=1)
    null = null_distribution(LikelihoodTerms.of_loci(n, e, w), settings, seeded_rng(1))
    lod = lod95(LikelihoodTerms.of_loci(n, e, w), 0.01, null, settings, seeded_rng(2))
    assert lod == pytest.approx(2 * np.log(20) / 10_000, rel=0.08)


def test_lod95_is_where_two_loci_show_tumor_molecules_when_a_positive_needs_two():
    # The same loci with the default support rule: a call needs mutant fragments at >= 2 of the 10 loci. Each
    # locus shows one with probability 1 - exp(-1000 f / 2); the LOD is where >= 2 of 10 do with 95%.
    n, e, w = arrays([1000] * 10, [1e-7] * 10, [1] * 10)
    settings = CallSettings(lod_draws=4000, null_draws=2000)
    null = null_distribution(LikelihoodTerms.of_loci(n, e, w), settings, seeded_rng(1))
    lod = lod95(LikelihoodTerms.of_loci(n, e, w), 0.01, null, settings, seeded_rng(2))

    def two_loci_short_of_95(f: float) -> float:
        return stats.binom.sf(1, 10, -np.expm1(-1000 * f / 2)) - 0.95

    expected = optimize.brentq(two_loci_short_of_95, 1e-6, 1e-2)
    assert lod == pytest.approx(expected, rel=0.08)
    assert lod > 1.5 * 2 * np.log(20) / 10_000  # well above the one-molecule rule


def test_lod95_falls_with_depth_and_rises_with_noise():
    def lod(depth: float, rate: float) -> float:
        n, e, w = arrays([depth] * 20, [rate] * 20, [1] * 20)
        null = null_distribution(LikelihoodTerms.of_loci(n, e, w), FAST, seeded_rng(1))
        return lod95(LikelihoodTerms.of_loci(n, e, w), 0.01, null, FAST, seeded_rng(2))

    depths = [lod(d, 1e-4) for d in (100, 300, 1000, 3000)]
    assert all(a > b for a, b in zip(depths, depths[1:], strict=False))
    assert lod(1000, 1e-3) > lod(1000, 1e-5)


def test_lod95_is_missing_when_even_pure_tumor_would_not_be_detected():
    n, e, w = arrays([1], [0.2], [1])
    null = null_distribution(LikelihoodTerms.of_loci(n, e, w), FAST, seeded_rng(1))
    assert np.isnan(lod95(LikelihoodTerms.of_loci(n, e, w), 0.001, null, FAST, seeded_rng(2)))


# ----------------------------------------------------------------------------------------------------------
# Outlier loci
# ----------------------------------------------------------------------------------------------------------
def test_a_locus_with_alt_the_other_loci_cannot_explain_is_an_outlier():
    a, n, e, w = arrays([6] + [0] * 19, [150] * 20, [1e-5] * 20, [1] * 20)
    assert list(np.flatnonzero(find_outliers(a, n, e, w, 1e-4))) == [0]


def test_a_chip_clone_in_tumor_free_plasma_is_an_outlier_whatever_noise_the_quiet_loci_show():
    # A tumor-free sample (as simulated by benchmarks/detection.py): a few noise molecules at its noisier loci,
    # two at a quiet one, and 11 at a blood clone's locus where 0.04 are expected.
    shown = [(2, 5581, 4.2e-4), (1, 3575, 3.9e-4), (1, 3561, 2.9e-4), (2, 4219, 1e-5), (3, 3825, 4.2e-4),
             (4, 6225, 6.6e-4), (4, 3390, 5.7e-4), (1, 2641, 1.9e-4), (11, 2668, 1.5e-5), (3, 4295, 4.3e-4),
             (2, 4874, 2.2e-4), (4, 8742, 3.5e-4)]  # fmt: skip
    rng = np.random.default_rng(0)
    a = np.array([s[0] for s in shown] + [0] * 28, dtype=float)
    n = np.array([s[1] for s in shown] + list(rng.integers(2500, 6000, 28)), dtype=float)
    e = np.array([s[2] for s in shown] + [1e-5, 2e-5, 1e-4, 2e-4] * 7)
    # Without tumor DNA at the other loci there is no tumor VAF to spread: the two noise molecules at the quiet
    # locus must not widen the bound until the clone passes.
    assert list(np.flatnonzero(find_outliers(a, n, e, np.ones(40), 1e-4))) == [8]


def test_signal_spread_over_loci_or_thin_signal_in_one_locus_is_kept():
    rng = np.random.default_rng(4)
    a = rng.binomial(150, 0.02, 20).astype(float)
    n, e, w = arrays([150] * 20, [1e-5] * 20, [1] * 20)
    assert not find_outliers(a, n, e, w, 1e-4).any()
    two = arrays([2] + [0] * 19)[0]  # two molecules in one locus: tumor at ~1e-3 TF could do that
    assert not find_outliers(two, n, e, w, 1e-4).any()


# ----------------------------------------------------------------------------------------------------------
# Per-sample outputs
# ----------------------------------------------------------------------------------------------------------
def test_mtm_per_ml_is_half_tf_times_haploid_genomes_per_ml():
    assert mtm_per_ml(0.01, 20.0, 4.0) == pytest.approx(0.005 * 20_000 / 3.3 / 4)
    assert np.isnan(mtm_per_ml(0.01, float("nan"), 4.0))


@pytest.fixture(scope="module")
def cohort_calls():
    spec = CohortSpec(
        patients=6,
        loci_per_patient=25,
        controls=8,
        depth=400,
        plasma_tfs={"P1": [0.0, 0.02], "P2": [0.0], "P3": [0.0], "P4": [0.0], "P5": [0.01], "P6": [0.0]},
        depth_of={"P3": 20},  # a shallow library: cannot rule MRD out
        contamination={"P4": ("P5", 0.05)},
        noisy={30: 5e-3},
        chip={1: 0.05},
        seed=21,
    )
    cohort = simulate_cohort(spec)
    model = build_background(cohort.counts, cohort.samples)
    result = call_cohort(cohort.counts, cohort.samples, cohort.panel, model.locus_rates, model.excluded, FAST)
    return cohort, model, result


def test_calls_follow_the_contract_columns_and_sort_order(cohort_calls):
    _, _, result = cohort_calls
    calls = result.calls
    assert list(calls.columns[:18]) == CALL_COLUMNS[:18]
    assert list(calls["sample_id"]) == ["S_P1_1", "S_P1_2", "S_P2_1", "S_P3_1", "S_P4_1", "S_P5_1", "S_P6_1"]
    assert (calls["threshold"] == result.threshold).all() and result.threshold <= 0.01


def test_status_reflects_signal_depth_and_detection_limit(cohort_calls):
    _, _, result = cohort_calls
    status = dict(zip(result.calls["sample_id"], result.calls["mrd_status"], strict=True))
    assert status["S_P1_2"] == status["S_P5_1"] == "positive"
    assert status["S_P1_1"] == status["S_P2_1"] == status["S_P6_1"] == "negative"
    assert status["S_P3_1"] == "indeterminate"
    shallow = result.calls.set_index("sample_id").loc["S_P3_1"]
    assert "too few" in shallow["status_reason"] or "LOD95" in shallow["status_reason"]


def test_tumor_fraction_interval_covers_the_truth(cohort_calls):
    _, _, result = cohort_calls
    calls = result.calls.set_index("sample_id")
    for sample, truth in (("S_P1_2", 0.02), ("S_P5_1", 0.01)):
        assert calls.loc[sample, "tf_ci_low"] <= truth <= calls.loc[sample, "tf_ci_high"]
    assert calls.loc["S_P1_2", "mtm_per_ml"] == pytest.approx(
        calls.loc["S_P1_2", "tumor_fraction"] / 2 * 20_000 / 3.3 / 4
    )


def test_a_sample_carrying_another_patients_tumor_dna_is_flagged(cohort_calls):
    _, _, result = cohort_calls
    flags = result.calls.set_index("sample_id")["flags"]
    assert "possible_contamination:P5" in flags["S_P4_1"].split(";")
    assert not flags.drop("S_P4_1").str.contains("contamination").any()
    # ... and its score is kept out of the calibration, which would otherwise silence every real positive.
    nulls = result.null_scores.set_index(["sample_id", "panel_patient_id"])
    assert nulls.loc[("S_P4_1", "P5"), "contamination_candidate"]
    assert not nulls.loc[("S_P4_1", "P5"), "calibration"]
    assert nulls["contamination_candidate"].sum() == 1


def test_two_mutant_fragments_at_another_patients_panel_are_not_contamination():
    """Two fragments are the least a supported score holds and what noise gives now and then: they stay in the
    calibration, and no call is flagged for them; three set the score aside and flag the sample."""

    def null_score(sample_id: str, fragments: int) -> dict:
        return {
            "sample_id": sample_id, "sample_type": "plasma", "sample_patient_id": "P1", "panel_patient_id": "P2",
            "n_loci_used": 16, "mutant_molecules": fragments, "total_molecules": 3000, "tumor_fraction": 1e-3,
            "lr_statistic": 8.0, "p_value": 0.002, "p_value_method": "monte_carlo", "calibration": True,
            "mutant_fragments": fragments, "mutant_loci": 2, "supported": True,
        }  # fmt: skip

    nulls = mark_contamination(pd.DataFrame([null_score("two", 2), null_score("three", 3)]), FAST)
    marked = nulls.set_index("sample_id")
    assert not marked.loc["two", "contamination_candidate"] and marked.loc["two", "calibration"]
    assert marked.loc["three", "contamination_candidate"] and not marked.loc["three", "calibration"]
    assert _flags("two", nulls, 0.01, 0, FAST) == ""
    assert _flags("three", nulls, 0.01, 0, FAST) == "possible_contamination:P2"


def test_a_contaminating_patients_loci_do_not_make_the_sample_look_noisy(cohort_calls):
    """The donor's mutant molecules are signal, not the library's noise: left in the sample's background scale
    they made S_P4_1 look 8x noisier than the others and its LOD95 1.6x worse."""
    _, _, result = cohort_calls
    calls = result.calls.set_index("sample_id")
    clean = calls.drop(["S_P4_1", "S_P3_1"])  # S_P3_1: shallow, its scale stays near the prior's 1
    assert calls.loc["S_P4_1", "background_scale"] <= 1.5 * clean["background_scale"].max()
    assert calls.loc["S_P4_1", "lod95"] <= 1.3 * clean["lod95"].max()


def test_loci_table_says_which_loci_were_dropped_and_why(cohort_calls):
    cohort, _, result = cohort_calls
    loci = result.loci
    p1 = loci[loci["sample_id"] == "S_P1_1"]
    assert len(p1) == 25
    chip_pos = cohort.panel.iloc[1]["pos"]
    assert p1.set_index("pos").loc[chip_pos, "reason"] == "chip_in_matched_normal"
    noisy = loci[loci["pos"] == cohort.panel.iloc[30]["pos"]]
    assert set(noisy["reason"]) == {"noisy_locus"} and not noisy["used"].any()
    calls = result.calls.set_index("sample_id")
    assert calls.loc["S_P1_1", "n_loci_used"] == p1["used"].sum() == 24


def test_null_scores_cover_every_sample_against_every_other_panel(cohort_calls):
    cohort, _, result = cohort_calls
    nulls = result.null_scores
    scored = cohort.samples[cohort.samples["sample_type"] != "normal"]
    assert len(nulls) == (scored["patient_id"] == "").sum() * 6 + (scored["patient_id"] != "").sum() * 5
    assert not (nulls["sample_patient_id"] == nulls["panel_patient_id"]).any()
    assert nulls["p_value"].between(0, 1).all()


def test_each_sample_is_scored_against_a_bounded_fixed_set_of_other_panels():
    panels = [f"P{i:02d}" for i in range(82)]
    settings = CallSettings(max_null_panels=10)
    chosen = null_panels("S1", "P05", panels, settings)
    assert len(chosen) == 10 and "P05" not in chosen
    assert null_panels("S1", "P05", panels[::-1], settings) == chosen  # whatever the cohort's order
    assert null_panels("S2", "P05", panels, settings) != chosen  # samples spread over the panels
    # Every panel is scored by some samples: 600 samples x 10 panels cover all 82.
    covered = {p for i in range(600) for p in null_panels(f"S{i}", panels[i % 82], panels, settings)}
    assert covered == set(panels)
    assert len(null_panels("S1", "P05", panels, CallSettings(max_null_panels=None))) == 81


def test_null_scores_grow_with_the_samples_not_with_samples_times_patients():
    spec = CohortSpec(patients=8, loci_per_patient=10, depth=200, plasma_tfs={"P1": [0.0]}, seed=3)
    cohort = simulate_cohort(spec)
    background = build_background(cohort.counts, cohort.samples)
    result = call_cohort(
        cohort.counts, cohort.samples, cohort.panel, background.locus_rates, background.excluded,
        replace(FAST, max_null_panels=3),
    )  # fmt: skip
    scored = cohort.samples["sample_type"].isin(["plasma", "control"]).sum()
    assert len(result.null_scores) == 3 * scored
    assert result.null_scores.groupby("sample_id").size().eq(3).all()


def test_in_sample_outlier_locus_is_dropped_and_reported():
    spec = CohortSpec(patients=4, loci_per_patient=20, depth=300, plasma_tfs={"P1": [0.0]}, seed=5)
    cohort = simulate_cohort(spec)
    counts = cohort.counts.copy()
    # A locus artifact in this one library only (the background cannot know it): 8 ALT molecules.
    target = (counts["sample_id"] == "S_P1_1") & (counts["pos"] == cohort.panel.iloc[3]["pos"])
    counts.loc[target, "alt_molecules"] = 8
    model = build_background(counts, cohort.samples)
    result = call_cohort(counts, cohort.samples, cohort.panel, model.locus_rates, model.excluded, FAST)
    call = result.calls.set_index("sample_id").loc["S_P1_1"]
    assert (
        call["mrd_status"] == "negative" and call["n_loci_outlier"] == 1 and "outlier_loci:1" in call["flags"]
    )
    reasons = result.loci.set_index("pos").loc[cohort.panel.iloc[3]["pos"], "reason"]
    assert reasons == "outlier_in_sample"


def test_too_few_loci_is_indeterminate_whatever_the_signal():
    spec = CohortSpec(patients=3, loci_per_patient=4, depth=500, plasma_tfs={"P1": [0.05]}, seed=6)
    cohort = simulate_cohort(spec)
    model = build_background(cohort.counts, cohort.samples)
    result = call_cohort(cohort.counts, cohort.samples, cohort.panel, model.locus_rates, model.excluded, FAST)
    call = result.calls.set_index("sample_id").loc["S_P1_1"]
    assert call["mrd_status"] == "indeterminate"
    assert re.match(r"only \d usable panel loci \(minimum 5\)", call["status_reason"])


@pytest.mark.parametrize("workers", [1, 3])
def test_reruns_write_byte_identical_tables_whatever_the_number_of_worker_processes(
    tmp_path, cohort_calls, workers
):
    cohort, model, first = cohort_calls
    again = call_cohort(
        cohort.counts, cohort.samples, cohort.panel, model.locus_rates, model.excluded, FAST, workers=workers
    )
    for name in ("calls", "loci", "null_scores"):
        write_tsv(getattr(first, name), tmp_path / f"{name}.1.tsv")
        write_tsv(getattr(again, name), tmp_path / f"{name}.2.tsv")
        assert (tmp_path / f"{name}.1.tsv").read_bytes() == (tmp_path / f"{name}.2.tsv").read_bytes()


def test_settings_come_from_the_config_section_and_typos_are_user_errors():
    assert CallSettings.from_config({"false_positive_rate": 0.05}).false_positive_rate == 0.05
    with pytest.raises(UserFacingError, match="false_positive_rate"):
        CallSettings.from_config({"false_positve_rate": 0.05})
    with pytest.raises(UserFacingError):
        CallSettings.from_config({"p_value_method": "exact"})


def test_a_sample_of_a_patient_without_panel_is_indeterminate():
    spec = CohortSpec(patients=3, loci_per_patient=10, seed=8)
    cohort = simulate_cohort(spec)
    samples = pd.concat(
        [cohort.samples, pd.DataFrame([{"sample_id": "S_X", "patient_id": "PX", "sample_type": "plasma"}])]
    )
    extra = cohort.counts[cohort.counts["sample_id"] == "C1"].assign(sample_id="S_X")
    counts = pd.concat([cohort.counts, extra])
    model = build_background(counts, samples)
    result = call_cohort(counts, samples, cohort.panel, model.locus_rates, model.excluded, FAST)
    call = result.calls.set_index("sample_id").loc["S_X"]
    assert call["mrd_status"] == "indeterminate" and "no panel" in call["status_reason"]


def test_a_hotspot_shared_by_two_panels_neither_leaks_nor_looks_like_contamination():
    spec = CohortSpec(patients=4, loci_per_patient=12, depth=400, plasma_tfs={"P1": [0.05]}, seed=10)
    cohort = simulate_cohort(spec)
    hotspot = cohort.panel.iloc[0]  # P1's first locus joins P2's panel too
    panel = pd.concat([cohort.panel, hotspot.to_frame().T.assign(patient_id="P2")], ignore_index=True)
    panel["pos"] = panel["pos"].astype(int)
    panel["weight"] = panel["weight"].astype(float)
    counts = cohort.counts.copy()
    counts.loc[counts["pos"] == hotspot["pos"], "panel_patients"] = "P1,P2"
    model = build_background(counts, cohort.samples)
    result = call_cohort(counts, cohort.samples, panel, model.locus_rates, model.excluded, FAST)
    row = model.locus_rates.set_index("pos").loc[hotspot["pos"]]
    assert row["n_samples"] == len(cohort.samples) - 4  # neither P1's nor P2's plasma and normal
    nulls = result.null_scores.set_index(["sample_id", "panel_patient_id"])
    assert nulls.loc[("S_P1_1", "P2"), "n_loci_used"] == 12  # P2's 13 loci less the one P1 shares
    assert result.calls.set_index("sample_id").loc["S_P1_1", "flags"] == ""


def test_a_panel_locus_missing_from_the_background_is_reported_at_its_own_coordinates():
    spec = CohortSpec(patients=3, loci_per_patient=10, plasma_tfs={"P1": [0.0]}, seed=12)
    cohort = simulate_cohort(spec)
    extra = cohort.panel.iloc[[0]].assign(pos=999_999)
    panel = pd.concat([cohort.panel, extra], ignore_index=True)
    model = build_background(cohort.counts, cohort.samples)
    result = call_cohort(cohort.counts, cohort.samples, panel, model.locus_rates, model.excluded, FAST)
    row = result.loci.set_index("pos").loc[999_999]
    assert (row["reason"], row["used"], row["alt_molecules"]) == ("no_background", False, 0)


def _oxog_cohort() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Six patients with 20 G>T loci each and eight healthy controls, 1,000 molecules per locus, half in each
    read orientation; every library carries 8-oxoG damage: G>T in 2e-3 of its F1R2 molecules, 5e-5 of its F2R1
    ones. Plasma S_<patient>_1 per patient, tumor-free. (counts, samples, panel)"""
    rng = np.random.default_rng(8)
    patients = [f"P{k + 1}" for k in range(6)]
    contexts = [left + "G" + right for left, right in rng.choice(list("ACGT"), (120, 2))]
    panel = pd.DataFrame({
        "patient_id": np.repeat(patients, 20), "chrom": "chr1", "pos": 1000 + 1000 * np.arange(120),
        "ref": "G", "alt": "T", "context": contexts, "weight": 1.0,
    })  # fmt: skip
    names = [f"C{k + 1}" for k in range(8)] + [f"S_{p}_1" for p in patients]
    frames = []
    for name in names:
        alt_f1r2, alt_f2r1 = rng.binomial(500, 2e-3, 120), rng.binomial(500, 5e-5, 120)
        frames.append(panel[["chrom", "pos", "ref", "alt", "context"]].assign(
            sample_id=name, panel_patients=panel["patient_id"], alt_f1r2=alt_f1r2, alt_f2r1=alt_f2r1,
        ))  # fmt: skip
    counts = pd.concat(frames, ignore_index=True)
    samples = pd.DataFrame({
        "sample_id": names, "patient_id": [""] * 8 + patients, "sample_type": ["control"] * 8 + ["plasma"] * 6,
        "collection_date": "2024-01-01", "batch": "b1",
    })  # fmt: skip
    return counts, samples, panel


def _with_alts(
    counts: pd.DataFrame, sample_id: str, patient: str, alt_f1r2: np.ndarray, alt_f2r1: np.ndarray
) -> None:
    at = ((counts["sample_id"] == sample_id) & (counts["panel_patients"] == patient)).to_numpy()
    counts.loc[at, "alt_f1r2"], counts.loc[at, "alt_f2r1"] = alt_f1r2, alt_f2r1


def _oriented_tables(counts: pd.DataFrame) -> pd.DataFrame:
    counts = counts.assign(ref_f1r2=500 - counts["alt_f1r2"], ref_f2r1=500 - counts["alt_f2r1"])
    return counts.assign(
        alt_molecules=counts["alt_f1r2"] + counts["alt_f2r1"], ref_molecules=counts["ref_f1r2"] + counts["ref_f2r1"],
        other_molecules=0, discordant_molecules=0, reads=2000, mean_family_size=2.0, alt_lengths="",
    )  # fmt: skip


def test_a_librarys_f1r2_only_gt_excess_stays_negative_while_the_same_count_in_both_orientations_is_positive():
    counts, samples, panel = _oxog_cohort()
    # S_P1_1: 20 G>T molecules at its 20 loci, all F1R2, where the damage there predicts 20 and the F2R1 0.5.
    _with_alts(counts, "S_P1_1", "P1", np.ones(20), np.zeros(20))
    # S_P2_1: the same 20 molecules, half of them in the F2R1 orientation: tumor DNA shows in both.
    _with_alts(counts, "S_P2_1", "P2", np.tile([1, 0], 10), np.tile([0, 1], 10))
    counts = _oriented_tables(counts)
    model = build_background(counts, samples)
    rates = model.locus_rates
    assert (rates["rate_f1r2"] > 10 * rates["rate_f2r1"]).all()  # the background learned the damage
    assert np.allclose((rates["rate_f1r2"] + rates["rate_f2r1"]) / 2, rates["rate"], rtol=0.02)

    def statuses(locus_rates: pd.DataFrame) -> dict[str, str]:
        calls = call_cohort(counts, samples, panel, locus_rates, model.excluded, FAST).calls
        return dict(zip(calls["sample_id"], calls["mrd_status"], strict=True))

    oriented = statuses(rates)
    assert oriented["S_P1_1"] == "negative" and oriented["S_P2_1"] == "positive"
    # A background without orientations sees 20 G>T molecules where 20.5 are expected in both samples.
    blind = statuses(rates.drop(columns=["rate_f1r2", "rate_f2r1"]))
    assert blind["S_P1_1"] == blind["S_P2_1"] == "negative"


def test_8_oxog_seen_as_gt_in_f1r2_molecules_is_ca_in_f2r1_ones_of_the_other_strand():
    counts, samples, panel = _oxog_cohort()
    # Half the loci read on the other strand: C>A at the reverse complement, the damage in F2R1 molecules.
    mirrored = np.isin(counts["pos"], panel["pos"][::2])
    complement = str.maketrans("ACGT", "TGCA")
    counts.loc[mirrored, "context"] = [c.translate(complement)[::-1] for c in counts.loc[mirrored, "context"]]
    counts.loc[mirrored, ["ref", "alt"]] = ["C", "A"]
    counts.loc[mirrored, ["alt_f1r2", "alt_f2r1"]] = counts.loc[mirrored, ["alt_f2r1", "alt_f1r2"]].to_numpy()
    rates = build_background(_oriented_tables(counts), samples).locus_rates
    gt, ca = rates[rates["ref"] == "G"], rates[rates["ref"] == "C"]
    assert len(gt) == len(ca) == 60
    assert (gt["rate_f1r2"] > 10 * gt["rate_f2r1"]).all() and (ca["rate_f2r1"] > 10 * ca["rate_f1r2"]).all()


def test_a_noisy_library_gets_its_own_background_scale_from_other_patients_loci():
    spec = CohortSpec(patients=5, loci_per_patient=25, controls=6, depth=2000, error_rate=1e-4, seed=5)
    cohort = simulate_cohort(spec)
    counts = cohort.counts.copy()
    # S_P2_1's library is 4x noisier than the cohort everywhere: damage, not tumor.
    rng = np.random.default_rng(3)
    noisy = (counts["sample_id"] == "S_P2_1").to_numpy()
    extra = rng.binomial(counts.loc[noisy, "ref_molecules"].to_numpy(), 3 * cohort.truth)
    counts.loc[noisy, "alt_molecules"] += extra
    counts.loc[noisy, "ref_molecules"] -= extra
    model = build_background(counts, cohort.samples)

    def calls(settings):
        result = call_cohort(
            counts, cohort.samples, cohort.panel, model.locus_rates, model.excluded, settings
        )
        return result.calls.set_index("sample_id"), result.loci

    scaled, loci = calls(FAST)
    assert 2.5 < scaled.loc["S_P2_1", "background_scale"] < 6
    others = scaled.drop(index="S_P2_1")["background_scale"]
    assert ((others > 0.6) & (others < 1.6)).all()
    # The sample's loci carry the scaled rate.
    mine = loci[loci["sample_id"] == "S_P2_1"].set_index(["chrom", "pos"])
    rate = model.locus_rates.set_index(["chrom", "pos"])["rate"].reindex(mine.index).to_numpy()
    assert np.allclose(mine["background_rate"], rate * scaled.loc["S_P2_1", "background_scale"])
    plain, _ = calls(replace(FAST, sample_background=False))
    assert (plain["background_scale"] == 1).all()
    # Against cohort-mean rates the noisy library looks like tumor; against its own level it does not.
    assert plain.loc["S_P2_1", "p_value"] < 1e-3 < scaled.loc["S_P2_1", "p_value"]


# ----------------------------------------------------------------------------------------------------------
# The QC gate of a genome-wide signature (config/README.md, "Genome-wide signatures")
# ----------------------------------------------------------------------------------------------------------
WGS_GATE = CallSettings(min_loci=500, min_molecules=10_000, max_lod95=1e-3)


def test_a_genome_wide_sample_needs_its_loci_for_any_call_and_its_molecules_and_lod_for_a_negative():
    support = {"mutant_fragments": 3, "mutant_loci": 3}
    # Too few usable loci: indeterminate, however strong the signal.
    assert decide_status(1e-12, 0.01, 5e-5, 499, 60_000, WGS_GATE, **support)[0] == "indeterminate"
    # Enough loci but too few molecules: not negative, though a supported signal is still a positive.
    assert decide_status(0.5, 0.01, 5e-4, 600, 9_999, WGS_GATE, **support)[0] == "indeterminate"
    assert decide_status(1e-6, 0.01, 5e-4, 600, 9_999, WGS_GATE, **support)[0] == "positive"
    # Enough of both: negative only with a LOD95 within the ceiling.
    assert decide_status(0.5, 0.01, 2e-3, 600, 12_000, WGS_GATE, **support)[0] == "indeterminate"
    assert decide_status(0.5, 0.01, 8e-4, 600, 12_000, WGS_GATE, **support)[0] == "negative"


def test_the_support_rule_puts_the_lod95_of_n_molecules_at_about_9_5_over_n_or_above():
    """Two mutant fragments are needed; at tumor fraction f each molecule carries the tumor ALT with chance f/2,
    and 2 or more of them come with 95% chance from a Poisson mean of 4.74: f = 9.5 / N without noise, and
    500 loci x 20 molecules (10,000) is about the least that reaches a LOD95 of 1e-3."""
    rng = np.random.default_rng(2)
    for loci, depth in ((500, 20), (2000, 30)):
        n = rng.poisson(depth, loci)
        quiet = LikelihoodTerms.of_loci(n, np.full(loci, 1e-7), np.ones(loci))
        noisy = LikelihoodTerms.of_loci(n, 10 ** rng.uniform(-5.3, -4.3, loci), np.ones(loci))
        settings = CallSettings(lod_method="analytic")
        lods = [
            AnalyticDetection(terms, NullDistribution("asymptotic"), 0.01, settings).lod(1e-8)
            for terms in (quiet, noisy)
        ]
        assert lods[0] == pytest.approx(9.5 / n.sum(), rel=0.05)
        assert lods[1] >= lods[0]
        if loci == 500:
            assert lods[1] == pytest.approx(1e-3, rel=0.1)
