"""Every sample its own null: flank positions counted like panel loci, synthetic panels matched to the real
panel, and a threshold of its own, also where no other patient's panel or control is sequenced."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pysam
import pytest
from scipy import stats
from test_background import CohortSpec, simulate_cohort

from conftest import write_indexed_bam
from mrdtrack.calling import CallSettings, NullDistribution, build_background, call_cohort
from mrdtrack.calling import own_null as own_null_module
from mrdtrack.calling.flank_pool import flank_pool, matched_candidates
from mrdtrack.calling.inference import lr_statistic_rows
from mrdtrack.calling.locus_classes import pyrimidine_class
from mrdtrack.calling.own_null import (
    FreshCells,
    OwnNull,
    cell_statistics,
    draw_panels,
    fresh_molecules,
    own_level,
    own_null,
    own_threshold,
)
from mrdtrack.counting import CountSettings, count_sample
from mrdtrack.counting.flanks import FlankWindow, flank_positions
from mrdtrack.flank_layout import FLANK_ROW_COLUMNS, compact_flanks, flank_rows

FAST = CallSettings(null_draws=2000, lod_draws=300, fragment_lengths=False)
BASES = "ACGT"


def flank_table(rng: np.random.Generator, positions: int, depth: float, rate: float) -> pd.DataFrame:
    """A sample's flank table (`flanks` contract): `flank_row_table`'s rows, one per position."""
    return compact_flanks(flank_row_table(rng, positions, depth, rate))


def flank_row_table(
    rng: np.random.Generator,
    positions: int,
    depth: float,
    rate: float,
    chrom: str = "chr1",
    start: int = 100_000,
) -> pd.DataFrame:
    """A sample's flank rows, one per position and ALT base (`flank_rows`): `positions` random reference
    positions, every ALT base's molecules drawn at `rate` (C>T at CpG at 10x), depth Poisson(`depth`)."""
    rows = []
    for i in range(positions):
        context = "".join(rng.choice(list(BASES), 3))
        ref = context[1]
        n = int(rng.poisson(depth))
        alts = {}
        for alt in BASES.replace(ref, ""):
            substitution, ctx, _ = pyrimidine_class(ref, alt, context)
            p = rate * (10 if substitution == "C>T" and ctx[2] == "G" else 1)
            alts[alt] = int(rng.binomial(n, p))
        ref_n = n - sum(alts.values())
        for alt, a in alts.items():
            rows.append(
                (chrom, start + i, ref, alt, context, ref_n, a, 0, 0, a, 0, ref_n, 0, ",".join(["166"] * a))
            )
    return pd.DataFrame(rows, columns=FLANK_ROW_COLUMNS)


def real_loci(rng: np.random.Generator, count: int) -> pd.DataFrame:
    rows = []
    for _ in range(count):
        context = "".join(rng.choice(list(BASES), 3))
        alt = str(rng.choice([b for b in BASES if b != context[1]]))
        rows.append((context[1], alt, context))
    return pd.DataFrame(rows, columns=["ref", "alt", "context"])


def model_rates(loci: pd.DataFrame, rate: float) -> np.ndarray:
    """Each locus's error rate in `flank_row_table`'s model: `rate`, C>T at CpG (pyrimidine strand) at 10x."""
    classes = [pyrimidine_class(r, a, c) for r, a, c in loci.itertuples(index=False)]
    return np.array([rate * (10 if s == "C>T" and c[2] == "G" else 1) for s, c, _ in classes])


# ----------------------------------------------------------------------------------------------------------
# Synthetic panels
# ----------------------------------------------------------------------------------------------------------
def test_synthetic_panels_match_the_real_panels_substitution_context_and_depth_locus_for_locus():
    rng = np.random.default_rng(1)
    pool = flank_pool(flank_table(rng, 3000, 300, 1e-4), CallSettings())
    loci = real_loci(rng, 30)
    depth = rng.integers(150, 600, len(loci))
    candidates, fallbacks, why = matched_candidates(
        pool, loci["ref"].to_numpy(), loci["alt"].to_numpy(), loci["context"].to_numpy(), depth, 2.0
    )
    assert why == "" and fallbacks == 0
    draw = draw_panels(candidates, 1000, rng)
    assert draw.shape == (1000, 30)
    for i, locus in enumerate(loci.itertuples()):
        substitution, context, _ = pyrimidine_class(locus.ref, locus.alt, locus.context)
        assert set(pool.substitution[draw[:, i]]) == {substitution}
        assert set(pool.context[draw[:, i]]) == {context}
        assert (pool.n[draw[:, i]] * 2 >= depth[i]).all() and (pool.n[draw[:, i]] <= 2 * depth[i]).all()


