"""The fragment likelihood (mrdtrack.calling.likelihood) and the rules that turn it into a call.

A fragment is one piece of evidence however many panel loci it covers; a positive call needs distinct mutant
fragments at distinct loci; the threshold is empirical only when the null can resolve the target rate; the
tumor-fraction interval widens when the loci's VAFs spread more than binomially.
"""

from __future__ import annotations

import ast
import logging
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from conftest import REPO
from mrdtrack.calling import (
    CallSettings,
    LikelihoodTerms,
    lod95,
    null_scores_needed,
    seeded_rng,
    threshold_from_null,
)
from mrdtrack.calling.caller import decide_status
from mrdtrack.calling.inference import (
    dispersion,
    effective_terms,
    fit,
    lr_statistics,
    profile_interval,
    root_in_bracket,
)
from mrdtrack.calling.likelihood import Observed, Tables
from mrdtrack.calling.null import calibrate_threshold
from mrdtrack.calling.score import Fragments, Orientations, evidence, score_loci
from mrdtrack.simulation import spread_weights

SETTINGS = CallSettings(null_draws=2000, lod_draws=400, fragment_lengths=False)


def fragments_covering(loci: tuple[int, ...], alt: list[bool], count: int, length: int = 166) -> Fragments:
    return Fragments((loci,), (np.array(alt),), (length if any(alt) else -1,), (count,))


# ----------------------------------------------------------------------------------------------------------
# One fragment, one molecule of evidence
# ----------------------------------------------------------------------------------------------------------
def test_a_fragment_covering_k_loci_contributes_its_mixture_likelihood_once():
    e, w = np.full(3, 1e-3), np.array([1.0, 0.8, 0.6])
    c = (1 - e) * w / 2
    terms = LikelihoodTerms.of_fragments(np.zeros(3), e, w, [(0, 1, 2)], [1])
    observed = Observed.of_loci(np.zeros(3), terms).with_fragments(
        e, w, [(0, np.array([True, True, False]), 0, 1)]
    )
    tables = observed.tables()
    f = 0.2
    normal = e[0] * e[1] * (1 - e[2])
    tumor = (e[0] + c[0]) * (e[1] + c[1]) * (1 - e[2] - c[2])
    by_hand = np.log((1 - f) * normal + f * tumor)
    # Terms free of f are left out of the table's log-likelihood: compare differences between two f.
    difference = tables.log_likelihood(np.array([f]))[0] - tables.log_likelihood(np.array([0.0]))[0]
    assert difference == pytest.approx(by_hand - np.log(normal), rel=1e-12)


def test_one_locus_fragments_give_exactly_the_binomial_model():
    rng = np.random.default_rng(1)
    n, e, w = np.full(20, 800), rng.lognormal(np.log(1e-4), 0.5, 20), rng.uniform(0.5, 1, 20)
    a = rng.binomial(n, e + 0.004 * (1 - e) * w / 2)
    by_fragment = Observed.of_loci(a, LikelihoodTerms.of_loci(n, e, w)).tables()
    binomial = Tables.of(a[None], n, e, w)
    assert fit(by_fragment)[0] == pytest.approx(fit(binomial)[0], rel=1e-12)
    assert lr_statistics(by_fragment)[0] == pytest.approx(lr_statistics(binomial)[0], rel=1e-9)


def test_a_mutant_fragment_seen_at_six_loci_estimates_one_tumor_fragment_not_six():
    # 1,000 fragments each cover the same 6 loci (a dense panel), one shows the ALT at all six; no background.
    # Per fragment: log f T + 999 log(1 - f d), d = 1 - (1/2)^6, so f_hat = 1 / (1000 d).
    e, w = np.full(6, 1e-12), np.ones(6)
    fragments = fragments_covering((0, 1, 2, 3, 4, 5), [True] * 6, 1)
    rest = fragments_covering((0, 1, 2, 3, 4, 5), [False] * 6, 999)
    merged = Fragments(fragments.loci + rest.loci, fragments.alt + rest.alt, fragments.length + rest.length,
                       fragments.count + rest.count)  # fmt: skip
    observed = evidence(np.ones(6), np.full(6, 1000), e, w, merged)
    f_hat = fit(observed.tables())[0]
    assert f_hat == pytest.approx(1 / (1000 * (1 - 0.5**6)), rel=1e-6)
    # Counted locus by locus the same reads would say 6 ALT in 6,000 observations: twice the tumor fraction.
    per_locus = fit(Tables.of(np.ones((1, 6)), np.full(6, 1000), e, w))[0]
    assert per_locus == pytest.approx(2 * 6 / 6000, rel=1e-6)


