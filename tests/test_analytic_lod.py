"""The LOD computed without draws: the saddlepoint tail it rests on, the null's critical statistic, the switch
between the methods, and agreement with the Monte Carlo LOD within that LOD's own error, on the bundled data
and on a genome-wide panel with fragment lengths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from conftest import TEST_DATA
from mrdtrack.calling import (
    CallSettings,
    LikelihoodTerms,
    NullDistribution,
    lod95,
    null_distribution,
    seeded_rng,
)
from mrdtrack.calling.analytic_lod import AnalyticDetection
from mrdtrack.calling.likelihood import LocusParts
from mrdtrack.calling.lod import lod_method
from mrdtrack.calling.saddlepoint import WeightedCounts, at_most

THRESHOLD = 0.01


class Classes:
    """Fragment-length classes: tumor fragments shorter; the last class holds no fragment at all."""

    tumor = np.array([0.05, 0.25, 0.3, 0.2, 0.2, 0.0])
    normal = np.array([0.01, 0.09, 0.2, 0.3, 0.4, 0.0])
    ratio = np.divide(tumor, normal, out=np.ones(6), where=normal > 0)


# ----- the saddlepoint tail and the binomial lower tail --------------------------------------------------------
@pytest.mark.parametrize(("trials", "p", "level"), [(20_000, 5e-4, 20), (20_000, 5e-4, 5), (500, 0.02, 25)])
def test_saddlepoint_tail_of_a_scaled_binomial_is_within_a_few_percent_of_the_exact_tail(trials, p, level):
    value = 0.7
    counts = WeightedCounts(np.array([float(trials)]), np.array([[p]]), np.array([[value]]))
    # Midway between two attainable values, where a continuous approximation of a lattice sum is fair.
    approximate, _ = counts.upper_tail((level - 0.5) * value)
    exact = float(stats.binom.sf(level - 1, trials, p))
    assert approximate == pytest.approx(exact, rel=0.05)


def test_saddlepoint_tail_of_unequal_weights_matches_simulation():
    rng = np.random.default_rng(1)
    trials = rng.poisson(30, 2000).astype(float)
    p = np.stack([10 ** rng.uniform(-5, -3.5, 2000), 10 ** rng.uniform(-5, -3.5, 2000)])
    value = np.stack([rng.uniform(0.1, 3, 2000), rng.uniform(0.1, 3, 2000)])
    draws = rng.binomial(trials.astype(int), p.sum(axis=0), (40_000, 2000))
    first = rng.binomial(draws, p[0] / p.sum(axis=0))
    x = (first * value[0] + (draws - first) * value[1]).sum(axis=1)
    level = float(np.quantile(x, 0.9))
    approximate, _ = WeightedCounts(trials, p, value).upper_tail(level)
    assert approximate == pytest.approx(float((x >= level).mean()), abs=0.01)


def test_nothing_lies_beyond_the_largest_reachable_sum():
    counts = WeightedCounts(np.array([3.0]), np.array([[0.5]]), np.array([[1.0]]))
    assert counts.upper_tail(3.0)[0] == 0.0


def test_at_most_is_the_binomial_sums_exact_lower_tail():
    trials, p = np.array([5, 1, 30]), np.array([0.3, 0.6, 0.01])
    total = np.zeros(1)
    total[0] = 1.0
    for n, q in zip(trials, p, strict=True):
        total = np.convolve(total, stats.binom.pmf(np.arange(n + 1), n, q))
    for m in range(4):
        assert at_most(m, trials, p) == pytest.approx(total[: m + 1].sum(), rel=1e-9)
    assert at_most(0, np.array([2]), np.array([1.0])) == 0.0


# ----- the critical statistic ---------------------------------------------------------------------------------
def test_critical_statistic_is_where_the_p_value_reaches_the_threshold():
    asymptotic = NullDistribution("asymptotic")
    critical = asymptotic.critical_statistic(THRESHOLD)
    assert asymptotic.p_value(critical) == pytest.approx(THRESHOLD, rel=1e-9)
    monte_carlo = NullDistribution("monte_carlo", np.sort(np.random.default_rng(2).chisquare(1, 5000)))
    critical = monte_carlo.critical_statistic(THRESHOLD)
    assert (
        monte_carlo.p_value(critical * (1 + 1e-6)) <= THRESHOLD < monte_carlo.p_value(critical * (1 - 1e-6))
    )


# ----- which method ------------------------------------------------------------------------------------------
def test_auto_computes_the_lod_from_the_switch_point_of_expected_background_fragments():
    settings = CallSettings(lod_analytic_min_expected=5.0)
    quiet = LikelihoodTerms.of_loci(np.full(20, 44), np.full(20, 1e-4), np.ones(20))
    deep = LikelihoodTerms.of_loci(np.full(2000, 30), np.full(2000, 1e-4), np.ones(2000))
    assert quiet.expected_background() < 5 <= deep.expected_background()
    assert (lod_method(quiet, settings), lod_method(deep, settings)) == ("monte_carlo", "analytic")
    assert lod_method(deep, CallSettings(lod_method="monte_carlo")) == "monte_carlo"
    assert lod_method(quiet, CallSettings(lod_method="analytic")) == "analytic"


# ----- agreement with the Monte Carlo LOD --------------------------------------------------------------------
def bundled_samples() -> list[tuple[str, LikelihoodTerms]]:
    """Each bundled plasma sample at its own patient's panel loci, with their weights: its molecules per locus
    (the counting step's, as test_data/truth holds them) and a pooled background rate per locus from every
    other sample counted there, shrunk toward the mean rate."""
    counts = pd.read_csv(TEST_DATA / "truth" / "locus_counts.tsv", sep="\t")
    samples = pd.read_csv(TEST_DATA / "truth" / "samples.tsv", sep="\t", keep_default_na=False)
    panels = pd.read_csv(TEST_DATA / "truth" / "loci.tsv", sep="\t")
    counts["total"] = counts["ref_molecules"] + counts["alt_molecules"]
    key = ["chrom", "pos", "ref", "alt"]
    pooled = counts.groupby(key)[["alt_molecules", "total"]].sum().reset_index()
    mean_rate = (counts["alt_molecules"].sum() + 1) / counts["total"].sum()
    found = []
    for sample_id, patient in samples.loc[
        samples["sample_type"] == "plasma", ["sample_id", "patient_id"]
    ].to_numpy():
        loci = panels[panels["patient_id"] == patient].merge(counts[counts["sample_id"] == sample_id], on=key)
        loci = loci.merge(pooled, on=key, suffixes=("", "_all"))
        alt = loci["alt_molecules_all"] - loci["alt_molecules"]
        total = loci["total_all"] - loci["total"]
        e = (alt + 1) / (total + 1 / mean_rate)
        used = (loci["total"] > 0).to_numpy()
        terms = LikelihoodTerms.of_loci(
            loci["total"].to_numpy()[used], e.to_numpy()[used], loci["weight"].to_numpy()[used]
        )
        found.append((sample_id, terms))
    return found


def monte_carlo_error(detection: AnalyticDetection, lod: float, draws: int, power: float) -> float:
    """The Monte Carlo LOD's standard error on the log scale: the detection probability's binomial error over
    the detection curve's slope in log f at the LOD."""
    step = 0.03
    slope = (detection.probability(lod * np.exp(step)) - detection.probability(lod * np.exp(-step))) / (
        2 * step
    )
    return float(np.sqrt(power * (1 - power) / draws) / max(slope, 1e-9))


def assert_lods_agree(terms: LikelihoodTerms, classes: type | None, draws: int, seed: str) -> None:
    simulated = CallSettings(lod_method="monte_carlo", lod_draws=draws)
    computed = CallSettings(lod_method="analytic")
    null = null_distribution(terms, simulated, seeded_rng(1, seed, "null"), classes)
    monte_carlo = lod95(terms, THRESHOLD, null, simulated, seeded_rng(1, seed, "lod"), classes)
    analytic = lod95(terms, THRESHOLD, null, computed, seeded_rng(1, seed, "lod"), classes)
    detection = AnalyticDetection(terms, null, THRESHOLD, computed, classes)
    error = monte_carlo_error(detection, analytic, draws, computed.lod_power)
    # Three standard errors, plus the two searches' 0.5% precision.
    assert abs(np.log(analytic / monte_carlo)) <= 3 * error + 2 * np.log(1.005), (seed, analytic, monte_carlo)


def test_on_the_bundled_data_the_analytic_lod_is_the_monte_carlo_lod_within_its_error():
    samples = bundled_samples()
    assert len(samples) >= 10
    assert max(terms.expected_background() for _, terms in samples) < CallSettings().lod_analytic_min_expected
    for sample_id, terms in samples:
        assert_lods_agree(terms, None, 2000, sample_id)


@pytest.mark.parametrize("classes", [None, Classes])
def test_on_a_genome_wide_panel_the_analytic_lod_is_the_monte_carlo_lod_within_its_error(classes):
    rng = np.random.default_rng(3)
    n = rng.poisson(30, 2000)
    terms = LikelihoodTerms.of_loci(n, 10 ** rng.uniform(-5, -3.3, 2000), np.ones(2000))
    assert terms.expected_background() >= CallSettings().lod_analytic_min_expected
    assert_lods_agree(terms, classes, 2000, f"wgs-{classes is not None}")


def test_the_analytic_detection_probability_follows_the_support_rule():
    """One locus with every molecule: the test is passed easily, but a positive needs two loci."""
    terms = LikelihoodTerms.of_loci(np.array([5000, 1, 1]), np.full(3, 1e-4), np.ones(3))
    null = NullDistribution("asymptotic")
    lenient = AnalyticDetection(
        terms, null, THRESHOLD, CallSettings(min_mutant_loci=1, min_mutant_fragments=1)
    )
    strict = AnalyticDetection(terms, null, THRESHOLD, CallSettings())
    f = 0.01
    two_loci = 1 - (1 - special.bdtrc(0, 1, 1e-4 + f / 2)) ** 2  # P(an ALT at either one-molecule locus)
    assert lenient.probability(f) > 0.99
    assert strict.probability(f) == pytest.approx(two_loci, rel=0.02)


# ----- read orientations: two parts of a locus are still one locus ------------------------------------------
def oriented(n: np.ndarray, e: np.ndarray, f1r2: np.ndarray) -> LikelihoodTerms:
    """The loci's molecules as two orientation parts each (F1R2 `f1r2`, F2R1 the rest), both at the locus's
    rate."""
    parts = LocusParts(
        np.repeat(np.arange(len(n)), 2), np.column_stack([f1r2, n - f1r2]).ravel(), np.repeat(e, 2)
    )
    return LikelihoodTerms.of_parts(parts, e, np.ones(len(n)), [], [])


def test_alt_fragments_in_both_orientations_of_one_locus_are_one_locus_for_the_support_rule():
    """As above, with each locus's molecules split by read orientation: the deep locus's ALTs, in both of its
    orientations, still make one locus, and a positive needs an ALT at one of the shallow ones."""
    terms = oriented(np.array([5000, 2, 2]), np.full(3, 1e-4), np.array([2500, 1, 1]))
    strict = AnalyticDetection(terms, NullDistribution("asymptotic"), THRESHOLD, CallSettings())
    f = 0.01
    two_loci = 1 - (1 - special.bdtrc(0, 1, 1e-4 + f / 2)) ** 4  # P(an ALT among the shallow loci's 4)
    assert strict.support_probability(f) == pytest.approx(two_loci, rel=0.02)
    assert strict.probability(f) == pytest.approx(two_loci, rel=0.02)


@pytest.mark.parametrize("classes", [None, Classes])
def test_orientation_parts_at_one_rate_give_the_analytic_lod_of_the_merged_loci(classes):
    """A few deep loci, so that tables with ALT fragments at one locus only can pass the test: split into two
    orientation parts at the locus's own rate, the loci are the same evidence, and the tables without support
    are counted locus by locus (an ALT in each orientation of one locus is one locus)."""
    rng = np.random.default_rng(5)
    n = rng.poisson(3000, 6)
    e = 10 ** rng.uniform(-5.5, -3.5, 6)
    merged = LikelihoodTerms.of_loci(n, e, np.ones(6))
    split = oriented(n, e, rng.binomial(n, 0.5))
    null, settings = NullDistribution("asymptotic"), CallSettings(lod_method="analytic")
    whole, parts = (AnalyticDetection(t, null, THRESHOLD, settings, classes) for t in (merged, split))
    lod = whole.lod(1e-8)
    assert parts.lod(1e-8) == pytest.approx(lod, rel=1e-6)
    lone = [whole.lone_locus_positive(f) for f in (lod / 3, lod, 3 * lod)]
    assert max(lone) > 1e-3  # the correction matters here
    assert [parts.lone_locus_positive(f) for f in (lod / 3, lod, 3 * lod)] == pytest.approx(lone, rel=1e-6)
    assert parts.support_probability(lod) == pytest.approx(whole.support_probability(lod), rel=1e-9)