def test_a_context_without_flank_positions_is_matched_within_its_group_and_an_indel_not_at_all():
    rng = np.random.default_rng(2)
    flanks = flank_table(rng, 400, 300, 1e-4)
    flanks = flanks[~flanks["context"].isin(["ACG", "CGT"])]  # no C>N at ACG on either strand
    pool = flank_pool(flanks, CallSettings())
    _, fallbacks, why = matched_candidates(
        pool, np.array(["C"]), np.array(["T"]), np.array(["ACG"]), [300], 2.0
    )
    assert (fallbacks, why) == (1, "")
    _, _, why = matched_candidates(
        pool, np.array(["CA"]), np.array(["C"]), np.array(["del1:Ax1"]), [300], 2.0
    )
    assert "indel" in why


def test_germline_and_chip_sites_in_the_flanks_never_enter_the_background():
    rng = np.random.default_rng(3)
    flanks = flank_row_table(rng, 500, 2000, 1e-4)
    het = flanks.index[flanks["pos"] == flanks["pos"].iloc[30]][0]  # a heterozygous SNP: half the molecules
    chip = flanks.index[flanks["pos"] == flanks["pos"].iloc[300]][0]  # a 2% clone
    flanks.loc[het, ["alt_molecules", "ref_molecules"]] = [1000, 1000]
    flanks.loc[chip, ["alt_molecules", "ref_molecules"]] = [40, 1960]
    pool = flank_pool(compact_flanks(flanks), CallSettings())
    assert pool.dropped_positions == 2
    assert len(pool) == len(flanks) - 6  # both positions, all three ALT bases of each
    assert (pool.a / pool.n).max() < 0.01
    kept = flank_pool(compact_flanks(flanks), CallSettings(flank_max_vaf=1.0, flank_noise_max_p=0.0))
    assert kept.dropped_positions == 0 and (kept.a / kept.n).max() == 0.5  # what the rule keeps out


def with_artifacts(rng: np.random.Generator, flanks: pd.DataFrame, share: float, rate: float) -> pd.DataFrame:
    """The flank rows with `share` of their positions noisy artifacts: one ALT base at `rate`."""
    out = flanks.copy()
    positions = out["pos"].unique()
    for pos in rng.choice(positions, int(share * len(positions)), replace=False):
        rows = np.flatnonzero(out["pos"].to_numpy() == pos)
        row = rows[rng.integers(len(rows))]
        n = int(out.loc[row, "ref_molecules"] + out.loc[row, "alt_molecules"])
        extra = int(rng.binomial(out.loc[row, "ref_molecules"], rate))
        out.loc[row, ["alt_molecules", "alt_f1r2"]] += extra
        out.loc[rows, ["ref_molecules", "ref_f1r2"]] -= extra
        assert out.loc[row, "ref_molecules"] + out.loc[row, "alt_molecules"] == n
    return out


def test_noisy_flank_artifacts_with_a_few_molecules_are_left_out_and_do_not_read_as_library_noise():
    rng = np.random.default_rng(44)
    clean = flank_row_table(rng, 3000, 3000, 1e-5)
    # 2% of the positions are artifacts 100 times noisier than their class: ~3 ALT molecules each where a
    # clean position shows 0.03.
    clean, noisy = compact_flanks(clean), compact_flanks(with_artifacts(rng, clean, 0.02, 1e-3))
    clean_pool, pool = flank_pool(clean, CallSettings()), flank_pool(noisy, CallSettings())
    assert clean_pool.dropped_positions <= 0.005 * 3000  # a clean library loses next to nothing
    clean_rate = clean_pool.a.sum() / clean_pool.n.sum()
    assert pool.a.sum() / pool.n.sum() == pytest.approx(clean_rate, rel=0.15)
    # With a cut of 1e-6 the artifacts with 2 or 3 molecules stay, and read as the library's noise.
    loose = flank_pool(noisy, CallSettings(flank_noise_max_p=1e-6))
    assert loose.a.sum() / loose.n.sum() > 1.25 * clean_rate