def test_fragments_are_taken_out_of_the_per_locus_counts_once():
    e, w = np.full(3, 1e-4), np.ones(3)
    # Locus 0 and 1: 100 molecules each, of which 40 are the same fragments (one of them mutant at both).
    shared = Fragments(
        ((0, 1), (0, 1)), (np.array([True, True]), np.array([False, False])), (150, -1), (1, 39)
    )
    observed = evidence(np.array([1, 1, 0]), np.array([100, 100, 50]), e, w, shared)
    terms = observed.terms
    assert list(terms.size) == [60, 60, 50, 40]  # 60 one-locus fragments at loci 0 and 1, 40 covering both
    assert int(observed.count.sum()) == 1  # one mutant fragment


# ----------------------------------------------------------------------------------------------------------
# Read orientation: damage shows in one, tumor DNA in both
# ----------------------------------------------------------------------------------------------------------
OXOG_RATES = np.tile([2e-3, 5e-5], (20, 1))  # 20 G>T loci; 8-oxoG in F1R2 molecules: 40x the F2R1 rate


def _oriented(alt_f1r2: int, alt_f2r1: int) -> Orientations:
    """20 G>T loci with 500 molecules in each read orientation and the given ALTs per locus in each."""
    alt = np.tile([alt_f1r2, alt_f2r1], (20, 1))
    return Orientations(alt=alt, total=np.full((20, 2), 500), rate=OXOG_RATES)


def _oriented_score(oriented: Orientations, use_orientation: bool = True):
    a, n, e, w = oriented.alt.sum(axis=1), oriented.total.sum(axis=1), oriented.pooled_rate(), np.ones(20)
    return score_loci(
        a, n, e, w, SETTINGS, seeded_rng(1, "oriented"), orientations=oriented if use_orientation else None
    )


def test_a_strong_f1r2_only_gt_excess_stays_negative_while_the_same_count_in_both_orientations_is_tumor():
    damage = _oriented(alt_f1r2=1, alt_f2r1=0)  # 20 ALTs, all F1R2: what the damage there predicts
    tumor = _oriented(alt_f1r2=0, alt_f2r1=1)  # the same 20 ALTs, now where only 0.5 are expected ...
    both = Orientations(  # ... or spread over both orientations
        alt=np.tile([[1, 0], [0, 1]], (10, 1)), total=np.full((20, 2), 500), rate=OXOG_RATES
    )
    assert _oriented_score(damage).p_value > 0.1
    assert _oriented_score(tumor).p_value < 1e-6 and _oriented_score(both).p_value < 1e-6
    # Blind to orientation, the three samples are one: 20 ALTs where 20.5 are expected.
    blind = {_oriented_score(s, use_orientation=False).p_value for s in (damage, tumor, both)}
    assert len(blind) == 1 and blind.pop() > 0.1


