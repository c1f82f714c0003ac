"""Every sample its own background: its rates by context and read orientation, measured at its own flank
positions and shrunk toward the cohort's, multiply the cohort's locus rates in its calls."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from mrdtrack.calling import CallSettings, build_background, call_cohort, libraries_in_cohort_rates
from mrdtrack.calling.locus_classes import rate_group
from mrdtrack.calling.sample_rates import (
    SampleFactors,
    fit_sample_rates,
    flank_tallies,
    sample_factors,
    unit_strengths,
)
from mrdtrack.flank_layout import FLANK_ROW_COLUMNS, compact_flanks

FAST = CallSettings(null_draws=2000, lod_draws=300, fragment_lengths=False)
BASES = "ACGT"
RATE = 1e-4  # every substitution, both orientations
OXOG = 2e-3  # 8-oxoG: G>T in F1R2 molecules (C>A in F2R1 ones on the other strand)


def oriented_flanks(
    rng: np.random.Generator, positions: int, depth: float, oxog: float = 0.0, rate: float = RATE
) -> pd.DataFrame:
    """A flank table (`flanks` contract, built as rows per position and ALT base): `positions` random positions,
    Poisson(`depth`) molecules in each read orientation, every ALT base at `rate`, plus `oxog` for G>T in F1R2
    and C>A in F2R1 molecules."""
    rows = []
    for i in range(positions):
        context = "".join(rng.choice(list(BASES), 3))
        ref = context[1]
        n = rng.poisson(depth, 2)
        alts = {}
        for alt in BASES.replace(ref, ""):
            damage = np.array([oxog * ((ref, alt) == ("G", "T")), oxog * ((ref, alt) == ("C", "A"))])
            alts[alt] = rng.binomial(n, rate + damage)
        ref_n = n - sum(alts.values())
        for alt, a in alts.items():
            rows.append((
                "chr2", 10_000 + i, ref, alt, context, int(ref_n.sum()), int(a.sum()), 0, 0, int(a[0]), int(a[1]),
                int(ref_n[0]), int(ref_n[1]), ",".join(["166"] * int(a.sum())),
            ))  # fmt: skip
    return compact_flanks(pd.DataFrame(rows, columns=FLANK_ROW_COLUMNS))


def bespoke_gt_cohort(damaged: set[str], rng: np.random.Generator):
    """Six patients with 20 G>T loci each, each plasma sample (S_<patient>_1) captured at its own panel only
    (bespoke captures: no other patient's loci), four healthy controls at every panel, 1,000 molecules per
    locus, half in each read orientation, every library at `RATE`; the `damaged` libraries also carry 8-oxoG (`OXOG`), at their panel
    loci and flanks alike. (counts, samples, panel, flanks)"""
    patients = [f"P{k + 1}" for k in range(6)]
    contexts = [left + "G" + right for left, right in rng.choice(list("ACGT"), (120, 2))]
    panel = pd.DataFrame({
        "patient_id": np.repeat(patients, 20), "chrom": "chr1", "pos": 1000 + 1000 * np.arange(120),
        "ref": "G", "alt": "T", "context": contexts, "weight": 1.0,
    })  # fmt: skip
    frames, flanks = [], []
    for k in range(4):  # healthy controls, captured at every panel: the cohort's background
        alt_f1r2, alt_f2r1 = rng.binomial(500, RATE, 120), rng.binomial(500, RATE, 120)
        frames.append(panel[["chrom", "pos", "ref", "alt", "context"]].assign(
            sample_id=f"C{k + 1}", panel_patients=panel["patient_id"], alt_f1r2=alt_f1r2, alt_f2r1=alt_f2r1,
            ref_f1r2=500 - alt_f1r2, ref_f2r1=500 - alt_f2r1,
        ))  # fmt: skip
    for patient in patients:
        name = f"S_{patient}_1"
        own = panel[panel["patient_id"] == patient]
        damage = OXOG if name in damaged else 0.0
        alt_f1r2, alt_f2r1 = rng.binomial(500, RATE + damage, 20), rng.binomial(500, RATE, 20)
        frames.append(own[["chrom", "pos", "ref", "alt", "context"]].assign(
            sample_id=name, panel_patients=patient, alt_f1r2=alt_f1r2, alt_f2r1=alt_f2r1,
            ref_f1r2=500 - alt_f1r2, ref_f2r1=500 - alt_f2r1,
        ))  # fmt: skip
        flanks.append(oriented_flanks(rng, 1500, 500, damage).assign(sample_id=name))
    counts = pd.concat(frames, ignore_index=True)
    counts = counts.assign(
        alt_molecules=counts["alt_f1r2"] + counts["alt_f2r1"], ref_molecules=counts["ref_f1r2"] + counts["ref_f2r1"],
        other_molecules=0, discordant_molecules=0, reads=2000, mean_family_size=2.0, alt_lengths="",
    )  # fmt: skip
    samples = pd.DataFrame({
        "sample_id": [f"C{k + 1}" for k in range(4)] + [f"S_{p}_1" for p in patients],
        "patient_id": [""] * 4 + patients, "sample_type": ["control"] * 4 + ["plasma"] * 6,
        "collection_date": "2024-01-01", "batch": "b1",
    })  # fmt: skip
    return counts, samples, panel, pd.concat(flanks, ignore_index=True)


def test_a_sample_with_a_strong_f1r2_only_gt_excess_stays_negative_where_the_cohort_never_saw_the_damage():
    rng = np.random.default_rng(21)
    counts, samples, panel, flanks = bespoke_gt_cohort({"S_P1_1", "S_P2_1"}, rng)
    # S_P1_1's 8-oxoG gives ~20 G>T molecules at its 20 loci, all F1R2, where the cohort's rates expect 2.
    # S_P2_1 carries the same damage and tumor DNA: 20 more G>T molecules, half of them F2R1.
    at_p2 = (counts["sample_id"] == "S_P2_1").to_numpy()
    counts.loc[at_p2, "alt_f2r1"] += np.tile([1, 0], 10)
    counts.loc[at_p2, "alt_f1r2"] += np.tile([0, 1], 10)
    counts["alt_molecules"] = counts["alt_f1r2"] + counts["alt_f2r1"]
    counts["ref_f1r2"], counts["ref_f2r1"] = 500 - counts["alt_f1r2"], 500 - counts["alt_f2r1"]
    counts["ref_molecules"] = counts["ref_f1r2"] + counts["ref_f2r1"]
    model = build_background(counts, samples)
    args = (counts, samples, panel, model.locus_rates, model.excluded)

    own = call_cohort(*args, FAST, flanks=flanks, context_rates=model.context_rates).calls.set_index(
        "sample_id"
    )
    assert own.loc["S_P1_1", "mrd_status"] == "negative" and own.loc["S_P2_1", "mrd_status"] == "positive"
    assert own.loc["S_P1_1", "p_value"] > 0.05  # its own rates know the damage
    assert (own["background_source"] == "own_flanks").all()
    assert (own["threshold_source"] == "empirical").all()
    assert own.loc["S_P1_1", "empirical_p_value"] > 0.05
    # A panel without the support a positive needs is as extreme as none of its own null's panels.
    unsupported = (own["mutant_fragments"] < 2) | (own["mutant_loci"] < 2)
    assert unsupported.any() and (own.loc[unsupported, "empirical_p_value"] == 1).all()
    # The cohort's rates alone (its background never saw the damage) take S_P1_1's damage for tumor DNA ...
    off = replace(FAST, sample_background=False)
    cohort_rates = call_cohort(*args, off, flanks=flanks, context_rates=model.context_rates).calls
    cohort_rates = cohort_rates.set_index("sample_id")
    assert cohort_rates.loc["S_P1_1", "p_value"] < 1e-3 and (cohort_rates["background_source"] == "off").all()
    # ... which its own null (as damaged) then holds back, and without flanks nothing does.
    assert cohort_rates.loc["S_P1_1", "mrd_status"] == "negative"
    blind = call_cohort(*args, FAST).calls.set_index("sample_id")
    assert blind.loc["S_P1_1", "mrd_status"] == "positive" and blind.loc["S_P1_1", "background_scale"] == 1


def test_the_factors_find_the_damaged_orientation_and_leave_undamaged_libraries_at_the_cohorts_rates():
    rng = np.random.default_rng(22)
    tallies = pd.concat(
        [
            flank_tallies(oriented_flanks(rng, 1500, 500, OXOG if k < 2 else 0.0), FAST).assign(
                sample_id=f"S{k}"
            )
            for k in range(8)
        ],
        ignore_index=True,
    )
    table = fit_sample_rates(tallies)
    assert set(table["level"]) == {"sample", "group", "context"}
    factors = sample_factors(table)
    # 8-oxoG on the pyrimidine strand: C>A in F2R1 molecules (G>T in F1R2 ones of the other strand).
    for k in range(8):
        damaged = factors[f"S{k}"].by_group[("C>A", "f2r1")]
        assert damaged > 5 if k < 2 else damaged < 0.6
        assert 0.7 < factors[f"S{k}"].by_group[("C>T", "f1r2")] < 1.4
    loci = pd.DataFrame({"ref": ["G", "C", "T"], "alt": ["T", "A", "C"], "context": ["AGT", "ACT", "ATG"]})
    on_loci = factors["S0"].of_loci(loci)  # reference strand: G>T damaged in F1R2, C>A in F2R1
    assert on_loci[0, 0] > 3 * on_loci[0, 1] and on_loci[1, 1] > 3 * on_loci[1, 0]
    assert 0.7 < on_loci[2, 0] < 1.4 and 0.7 < on_loci[2, 1] < 1.4


def test_without_spread_between_libraries_the_prior_is_strong_and_every_factor_stays_near_one():
    rng = np.random.default_rng(23)
    expected = np.full(200, 5.0)
    one_unit = np.zeros(200, dtype=np.int64)
    assert unit_strengths(rng.poisson(expected), expected, np.ones(200), one_unit)[0] > 100
    spread = expected * rng.gamma(2.0, 0.5, 200)  # libraries that differ: a Gamma of shape 2
    assert 0.8 < unit_strengths(rng.poisson(spread), expected, np.ones(200), one_unit)[0] < 5
    tallies = pd.concat(
        [flank_tallies(oriented_flanks(rng, 800, 400), FAST).assign(sample_id=f"S{k}") for k in range(6)],
        ignore_index=True,
    )
    table = fit_sample_rates(tallies)
    assert table["factor"].between(0.75, 1.33).all()
    assert fit_sample_rates(tallies[tallies["sample_id"] == "S0"]).empty  # one sample: no cohort to compare


def test_a_librarys_damage_does_not_set_the_level_of_its_other_substitutions_which_share_its_noise():
    # Sixteen libraries: half at twice the others' noise in every substitution, and each with its own 8-oxoG
    # damage (log-normal, 2x more or less from one library to the next), whose ~400 damaged molecules dwarf
    # the ~15 of each other substitution. The level the substitutions share comes from all of them, not from
    # the damage: C>T reads 2 in noisy libraries and 1 in the others, whatever each one's damage.
    rng = np.random.default_rng(31)
    noise = np.repeat([1.0, 2.0], 8)
    damage = OXOG * np.exp(0.7 * rng.standard_normal(16))
    tallies = pd.concat(
        [
            flank_tallies(oriented_flanks(rng, 1500, 500, damage[k], RATE * noise[k]), FAST).assign(
                sample_id=f"S{k}"
            )
            for k in range(16)
        ],
        ignore_index=True,
    )
    factors = sample_factors(fit_sample_rates(tallies))
    # Factors are over the cohort's (the other libraries') rates, which sit at the mean noise, 1.5x.
    for k in range(16):
        own = factors[f"S{k}"]
        for orientation in ("f1r2", "f2r1"):
            assert 0.75 < own.by_group[("C>T", orientation)] * 1.5 / noise[k] < 1.33
            assert 0.75 < own.by_group[("T>G", orientation)] * 1.5 / noise[k] < 1.33
    damaged = np.array([factors[f"S{k}"].by_group[("C>A", "f2r1")] for k in range(16)])
    assert np.corrcoef(np.log(damaged), np.log(damage + RATE * noise))[0, 1] > 0.9


def test_each_locus_takes_its_contexts_factor_per_orientation_its_groups_without_one_and_an_indel_the_samples():
    factors = SampleFactors(
        overall=1.5,
        by_group={(rate_group("C>A", "TCA"), "f1r2"): 2.0, (rate_group("C>A", "TCA"), "f2r1"): 3.0},
        by_context={("C>A", "ACA", "f1r2"): 4.0, ("C>A", "ACA", "f2r1"): 5.0},
    )
    loci = pd.DataFrame(
        {
            "ref": ["C", "G", "C", "CT", "C"],
            "alt": ["A", "T", "A", "C", "A"],
            "context": ["ACA", "TGT", "TCA", "ACT", "ACA"],
        }
    )
    expected = [
        [4.0, 5.0],  # C>A in ACA, as the flanks tallied it
        [5.0, 4.0],  # its reverse complement G>T in TGT: the orientations swap on the pyrimidine strand
        [2.0, 3.0],  # C>A in TCA: no context row, its group's (the substitution's) factors
        [1.5, 1.5],  # an indel: the sample's overall factor
        [4.0, 5.0],
    ]
    np.testing.assert_allclose(factors.of_loci(loci), expected)


def test_only_libraries_sequenced_at_other_patients_panels_as_deeply_as_at_their_own_are_part_of_the_cohort_rates():
    rng = np.random.default_rng(3)
    counts, samples, _, _ = bespoke_gt_cohort(set(), rng)
    assert libraries_in_cohort_rates(counts, samples) == set()  # bespoke captures; controls have no own panel
    pooled = counts[counts["sample_id"] == "C1"].assign(sample_id="S_P1_1")  # a pool of every patient's panel
    counts = pd.concat([counts[counts["sample_id"] != "S_P1_1"], pooled], ignore_index=True)
    assert libraries_in_cohort_rates(counts, samples) == {"S_P1_1"}


def test_a_library_that_is_part_of_the_cohort_rates_is_measured_against_the_other_libraries_flanks():
    # Flanks at twice the panel loci's context rates (positions the panel-locus background screens out, e.g.
    # artifacts a 30x flank position cannot show): a factor over the background's rates would read 2 for
    # every library; one over the other libraries' flanks reads 1, which is right for a library whose
    # molecules made the panel-locus rates.
    rng = np.random.default_rng(4)
    samples = [f"S{k}" for k in range(6)]
    tallies = pd.concat(
        [flank_tallies(oriented_flanks(rng, 800, 400), FAST).assign(sample_id=s) for s in samples],
        ignore_index=True,
    )
    pooled = tallies.groupby(["substitution", "context", "orientation"], as_index=False)[
        ["alt_molecules", "total_molecules"]
    ].sum()
    context_rates = pooled.assign(rate=pooled["alt_molecules"] / pooled["total_molecules"] / 2)
    rates = fit_sample_rates(tallies, context_rates, in_cohort_rates={"S0", "S1", "S2"})
    overall = rates[rates["level"] == "sample"].set_index("sample_id")["factor"]
    np.testing.assert_allclose(overall[["S0", "S1", "S2"]], 1.0, atol=0.1)
    np.testing.assert_allclose(overall[["S3", "S4", "S5"]], 2.0, atol=0.2)