def test_one_thousand_synthetic_nulls_of_a_tumor_free_sample_give_uniform_p_values():
    rng = np.random.default_rng(4)
    rate = 1e-3
    pool = flank_pool(flank_table(rng, 3000, 3000, rate), CallSettings())
    loci = real_loci(rng, 30)
    e = model_rates(loci, rate)
    n = np.full(len(loci), 3000)
    own = own_null(pool, loci, n, e, np.ones(len(loci)), FAST, np.random.default_rng(5))
    assert own.size == 1000
    # With ~100 expected background molecules the real call's null is the chi-bar mixture: half at 0.
    p = own.decisive_p_values(NullDistribution("asymptotic"))
    assert 0.44 <= np.mean(p >= 1.0) <= 0.56
    assert stats.kstest(p[p < 0.5] / 0.5, "uniform").pvalue > 1e-3
    assert np.mean(p <= 0.05) == pytest.approx(0.05, abs=0.02)


@pytest.mark.parametrize("weights", ["one", "varied"])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("oriented", [False, True])
def test_synthetic_panels_scored_together_have_the_statistics_of_their_dense_tables(
    weights, lengths, oriented
):
    """Scored through their ALT molecules and a few sums of their depths, the panels get the statistic that
    their full tables (panels x loci, or x read-orientation parts, x length classes) give, with one weight for
    every locus (one u) or a weight of its own per locus (the power series, and the columns read again above its
    reach)."""
    rng = np.random.default_rng(8)
    loci, panels = 300, 200
    n = rng.poisson(40, loci)
    rates = 10 ** rng.uniform(-4, -2.5, (loci, 2))
    e = rates.mean(axis=1)
    w = np.ones(loci) if weights == "one" else rng.uniform(0.3, 1.5, loci)
    n_f1r2 = np.rint(n * rng.uniform(0.2, 0.8, (panels, loci))).astype(np.int32) if oriented else None
    cells = fresh_molecules(n, rates if oriented else e, panels, rng, n_f1r2)
    cells = with_a_panel_near_one_half(cells, n)
    a = np.zeros((panels, loci), dtype=np.int64)
    a[cells.panel, cells.locus] = cells.alt
    a_rows, table, ratio = a, None, None
    if lengths:
        ratio = np.array([2.5, 1.2, 0.8, 0.4])
        table = np.array([rng.multinomial(x, [0.2, 0.3, 0.3, 0.2]) for x in cells.alt]).reshape(-1, 4)
        a_rows = np.zeros((panels, loci, 4), dtype=np.int64)
        a_rows[cells.panel, cells.locus] = table
    n_rows = np.broadcast_to(n, (panels, loci))
    if oriented:  # the dense tables as the real call lays out its parts: F1R2 of locus i in column 2i
        a_f1r2 = np.zeros((panels, loci), dtype=np.int64)
        a_f1r2[cells.panel, cells.locus] = cells.alt_f1r2
        n_f1r2 = cells.n_f1r2.astype(np.int64)
        n_parts = np.stack([n_f1r2, n_rows - n_f1r2], axis=2).reshape(panels, -1)
        if lengths:
            f1r2 = np.divide(a_f1r2, a, out=np.full(a.shape, 0.5), where=a > 0)[..., None]
            a_parts = np.stack([f1r2 * a_rows, (1 - f1r2) * a_rows], axis=2).reshape(panels, -1, 4)
        else:
            a_parts = np.stack([a_f1r2, a - a_f1r2], axis=2).reshape(panels, -1)
        expected = lr_statistic_rows(a_parts, n_parts, rates.reshape(-1), np.repeat(w, 2), ratio)
    else:
        expected = lr_statistic_rows(a_rows, n_rows, e, w, ratio)
    found = cell_statistics(
        cells, np.ones(len(cells.panel), dtype=bool), table, n, e, w, rates if oriented else None, ratio
    )
    assert (expected > 0).sum() >= 20 and expected[0] > 100
    assert found == pytest.approx(expected, rel=1e-8, abs=1e-9)