def test_orientation_parts_keep_the_loci_molecules_rates_and_support():
    oriented = Orientations(
        alt=np.array([[2, 1], [0, 0], [0, 3]]), total=np.array([[300, 200], [100, 100], [0, 50]]),
        rate=np.array([[1e-3, 1e-4], [1e-4, 1e-4], [2e-4, 2e-4]]),
    )  # fmt: skip
    pooled = oriented.pooled_rate()
    assert pooled == pytest.approx([(300 * 1e-3 + 200 * 1e-4) / 500, 1e-4, 2e-4])
    a, n, w = oriented.alt.sum(axis=1), oriented.total.sum(axis=1), np.ones(3)
    observed = evidence(a, n, pooled, w, orientations=oriented)
    assert observed.terms.size.tolist() == [300, 200, 100, 100, 0, 50]
    assert observed.terms.alpha.tolist() == oriented.rate.reshape(-1).tolist()
    assert observed.terms.hit_locus.tolist() == [0, 0, 1, 1, 2, 2]
    # The expected background is the loci's, whatever the split; support counts loci, never parts.
    assert observed.terms.expected_background() == pytest.approx((n * pooled).sum())
    score = score_loci(a, n, pooled, w, SETTINGS, seeded_rng(1, "parts"), orientations=oriented)
    assert (score.mutant_fragments, score.mutant_loci) == (6, 2)


def test_fragments_covering_several_loci_leave_each_orientation_in_proportion():
    oriented = Orientations(alt=np.array([[1, 1], [0, 0]]), total=np.array([[60, 40], [50, 50]]),
                            rate=np.full((2, 2), 1e-4))  # fmt: skip
    shared = Fragments(
        ((0, 1), (0, 1)), (np.array([True, False]), np.array([False, False])), (150, -1), (1, 19)
    )
    observed = evidence(np.array([2, 0]), np.array([100, 100]), np.full(2, 1e-4), np.ones(2), shared,
                        orientations=oriented)  # fmt: skip
    # 20 fragments cover both loci: 12 of locus 0's F1R2 molecules and 8 of its F2R1 ones, 10 and 10 at locus 1.
    assert observed.terms.size.tolist() == [48, 32, 40, 40, 20]
    assert observed.count.sum() == 2  # one ALT molecule left at locus 0, one ALT fragment covering both


# ----------------------------------------------------------------------------------------------------------
# A positive needs independent support
# ----------------------------------------------------------------------------------------------------------
def test_a_significant_sample_with_one_mutant_fragment_is_not_positive():
    status, reason = decide_status(1e-9, 0.01, 1e-3, 20, 10_000, SETTINGS, mutant_fragments=1, mutant_loci=6)
    assert status == "indeterminate"
    assert reason.startswith("1 mutant fragment:") and "needs 2 mutant fragments at 2 loci" in reason


def test_mutant_fragments_all_at_one_locus_are_not_positive_either():
    status, reason = decide_status(1e-9, 0.01, 1e-3, 20, 10_000, SETTINGS, mutant_fragments=5, mutant_loci=1)
    assert status == "indeterminate" and "all at 1 locus" in reason


def test_two_fragments_at_two_loci_are_enough_and_the_rule_is_configurable():
    support = {"mutant_fragments": 2, "mutant_loci": 2}
    assert decide_status(1e-9, 0.01, 1e-3, 20, 10_000, SETTINGS, **support)[0] == "positive"
    strict = CallSettings(min_mutant_fragments=3, min_mutant_loci=3)
    assert decide_status(1e-9, 0.01, 1e-3, 20, 10_000, strict, **support)[0] == "indeterminate"


def test_score_counts_distinct_mutant_fragments_and_loci():
    n, e, w = np.full(10, 2000), np.full(10, 1e-5), np.ones(10)
    a = np.array([3, 3, 0, 0, 0, 0, 0, 0, 0, 1])  # loci 0 and 1 share their 3 mutant fragments
    shared = fragments_covering((0, 1), [True, True], 3)
    score = score_loci(a, n, e, w, SETTINGS, seeded_rng(1, "s"), fragments=shared)
    assert (score.mutant_fragments, score.mutant_loci) == (4, 3)
    assert score.supported(SETTINGS)