def with_a_panel_near_one_half(cells: FreshCells, n: np.ndarray) -> FreshCells:
    """The cells with panel 0 replaced by a quarter of every locus's molecules ALT (a tumor fraction near 1/2),
    as many of them in each orientation as it has."""
    everywhere = np.arange(len(n))
    if cells.n_f1r2 is None:
        first = FreshCells(1, np.zeros(len(n), dtype=np.int64), everywhere, n // 4)
    else:
        in_f1r2 = np.minimum(n // 8, cells.n_f1r2[0])
        alt = in_f1r2 + np.minimum(n // 8, n - cells.n_f1r2[0])
        first = FreshCells(1, np.zeros(len(n), dtype=np.int64), everywhere, alt, in_f1r2)
    rest = cells.panel > 0

    def joined(name: str) -> np.ndarray | None:
        if getattr(cells, name) is None:
            return None
        return np.concatenate([getattr(first, name), getattr(cells, name)[rest]])

    return replace(cells, **{name: joined(name) for name in ("panel", "locus", "alt", "alt_f1r2")})


def test_fresh_molecules_are_drawn_at_the_real_depth_in_blocks_of_panels(monkeypatch):
    """Drawn a few panels at a time, the molecules are Binomial(n, p) at every synthetic locus, in each read
    orientation at its own rate, and only the loci with ALT molecules are kept, panel by panel."""
    monkeypatch.setattr(own_null_module, "DRAW_CELLS", 7 * 50)  # blocks of 7 panels
    rng = np.random.default_rng(9)
    n, p = np.full(50, 400), np.full((50, 2), [0.002, 0.01])
    cells = fresh_molecules(n, p, 2000, rng, np.full((2000, 50), 100, dtype=np.int32))
    assert (cells.alt > 0).all() and (np.diff(cells.panel) >= 0).all() and cells.panel[-1] == 1999
    assert cells.alt_f1r2.sum() / (2000 * 50 * 100) == pytest.approx(0.002, rel=0.05)
    assert (cells.alt - cells.alt_f1r2).sum() / (2000 * 50 * 300) == pytest.approx(0.01, rel=0.05)


def test_synthetic_panels_weigh_read_orientations_as_the_real_call_does_and_match_its_statistic():
    from test_sample_rates import OXOG, RATE, oriented_flanks

    from mrdtrack.calling.score import Orientations, score_loci

    rng = np.random.default_rng(31)
    pool = flank_pool(oriented_flanks(rng, 16_000, 1000, OXOG), CallSettings())
    # 30 real loci, G>T and C>A on the reference strand: 8-oxoG in their F1R2 and their F2R1 molecules.
    refs = rng.choice(["G", "C"], 30)
    flanking = rng.choice(list(BASES), (30, 2))
    loci = pd.DataFrame({
        "ref": refs, "alt": np.where(refs == "G", "T", "A"),
        "context": [f"{left}{ref}{right}" for ref, (left, right) in zip(refs, flanking, strict=True)],
    })  # fmt: skip
    rates = np.where((refs == "G")[:, None], [RATE + OXOG, RATE], [RATE, RATE + OXOG])
    n, e, w = np.full(30, 2000), rates.mean(axis=1), np.ones(30)
    settings = replace(FAST, p_value_method="asymptotic")
    own = own_null(pool, loci, n, e, w, settings, np.random.default_rng(32), rates=rates)
    # The real call's statistic on panels drawn from the same truth, scored by orientation.
    real = []
    for _ in range(400):
        alt = rng.binomial(1000, rates)
        oriented = Orientations(alt=alt, total=np.full((30, 2), 1000), rate=rates)
        real.append(
            score_loci(alt.sum(axis=1), n, e, w, settings, rng, full=False, orientations=oriented).statistic
        )
    assert stats.ks_2samp(own.statistics, real).pvalue > 1e-3
    p = own.decisive_p_values(NullDistribution("asymptotic"))
    assert np.mean(p <= 0.05) == pytest.approx(0.05, abs=0.02)


def test_a_thin_flank_pool_at_plasma_depth_shows_two_locus_support_as_often_as_the_real_call_would():
    rng = np.random.default_rng(41)
    rate = 5e-5
    # 1,000 positions at 200 molecules: a context's positions hold a fraction of one ALT molecule.
    pool = flank_pool(flank_table(rng, 1000, 200, rate), CallSettings())
    loci = real_loci(rng, 25)
    e = model_rates(loci, rate)
    n = np.full(len(loci), 200)
    own = own_null(pool, loci, n, e, np.ones(len(loci)), FAST, np.random.default_rng(42))
    draws = rng.binomial(n, e, (20_000, len(loci)))  # the real panel without tumor DNA
    real = np.mean((draws.sum(axis=1) >= 2) & (np.count_nonzero(draws, axis=1) >= 2))
    assert 0.05 < real < 0.3
    assert own.supported.mean() == pytest.approx(real, rel=0.25)


def test_a_panel_whose_loci_are_quieter_than_their_contexts_is_not_held_to_a_noisier_null():
    rng = np.random.default_rng(45)
    rate = 1e-3
    # The library is at the cohort's rates: its flank positions show their context's rate ...
    pool = flank_pool(flank_table(rng, 3000, 3000, rate), CallSettings())
    loci = real_loci(rng, 30)
    context = model_rates(loci, rate)
    e = context / 2  # ... and the cohort measured its panel's loci at half their contexts' rates.
    n = np.full(len(loci), 3000)
    w = np.ones(len(loci))
    own = own_null(pool, loci, n, e, w, FAST, np.random.default_rng(46), flank_rates=context)
    p = own.decisive_p_values(NullDistribution("asymptotic"))
    assert np.mean(p <= 0.05) == pytest.approx(0.05, abs=0.02)  # tumor-free panels: p-values uniform
    # Its flank positions measured against the loci's own rates would read the library twice as noisy.
    held = own_null(pool, loci, n, e, w, FAST, np.random.default_rng(46))
    assert np.mean(held.decisive_p_values(NullDistribution("asymptotic")) <= 0.05) > 0.2


def test_a_library_noisier_than_its_background_rates_is_held_to_its_own_null():
    rng = np.random.default_rng(6)
    rate, excess = 1e-3, 2.0  # the library's real noise is twice the rates it is scored with
    pool = flank_pool(flank_table(rng, 3000, 3000, rate * excess), CallSettings())
    loci = real_loci(rng, 30)
    e = np.full(len(loci), rate)
    n = np.full(len(loci), 3000)
    a = rng.binomial(n, rate * excess)  # no tumor
    own = own_null(pool, loci.assign(), n, e, np.ones(len(loci)), FAST, np.random.default_rng(7))
    from mrdtrack.calling.score import score_loci

    score = score_loci(a, n, e, np.ones(len(loci)), FAST, np.random.default_rng(8))
    assert score.p_value < 1e-6  # nominally a strong positive
    threshold = own_threshold(own, score.null, score.p_value, 0.01, "nominal", FAST)
    assert threshold.source == "empirical" and threshold.own_null_panels == 1000
    assert threshold.value < score.p_value  # its own null knows better
    assert threshold.empirical_p_value > 0.01


def test_the_own_level_prior_weighs_a_thin_flank_pool_lightly_and_a_deep_one_fully():
    from mrdtrack.calling.flank_pool import Matched

    e = np.array([1e-3])

    def level(alt: float, n: float, prior: float) -> float:
        return own_level(Matched([], np.array([alt]), np.array([n]), 0, ""), e, prior)

    # 10 expected flank ALTs, 5 seen: Poisson noise, the level stays near 1 under the default prior.
    assert level(5, 10_000, CallSettings().own_level_prior) == pytest.approx(105 / 110)
    # 2,000 expected, 4,000 seen (a library twice as noisy as its rates): held to its own noise.
    assert level(4000, 2_000_000, CallSettings().own_level_prior) == pytest.approx(4100 / 2100)
    # A weak prior lets even the thin pool speak.
    assert level(5, 10_000, 1e-6) == pytest.approx(0.5, rel=1e-6)


def own_null_with(at_one_percent: int, panels: int = 1000) -> OwnNull:
    """An own null whose panels have p = 0.005 (`at_one_percent` of them) or about 0.5 against the chi-bar null."""
    statistics = np.full(panels, 1e-9)  # p just below 0.5
    statistics[:at_one_percent] = stats.chi2.isf(0.01, 1)  # p = 0.005
    return OwnNull(statistics, np.ones(panels, dtype=bool))


def test_an_own_null_that_agrees_with_the_rate_keeps_the_nominal_threshold():
    # 13 of 1,000 panels at p <= 1%: what a rate of exactly 1% gives one time in five.
    agreeing = own_threshold(own_null_with(13), NullDistribution("asymptotic"), 0.5, 0.01, "nominal", FAST)
    assert (agreeing.value, agreeing.source) == (0.01, "empirical")
    # 30 of 1,000: the library is noisier than its rates, and its own null holds it to its noise.
    noisier = own_threshold(own_null_with(30), NullDistribution("asymptotic"), 0.5, 0.01, "nominal", FAST)
    assert noisier.value < 0.005


# ----------------------------------------------------------------------------------------------------------
# Study designs
# ----------------------------------------------------------------------------------------------------------
def simulated_flanks(cohort, rate: float, depth: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for sample in cohort.samples.itertuples():
        if sample.sample_type == "plasma":
            frames.append(flank_table(rng, 1500, depth, rate).assign(sample_id=sample.sample_id))
    return pd.concat(frames, ignore_index=True)


def test_a_bespoke_capture_cohort_gets_empirical_thresholds_from_each_samples_own_null():
    spec = CohortSpec(patients=5, loci_per_patient=20, controls=3, depth=400, seed=11,
                      plasma_tfs={p: [0.0, 0.0] for p in ("P1", "P2", "P3", "P4", "P5")})  # fmt: skip
    cohort = simulate_cohort(spec)
    counts = cohort.counts.copy()
    patient = counts["sample_id"].map(cohort.samples.set_index("sample_id")["patient_id"])
    own_panel = (patient == "") | (patient == counts["panel_patients"])  # each plasma sees its own panel only
    for column in ("ref_molecules", "alt_molecules", "alt_f1r2", "alt_f2r1", "ref_f1r2", "ref_f2r1"):
        counts.loc[~own_panel, column] = 0
    model = build_background(counts, cohort.samples)
    args = (counts, cohort.samples, cohort.panel, model.locus_rates, model.excluded)
    without = call_cohort(*args, FAST)
    assert set(without.calls["threshold_source"]) == {"nominal"}
    plasma = without.null_scores[without.null_scores["sample_type"] == "plasma"]
    assert plasma.empty  # a bespoke capture covers no other patient's panel: no null score at one
    flanks = simulated_flanks(cohort, spec.error_rate, spec.depth, 12)
    calls = call_cohort(*args, FAST, flanks=flanks).calls
    assert set(calls["threshold_source"]) == {"empirical"}
    assert (calls["own_null_panels"] == 1000).all()
    assert calls["threshold_reason"].str.startswith("own null of 1000 synthetic panels").all()
    assert (calls["mrd_status"] != "positive").all()
    assert calls["empirical_p_value"].between(1 / 1001, 1).all()
    # Each sample's flank table on its own, by sample id, gives the same calls; a sample without one
    # falls back to the nominal threshold.
    by_sample = {s: t.drop(columns="sample_id") for s, t in flanks.groupby("sample_id")}
    pd.testing.assert_frame_equal(call_cohort(*args, FAST, flanks=by_sample).calls, calls)
    first = sorted(by_sample)[0]
    del by_sample[first]
    missing = call_cohort(*args, FAST, flanks=by_sample).calls.set_index("sample_id")
    assert missing.loc[first, "threshold_source"] == "nominal"
    assert (missing.drop(index=first)["threshold_source"] == "empirical").all()


def test_cross_patient_null_panels_are_only_those_the_sample_covers():
    from mrdtrack.calling.calibration import covered_panels
    from mrdtrack.calling.cohort import build_cohort, cohort_loci

    cohort = simulate_cohort(CohortSpec(patients=4, loci_per_patient=10, controls=1, seed=3))
    counts = cohort.counts.copy()
    p2 = cohort.panel.loc[cohort.panel["patient_id"] == "P2", "pos"]
    counts.loc[
        (counts["sample_id"] == "S_P1_1") & counts["pos"].isin(p2), ["ref_molecules", "alt_molecules"]
    ] = 0
    model = build_background(counts, cohort.samples)
    layout = cohort_loci(cohort.panel, model.locus_rates, model.excluded)
    built = build_cohort(counts, cohort.samples, layout)
    assert covered_panels(built, "S_P1_1", 5) == {"P1", "P3", "P4"}
    result = call_cohort(counts, cohort.samples, cohort.panel, model.locus_rates, model.excluded, FAST)
    scored = result.null_scores.loc[result.null_scores["sample_id"] == "S_P1_1", "panel_patient_id"]
    assert sorted(scored) == ["P3", "P4"]


# ----------------------------------------------------------------------------------------------------------
# Counting the flanks
# ----------------------------------------------------------------------------------------------------------
def test_flank_positions_leave_out_every_patients_loci_their_neighbours_and_n_bases(tmp_path):
    sequence = "ACGT" * 50
    sequence = sequence[:120] + "N" + sequence[121:]
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">chr1\n" + sequence + "\n")
    pysam.faidx(str(fasta))
    panel = pd.DataFrame(
        {"patient_id": ["P1", "P2"], "chrom": ["chr1", "chr1"], "pos": [100, 110], "ref": ["A", "CG"],
         "alt": ["T", "C"], "context": ["NNN", "NNN"], "weight": [1.0, 1.0]}
    )  # fmt: skip
    with pysam.FastaFile(str(fasta)) as handle:
        flanks = flank_positions(panel, "P1", handle, FlankWindow(window=25, gap=2))
    positions = set(flanks["pos"])
    assert min(positions) == 75 and max(positions) == 125
    assert not positions & {120, 121, 122}  # an N in the trinucleotide
    assert not positions & {98, 99, 100, 101, 102}  # the patient's own locus and its neighbours
    assert not positions & {108, 109, 110, 111, 112, 113}  # another patient's deletion, all its span
    assert all(flanks["ref"] == flanks["context"].str[1])
    assert flanks["ref"].tolist() == [sequence[p - 1] for p in flanks["pos"]]


def test_flank_molecules_are_counted_by_the_same_rules_as_panel_loci(tmp_path):
    """A flank position asked as a panel locus gives the same molecules as in the flank table."""
    rng = np.random.default_rng(9)
    sequence = "".join(rng.choice(list(BASES), 2000))
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">chr1\n" + sequence + "\n")
    pysam.faidx(str(fasta))
    header = pysam.AlignmentHeader.from_dict({"SQ": [{"SN": "chr1", "LN": 2000}]})
    reads = []
    for i in range(300):
        start = int(rng.integers(880, 1000))
        for mate, (pos, reverse) in enumerate([(start, False), (start + 60, True)]):
            read = pysam.AlignedSegment(header)
            read.query_name = f"r{i}"
            bases = list(sequence[pos : pos + 100])
            if rng.random() < 0.05:
                k = int(rng.integers(0, 100))
                bases[k] = "ACGT"[("ACGT".index(bases[k]) + 1) % 4]
            read.query_sequence = "".join(bases)
            read.flag = 1 | 2 | (0x40 if mate == 0 else 0x80) | (0x10 if reverse else 0x20 if not mate else 0)
            read.reference_id = read.next_reference_id = 0
            read.reference_start, read.next_reference_start = pos, start + 60 if mate == 0 else start
            read.mapping_quality = 60
            read.cigarstring = "100M"
            read.template_length = 160 if mate == 0 else -160
            read.query_qualities = pysam.qualitystring_to_array("I" * 100)
            reads.append(read)
    bam = write_indexed_bam(tmp_path / "s.bam", reads, header)
    panel = pd.DataFrame(
        {"patient_id": ["P1"], "chrom": ["chr1"], "pos": [1050], "ref": [sequence[1049]],
         "alt": ["A" if sequence[1049] != "A" else "C"], "context": [sequence[1048:1051]], "weight": [1.0]}
    )  # fmt: skip
    settings = CountSettings(engine="pysam", dedup="none")
    flanks = count_sample("S1", bam, str(fasta), panel, settings, patient_id="P1").flanks
    assert set(flanks["pos"]) == set(range(1025, 1048)) | set(range(1053, 1076))
    rows = flank_rows(flanks)
    row = rows[rows["alt_molecules"] > 0].iloc[0]
    as_locus = panel.assign(pos=int(row["pos"]), ref=row["ref"], alt=row["alt"], context=row["context"])
    counts = count_sample("S1", bam, str(fasta), as_locus, settings).counts.iloc[0]
    for column in ("ref_molecules", "alt_molecules", "alt_f1r2", "ref_f1r2"):
        assert counts[column] == row[column]
    compiled = count_sample(
        "S1", bam, str(fasta), panel, replace(settings, engine="compiled"), patient_id="P1"
    )
    pd.testing.assert_frame_equal(compiled.flanks, flanks)