# ----------------------------------------------------------------------------------------------------------
# An honest threshold
# ----------------------------------------------------------------------------------------------------------
def test_the_null_sets_the_threshold_only_when_it_can_resolve_the_target_rate(caplog):
    rng = np.random.default_rng(3)
    few = rng.uniform(size=500) ** 1.5  # anti-conservative null p-values: calibration would tighten the cut
    many = rng.uniform(size=1000) ** 1.5
    with caplog.at_level(logging.WARNING):
        assert threshold_from_null(few, SETTINGS) == (0.01, "nominal")
    assert "only 500 null scores" in caplog.text and "nominal" in caplog.text
    threshold, source = threshold_from_null(many, SETTINGS)
    assert source == "empirical" and threshold == calibrate_threshold(many, 0.01) < 0.01
    # 10 / FPR is a setting: asking for 5 expected positives lets 500 scores calibrate.
    assert threshold_from_null(few, CallSettings(empirical_min_expected=5))[1] == "empirical"


@pytest.mark.parametrize(
    ("rate", "min_expected"), [(0.01, 10), (0.05, 10), (0.009, 0.9), (0.03, 0.9), (0.07, 7)]
)
def test_the_null_scores_the_report_says_are_needed_are_exactly_those_that_calibrate(rate, min_expected):
    # The report quotes null_scores_needed beside the threshold; the calls go empirical by the same rule, also
    # where rate x n falls a rounding error short of the expected count (0.009 x 100 < 0.9 in floating point).
    settings = CallSettings(false_positive_rate=rate, empirical_min_expected=min_expected)
    needed = null_scores_needed(rate, min_expected)
    assert threshold_from_null(np.full(needed - 1, 0.5), settings)[1] == "nominal"
    assert threshold_from_null(np.full(needed, 0.5), settings)[1] == "empirical"
    assert null_scores_needed(0.01, 10) == 1000


# ----------------------------------------------------------------------------------------------------------
# The tumor-fraction interval under VAF spread
# ----------------------------------------------------------------------------------------------------------
def _coverage(spread_sd: float, widen: bool, samples: int = 200, f: float = 0.02) -> float:
    """Share of simulated samples whose interval holds `f`, through the whole score (outlier screen included)."""
    rng = np.random.default_rng(7)
    loci, e = 40, np.full(40, 1e-4)
    settings = CallSettings(null_draws=200, fragment_lengths=False, overdispersion=widen)
    covered = 0
    for i in range(samples):
        vaf_weight = spread_weights(rng, np.ones(loci), spread_sd)  # mean 1: the panel cannot know it
        n = rng.poisson(2000 * np.exp(0.3 * rng.standard_normal(loci)))
        a = rng.binomial(n, e + (1 - e) * f * vaf_weight / 2)
        score = score_loci(a, n, e, np.ones(loci), settings, seeded_rng(1, str(i)))
        covered += score.ci[0] <= f <= score.ci[1]
    return covered / samples


@pytest.mark.parametrize("tf", [1e-3, 2e-2, 5e-2])
def test_the_interval_keeps_its_coverage_when_loci_vafs_spread(tf):
    assert 0.90 <= _coverage(0.5, widen=True, samples=100, f=tf) <= 0.99


def test_the_binomial_interval_alone_is_far_too_narrow_under_vaf_spread():
    assert _coverage(0.5, widen=False, samples=30, f=5e-2) < 0.5


def test_under_vaf_spread_a_germline_like_locus_is_still_an_outlier():
    rng = np.random.default_rng(4)
    n, e = np.full(40, 2000), np.full(40, 1e-4)
    a = rng.binomial(n, e + 0.05 * np.minimum(rng.lognormal(-0.125, 0.5, 40), 2) / 2)
    a[7] = 1000  # 50% VAF: germline, never tumor at TF 5%
    score = score_loci(
        a, n, e, np.ones(40), CallSettings(null_draws=200, fragment_lengths=False), seeded_rng(1)
    )
    assert np.flatnonzero(score.outliers).tolist() == [7]


def test_a_spread_carried_by_few_loci_counts_as_few_loci():
    assert effective_terms(np.ones(40)) == pytest.approx(40)
    assert effective_terms(np.r_[100.0, np.full(39, 0.01)]) == pytest.approx(1.0, abs=0.01)
    assert effective_terms(np.r_[np.ones(10), np.zeros(30)]) == pytest.approx(10)


def test_without_spread_the_interval_is_the_profile_interval():
    assert 0.90 <= _coverage(0.0, widen=True, samples=80) <= 0.99
    rng = np.random.default_rng(2)
    n, e, w = np.full(30, 3000), np.full(30, 1e-4), np.ones(30)
    a = rng.binomial(n, e + (1 - e) * 0.01 / 2)
    factor = dispersion(fit(Tables.of(a[None], n, e, w))[0], a, n, e, w)
    assert factor == pytest.approx(1.0, abs=0.6)  # Pearson X^2 / df near 1 for binomial loci
    assert stats.chi2.sf(factor * 29, 29) > 0.001


def test_one_mutant_molecule_in_four_thousand_keeps_the_interval_near_its_detection_limit():
    """A tumor-free sample (17 loci, ~4,000 molecules) with one background ALT: the lone molecule is what the
    binomial model expects now and then, not a spread of the tumor's VAFs, so nothing widens the interval."""
    rng = np.random.default_rng(69)
    n = rng.poisson(245, 17)
    e, w = np.full(17, 1e-4), np.ones(17)
    a = np.zeros(17, dtype=np.int64)
    a[np.argmax(n)] = 1
    settings = CallSettings(null_draws=500, lod_draws=300, fragment_lengths=False)
    score = score_loci(a, n, e, w, settings, seeded_rng(1, "one molecule"))
    lod = lod95(score.terms, 0.01, score.null, settings, seeded_rng(1, "lod"))
    assert score.dispersion == 1.0
    assert score.ci[1] <= 10 * lod
    assert score.ci == pytest.approx(profile_interval(Tables.of(a[None], n, e, w), 0.95))


def test_lone_molecules_add_no_spread_but_a_cluster_at_one_locus_does():
    n, e, w = np.full(20, 2000), np.full(20, 1e-4), np.ones(20)
    lone = np.zeros(20, dtype=np.int64)
    lone[[2, 9, 15]] = 1  # three molecules at three loci, 4 expected from background alone
    assert dispersion(float(fit(Tables.of(lone[None], n, e, w))[0]), lone, n, e, w) == 1.0
    cluster = lone.copy()
    cluster[4] = 12  # where 0.2 are expected: the loci disagree about the tumor fraction
    assert dispersion(float(fit(Tables.of(cluster[None], n, e, w))[0]), cluster, n, e, w) > 2


def test_with_no_tumor_fraction_estimated_there_is_no_spread_to_widen_by():
    n, e, w = np.full(20, 2000), np.full(20, 1e-3), np.ones(20)
    a = np.zeros(20, dtype=np.int64)
    a[3] = 6  # noisier than its rate, but fewer ALTs than background expects over the panel: f = 0
    assert fit(Tables.of(a[None], n, e, w))[0] == 0
    assert dispersion(0.0, a, n, e, w) == 1.0


# ----------------------------------------------------------------------------------------------------------
# One call job per sample starts fast
# ----------------------------------------------------------------------------------------------------------
def test_the_root_finder_finds_brents_roots():
    from scipy import optimize

    for function, low, high in ((lambda x: x**3 - 2e-9, 0.0, 1.0), (lambda x: np.log(x / 0.3), 1e-9, 1.0)):
        assert root_in_bracket(function, low, high) == pytest.approx(
            optimize.brentq(function, low, high, xtol=1e-14, rtol=1e-10), rel=1e-9
        )


def test_a_call_job_imports_neither_scipy_stats_nor_scipy_optimize():
    # Each costs about a second of CPU at start-up, paid by every one of thousands of per-sample call jobs.
    script = (REPO / "workflow" / "scripts" / "call_sample.py").read_text()
    imports = "\n".join(
        ast.unparse(node) for node in ast.parse(script).body if isinstance(node, ast.Import | ast.ImportFrom)
    )
    code = f"import sys\n{imports}\nprint(sorted(m for m in sys.modules if m in ('scipy.stats', 'scipy.optimize')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
