"""The cohort background error model: what is background, how rates are pooled and shrunk, what is excluded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from mrdtrack.calling import BackgroundSettings, build_background
from mrdtrack.calling.background import background_observations, fit_prior_molecules, shrink
from mrdtrack.calling.locus_classes import (
    all_context_classes,
    all_indel_classes,
    indel_class,
    pyrimidine_class,
    reverse_complement,
)
from mrdtrack.logs import UserFacingError


# ----------------------------------------------------------------------------------------------------------
# A small count-level cohort simulator (binomial molecules; no reads), shared with test_caller.py
# ----------------------------------------------------------------------------------------------------------
@dataclass
class CohortSpec:
    patients: int = 6
    loci_per_patient: int = 20
    controls: int = 6
    plasma_tfs: dict[str, list[float]] = field(default_factory=dict)  # patient -> TF of each plasma sample
    depth: float = 150.0  # mean informative molecules per locus
    error_rate: float = 1e-5  # background rate of an ordinary locus
    cpg_rate: float = 2e-4  # C>T at CpG (and G>A at the mirrored context)
    noisy: dict[int, float] = field(default_factory=dict)  # locus index -> its true error rate
    chip: dict[int, float] = field(default_factory=dict)  # locus index -> VAF in the patient's normal
    normals: bool = True
    depth_of: dict[str, float] = field(default_factory=dict)  # patient -> depth of that patient's plasma
    contamination: dict[str, tuple[str, float]] = field(default_factory=dict)  # patient -> (donor, its TF)
    seed: int = 7


@dataclass
class Cohort:
    counts: pd.DataFrame
    samples: pd.DataFrame
    panel: pd.DataFrame
    truth: np.ndarray  # true error rate per unique locus


def _random_locus(rng: np.random.Generator, index: int) -> tuple[str, int, str, str, str]:
    context = "".join(rng.choice(list("ACGT"), 3))
    ref = context[1]
    alt = str(rng.choice([b for b in "ACGT" if b != ref]))
    return "chr1", 1000 + 1000 * index, ref, alt, context


def _true_rate(ref: str, alt: str, context: str, spec: CohortSpec) -> float:
    sub, ctx, _ = pyrimidine_class(ref, alt, context)
    return spec.cpg_rate if sub == "C>T" and ctx[2] == "G" else spec.error_rate


def simulate_cohort(spec: CohortSpec) -> Cohort:
    """Patients P1.. with disjoint panels; controls C1..; plasma S_<patient>_<k>; normals N_<patient>."""
    rng = np.random.default_rng(spec.seed)
    patients = [f"P{i + 1}" for i in range(spec.patients)]
    loci = [_random_locus(rng, i) for i in range(spec.patients * spec.loci_per_patient)]
    panel = pd.DataFrame(loci, columns=["chrom", "pos", "ref", "alt", "context"])
    panel.insert(0, "patient_id", np.repeat(patients, spec.loci_per_patient))
    panel["weight"] = 1.0
    truth = np.array([_true_rate(r, a, c, spec) for _, _, r, a, c in loci])
    for index, rate in spec.noisy.items():
        truth[index] = rate
    sample_rows, count_frames = [], []
    for k in range(spec.controls):
        sample_rows.append((f"C{k + 1}", "", "control"))
        count_frames.append(_sample_counts(rng, panel, truth, f"C{k + 1}", None, 0.0, spec))
    for patient in patients:
        for k, tf in enumerate(spec.plasma_tfs.get(patient, [0.0])):
            name = f"S_{patient}_{k + 1}"
            sample_rows.append((name, patient, "plasma"))
            count_frames.append(_sample_counts(rng, panel, truth, name, patient, tf, spec))
        if spec.normals:
            sample_rows.append((f"N_{patient}", patient, "normal"))
            count_frames.append(
                _sample_counts(rng, panel, truth, f"N_{patient}", patient, 0.0, spec, chip=True)
            )
    samples = pd.DataFrame(sample_rows, columns=["sample_id", "patient_id", "sample_type"])
    samples["collection_date"] = "2024-01-01"
    samples["batch"] = "b1"
    samples["plasma_ml"] = 4.0
    samples["cfdna_ng"] = 20.0
    return Cohort(pd.concat(count_frames, ignore_index=True), samples, panel, truth)


def _sample_counts(
    rng: np.random.Generator,
    panel: pd.DataFrame,
    truth: np.ndarray,
    sample_id: str,
    patient: str | None,
    tf: float,
    spec: CohortSpec,
    chip: bool = False,
) -> pd.DataFrame:
    own = (panel["patient_id"] == patient).to_numpy()
    tumor = tf * own
    if patient in spec.contamination and not chip:
        donor, donor_tf = spec.contamination[patient]
        tumor = tumor + donor_tf * (panel["patient_id"] == donor).to_numpy()
    p = truth + (1 - truth) * tumor * panel["weight"].to_numpy() / 2
    if chip:
        for index, vaf in spec.chip.items():
            p[index] = max(p[index], vaf) if own[index] else p[index]
    depth = spec.depth_of.get(patient, spec.depth) if patient and not chip else spec.depth
    n = rng.poisson(depth, len(panel))
    alt = rng.binomial(n, p)
    alt_f1r2 = rng.binomial(alt, 0.5)
    ref_f1r2 = rng.binomial(n - alt, 0.5)
    return pd.DataFrame(
        {
            "sample_id": sample_id,
            **{k: panel[k] for k in ("chrom", "pos", "ref", "alt")},
            "panel_patients": panel["patient_id"],
            "context": panel["context"],
            "ref_molecules": n - alt,
            "alt_molecules": alt,
            "other_molecules": 0,
            "discordant_molecules": 0,
            "alt_f1r2": alt_f1r2,
            "alt_f2r1": alt - alt_f1r2,
            "ref_f1r2": ref_f1r2,
            "ref_f2r1": n - alt - ref_f1r2,
            "reads": 2 * n,
            "mean_family_size": 2.0,
            "alt_lengths": "",
        }
    )


def locus_row(model, cohort: Cohort, index: int) -> pd.Series:
    key = cohort.panel.iloc[index]
    rates = model.locus_rates
    return rates[(rates["pos"] == key["pos"]) & (rates["alt"] == key["alt"])].iloc[0]


# ----------------------------------------------------------------------------------------------------------
# 96 pyrimidine-centred classes
# ----------------------------------------------------------------------------------------------------------
def test_purine_reference_is_reverse_complemented_onto_the_pyrimidine_strand():
    assert pyrimidine_class("G", "T", "AGC") == ("C>A", "GCT", True)
    assert pyrimidine_class("A", "G", "TAC") == ("T>C", "GTA", True)
    assert pyrimidine_class("C", "T", "ACG") == ("C>T", "ACG", False)  # CpG stays as is
    assert pyrimidine_class("G", "A", "CGT") == ("C>T", "ACG", True)  # ... and its mirror joins it
    assert reverse_complement("ACGTN") == "NACGT"


def test_there_are_96_classes_each_centred_on_a_pyrimidine():
    classes = all_context_classes()
    assert len(classes) == 96 and not classes.duplicated().any()
    assert set(classes["substitution"]) == {"C>A", "C>G", "C>T", "T>A", "T>C", "T>G"}
    assert all(ctx[1] == sub[0] for sub, ctx in zip(classes["substitution"], classes["context"], strict=True))


# ----------------------------------------------------------------------------------------------------------
# What counts as background
# ----------------------------------------------------------------------------------------------------------
def test_background_is_controls_everywhere_and_patients_only_outside_their_own_panel():
    counts = pd.DataFrame(
        {
            "sample_id": ["C1", "S1", "S1", "S1", "N1"],
            "panel_patients": ["P1", "P1", "P2", "P1,P2", "P2"],
            "alt_molecules": [0, 5, 0, 1, 0],
        }
    )
    samples = pd.DataFrame(
        {
            "sample_id": ["C1", "S1", "N1"],
            "patient_id": ["", "P1", "P1"],
            "sample_type": ["control", "plasma", "normal"],
        }
    )
    kept = background_observations(counts, samples)
    # S1 (patient P1) is background only at P2's private locus; the shared hotspot P1,P2 is never background.
    assert list(zip(kept["sample_id"], kept["panel_patients"], strict=True)) == [
        ("C1", "P1"),
        ("S1", "P2"),
        ("N1", "P2"),
    ]
    assert list(background_observations(counts, samples, include_normals=False)["sample_id"]) == ["C1", "S1"]


def test_count_tables_of_unknown_samples_are_a_user_error():
    counts = pd.DataFrame({"sample_id": ["X"], "panel_patients": ["P1"], "alt_molecules": [0]})
    samples = pd.DataFrame({"sample_id": ["C1"], "patient_id": [""], "sample_type": ["control"]})
    with pytest.raises(UserFacingError, match="X"):
        background_observations(counts, samples)


def test_tumor_signal_of_a_patient_never_leaks_into_background():
    spec = CohortSpec(plasma_tfs={"P1": [0.2]}, seed=3)
    cohort = simulate_cohort(spec)
    model = build_background(cohort.counts, cohort.samples)
    p1 = model.locus_rates.iloc[: spec.loci_per_patient]
    assert (p1["rate"] < 1e-3).all() and not p1["excluded"].any()


# ----------------------------------------------------------------------------------------------------------
# Empirical Bayes
# ----------------------------------------------------------------------------------------------------------
def test_shrinkage_is_the_beta_binomial_posterior_mean():
    assert shrink(np.array([3.0]), np.array([1000.0]), np.array([1e-3]), np.array([1000.0])) == pytest.approx(
        (3 + 1) / 2000
    )


def test_overdispersion_is_found_when_units_differ_and_not_when_they_do_not():
    rng = np.random.default_rng(0)
    total = np.full(400, 20_000)
    mean = np.full(400, 1e-4)
    alike = rng.binomial(total, 1e-4)
    unlike = rng.binomial(total, rng.gamma(0.5, 2e-4, 400))
    assert fit_prior_molecules(alike, total, mean) > 1e6  # no detectable spread: share the mean
    assert fit_prior_molecules(unlike, total, mean) < 1e5  # Gamma(0.5) spread: M ~ 0.5 / 1e-4 = 5000


def test_low_depth_loci_are_pulled_to_their_context_rate_and_deep_loci_keep_their_own():
    spec = CohortSpec(patients=8, loci_per_patient=30, controls=10, depth=150, seed=11)
    cohort = simulate_cohort(spec)
    # Make locus 0 shallow (a few molecules in every sample) and locus 1 very deep with a raised but real rate.
    shallow, deep = cohort.panel.iloc[0], cohort.panel.iloc[1]
    counts = cohort.counts.copy()
    at_shallow = counts["pos"] == shallow["pos"]
    counts.loc[at_shallow, "ref_molecules"] = 3
    counts.loc[at_shallow, "alt_molecules"] = 0
    at_deep = (counts["pos"] == deep["pos"]) & (counts["sample_id"].str[0] == "C")
    counts.loc[at_deep, "ref_molecules"] = 200_000
    counts.loc[at_deep, "alt_molecules"] = 4  # raw rate 2e-5: a bit above a typical 1e-5 context
    model = build_background(counts, cohort.samples)
    low = locus_row(model, cohort, 0)
    assert low["rate"] == pytest.approx(low["context_rate"], rel=0.05)
    high = locus_row(model, cohort, 1)
    raw = high["alt_molecules"] / high["total_molecules"]
    assert abs(np.log(high["rate"] / raw)) < abs(np.log(high["context_rate"] / raw))


def test_every_rate_is_above_zero_even_with_no_background_alt_at_all():
    spec = CohortSpec(error_rate=0.0, cpg_rate=0.0, seed=5)
    model = build_background(simulate_cohort(spec).counts, simulate_cohort(spec).samples)
    assert (model.locus_rates["rate"] > 0).all()
    assert (model.context_rates["rate"] > 0).all()


def test_context_rates_recover_the_cpg_excess_in_all_three_orientation_rows():
    spec = CohortSpec(patients=10, loci_per_patient=40, controls=10, depth=400, seed=2)
    cohort = simulate_cohort(spec)
    model = build_background(cohort.counts, cohort.samples)
    rates = model.context_rates
    assert len(rates) == 96 * 3 and set(rates["orientation"]) == {"all", "f1r2", "f2r1"}
    cpg = rates[
        (rates["substitution"] == "C>T") & rates["context"].str.endswith("G") & (rates["total_molecules"] > 0)
    ]
    other = rates[(rates["substitution"] == "C>A") & (rates["total_molecules"] > 0)]
    assert cpg["rate"].median() > 5 * other["rate"].median()
    assert cpg.loc[cpg["orientation"] == "all", "rate"].median() == pytest.approx(2e-4, rel=0.5)


# ----------------------------------------------------------------------------------------------------------
# Exclusions
# ----------------------------------------------------------------------------------------------------------
def test_a_locus_far_noisier_than_its_context_is_excluded_for_everyone_with_a_reason():
    spec = CohortSpec(noisy={5: 5e-3}, seed=4)
    cohort = simulate_cohort(spec)
    model = build_background(cohort.counts, cohort.samples)
    noisy = locus_row(model, cohort, 5)
    assert noisy["excluded"] and noisy["reason"] == "noisy_locus" and noisy["noise_p_value"] < 1e-6
    assert noisy["rate"] == pytest.approx(5e-3, rel=0.5)  # its own rate, not shrunk to the context
    assert model.locus_rates["excluded"].sum() == 1
    row = model.excluded.iloc[0]
    assert (row["pos"], row["patient_id"], row["reason"]) == (noisy["pos"], "", "noisy_locus")


def test_a_noisy_locus_does_not_hide_by_inflating_its_own_context():
    # A context with a single other locus: judged against itself, the noisy locus would look ordinary.
    spec = CohortSpec(patients=3, loci_per_patient=5, depth=400, noisy={0: 1e-2}, seed=9)
    cohort = simulate_cohort(spec)
    model = build_background(cohort.counts, cohort.samples)
    assert locus_row(model, cohort, 0)["excluded"]


def test_alt_in_too_many_unrelated_samples_excludes_a_locus():
    spec = CohortSpec(seed=6)
    cohort = simulate_cohort(spec)
    counts = cohort.counts.copy()
    locus = cohort.panel.iloc[40]
    at = (counts["pos"] == locus["pos"]) & ~counts["sample_id"].str.endswith(locus["patient_id"])
    at &= ~counts["sample_id"].str.contains(f"_{locus['patient_id']}_")
    counts.loc[at, "alt_molecules"] = 1  # one ALT in every unrelated sample: a recurrent artifact
    settings = BackgroundSettings(noisy_max_p=1e-300)  # only the share rule can catch it here
    model = build_background(counts, cohort.samples, settings)
    assert locus_row(model, cohort, 40)["reason"] == "alt_in_many_samples"


def test_alt_in_the_patients_own_normal_excludes_the_locus_for_that_patient_only():
    spec = CohortSpec(chip={3: 0.02, 4: 0.5}, seed=8)
    cohort = simulate_cohort(spec)
    model = build_background(cohort.counts, cohort.samples)
    patient_rows = model.excluded[model.excluded["patient_id"] != ""]
    found = {(r.pos, r.patient_id, r.reason) for r in patient_rows.itertuples()}
    assert found == {
        (cohort.panel.iloc[3]["pos"], "P1", "chip_in_matched_normal"),
        (cohort.panel.iloc[4]["pos"], "P1", "germline_in_matched_normal"),
    }
    assert not model.locus_rates["excluded"].any()  # nobody else loses these loci


def test_unknown_settings_are_rejected_with_the_known_keys():
    with pytest.raises(UserFacingError, match="noisy_max_p"):
        BackgroundSettings.from_config({"noisy_maxp": 1e-6})
    assert BackgroundSettings.from_config(None) == BackgroundSettings()


def test_tables_follow_the_contract_and_reruns_are_identical(tmp_path):
    from mrdtrack.tables import write_tsv

    cohort = simulate_cohort(CohortSpec(noisy={2: 1e-2}, chip={3: 0.05}, seed=12))
    paths = []
    for run in range(2):
        model = build_background(cohort.counts, cohort.samples)
        for name in ("context_rates", "locus_rates", "excluded"):
            path = tmp_path / f"{name}{run}.tsv"
            write_tsv(getattr(model, name), path)
            paths.append(path)
    assert all(paths[i].read_bytes() == paths[i + 3].read_bytes() for i in range(3))
    assert list(model.locus_rates.columns[:14]) == [
        "chrom", "pos", "ref", "alt", "context", "substitution", "alt_molecules", "total_molecules",
        "n_samples", "n_samples_with_alt", "context_rate", "rate", "excluded", "reason",
    ]  # fmt: skip
    assert list(model.excluded.columns) == ["chrom", "pos", "ref", "alt", "patient_id", "reason"]


def test_orientation_follows_the_pyrimidine_strand_so_oxog_lands_in_one_orientation():
    # 8-oxoG: G>T on read 1. In reference terms that is G>T in F1R2 pairs at a G locus and C>A in F2R1 pairs at
    # a C locus; both are C>A at GCT on the pyrimidine strand, and both must land in its f2r1 row.
    rows = []
    for k, (ref, alt, context, alt_f1r2, alt_f2r1) in enumerate(
        [("C", "A", "GCT", 0, 30), ("G", "T", "AGC", 30, 0)]
    ):
        rows.append(
            {"sample_id": "C1", "chrom": "chr1", "pos": 100 + k, "ref": ref, "alt": alt, "panel_patients": "P1",
             "context": context, "ref_molecules": 100_000 - 30, "alt_molecules": 30, "alt_f1r2": alt_f1r2,
             "alt_f2r1": alt_f2r1, "ref_f1r2": 50_000 - 15, "ref_f2r1": 50_000 - 15}
        )  # fmt: skip
    samples = pd.DataFrame({"sample_id": ["C1"], "patient_id": [""], "sample_type": ["control"]})
    model = build_background(pd.DataFrame(rows), samples)
    gct = model.context_rates[
        (model.context_rates["substitution"] == "C>A") & (model.context_rates["context"] == "GCT")
    ]
    by_orientation = gct.set_index("orientation")
    assert (
        by_orientation.loc["f2r1", "alt_molecules"] == 60 and by_orientation.loc["f1r2", "alt_molecules"] == 0
    )
    assert by_orientation.loc["f2r1", "rate"] > 10 * by_orientation.loc["f1r2", "rate"]


# ----------------------------------------------------------------------------------------------------------
# Indels and multi-allelic sites
# ----------------------------------------------------------------------------------------------------------
# (panel context, REF, ALT, true error rate): slippage errors grow with the homopolymer's length.
INDEL_LOCI = [
    ("del1:Ax9", "GA", "G", 2e-3),  # a deletion in a 9-A homopolymer
    ("del1:Cx1", "TC", "T", 2e-5),  # ... and outside any repeat
    ("ins1:Tx4", "G", "GT", 2e-4),
]


def with_indel_loci(cohort: Cohort, copies: int = 12, seed: int = 1) -> pd.DataFrame:
    """The cohort's count tables plus `copies` loci of each INDEL_LOCI kind, spread over the patients."""
    rng = np.random.default_rng(seed)
    patients = sorted(set(cohort.panel["patient_id"]))
    rows = []
    for k in range(copies * len(INDEL_LOCI)):
        context, ref, alt, rate = INDEL_LOCI[k % len(INDEL_LOCI)]
        for sample_id in cohort.samples["sample_id"]:
            n = int(rng.poisson(400))
            a = int(rng.binomial(n, rate))
            rows.append(
                {"sample_id": sample_id, "chrom": "chr2", "pos": 1000 + 100 * k, "ref": ref, "alt": alt,
                 "panel_patients": patients[k % len(patients)], "context": context, "ref_molecules": n - a,
                 "alt_molecules": a, "other_molecules": 0, "discordant_molecules": 0, "alt_f1r2": a // 2,
                 "alt_f2r1": a - a // 2, "ref_f1r2": (n - a) // 2, "ref_f2r1": n - a - (n - a) // 2,
                 "reads": 2 * n, "mean_family_size": 2.0, "alt_lengths": ""}
            )  # fmt: skip
    return pd.concat([cohort.counts, pd.DataFrame(rows)], ignore_index=True)


def test_indel_contexts_are_classed_by_type_length_and_repeat_copies():
    assert indel_class("del1:Ax9") == ("del1", "rep8+")
    assert indel_class("ins1:Gx0") == ("ins1", "rep0")
    assert indel_class("del2:CAx3") == ("del2", "rep2-3")
    assert indel_class("ins7:ACGTTGCx1") == ("ins5+", "rep1")
    classes = all_indel_classes()
    assert len(classes) == 4 * 5 + 4 * 6 and not classes.duplicated().any()  # a deletion has >= 1 copy


def test_indels_have_their_own_classes_and_the_snv_rates_do_not_change():
    cohort = simulate_cohort(CohortSpec(noisy={2: 1e-2}, chip={3: 0.05}, seed=12))
    snv_only = build_background(cohort.counts, cohort.samples)
    both = build_background(with_indel_loci(cohort), cohort.samples)
    snv = both.locus_rates["pos"].isin(cohort.panel["pos"]) & (both.locus_rates["chrom"] == "chr1")
    pd.testing.assert_frame_equal(both.locus_rates[snv].reset_index(drop=True), snv_only.locus_rates)
    pd.testing.assert_frame_equal(
        both.context_rates.iloc[: len(snv_only.context_rates)], snv_only.context_rates
    )
    indel_rates = both.context_rates.iloc[len(snv_only.context_rates) :]
    assert len(indel_rates) == 44 * 3 and set(indel_rates["substitution"]) == set(
        all_indel_classes()["substitution"]
    )
    rate = indel_rates[indel_rates["orientation"] == "all"].set_index(["substitution", "context"])["rate"]
    assert rate["del1", "rep8+"] == pytest.approx(2e-3, rel=0.2)
    assert rate["ins1", "rep4-5"] == pytest.approx(2e-4, rel=0.3)
    assert rate["del1", "rep8+"] > 20 * rate["del1", "rep1"]
    # Judged against its own context, a homopolymer deletion is not noisy; among SNVs it would look it.
    indels = both.locus_rates[both.locus_rates["chrom"] == "chr2"]
    assert not indels["excluded"].any()
    assert set(indels["pyrimidine_context"]) == {"rep8+", "rep1", "rep4-5"}


def test_a_count_table_indel_without_a_panel_indel_context_is_a_user_error():
    cohort = simulate_cohort(CohortSpec(seed=3))
    counts = with_indel_loci(cohort, copies=1)
    counts.loc[counts["chrom"] == "chr2", "context"] = "GAA"  # a trinucleotide, as an old panel would give
    with pytest.raises(UserFacingError, match="chr2:1000 GA>G"):
        build_background(counts, cohort.samples)


def test_each_alt_of_a_multiallelic_site_is_its_own_background_locus():
    cohort = simulate_cohort(CohortSpec(seed=5))
    first = cohort.counts["pos"] == cohort.panel["pos"].iloc[0]
    other = cohort.counts[first].copy()
    ref = cohort.panel["ref"].iloc[0]
    other["alt"] = next(b for b in "ACGT" if b not in (ref, cohort.panel["alt"].iloc[0]))
    other["alt_molecules"] = 30  # the second ALT is noisy here; the first is not
    counts = pd.concat([cohort.counts, other], ignore_index=True)
    model = build_background(counts, cohort.samples)
    site = model.locus_rates[model.locus_rates["pos"] == cohort.panel["pos"].iloc[0]]
    assert len(site) == 2
    assert site.set_index("alt")["excluded"].to_dict() == {
        cohort.panel["alt"].iloc[0]: False,
        other["alt"].iloc[0]: True,
    }


# ----------------------------------------------------------------------------------------------------------
# CHIP genes without a matched normal
# ----------------------------------------------------------------------------------------------------------
def chip_panel(cohort: Cohort, suspects: list[int]) -> pd.DataFrame:
    panel = cohort.panel.assign(gene="", chip_suspect=False)
    panel.loc[suspects, ["gene", "chip_suspect"]] = ["DNMT3A", True]
    return panel


def test_chip_gene_loci_are_only_flagged_by_default():
    cohort = simulate_cohort(CohortSpec(seed=8))
    model = build_background(cohort.counts, cohort.samples, panel=chip_panel(cohort, [3]))
    assert "chip_gene" not in set(model.excluded["reason"])


def test_with_exclude_chip_genes_a_chip_gene_locus_is_excluded_for_everyone():
    cohort = simulate_cohort(CohortSpec(noisy={5: 5e-3}, seed=4))
    settings = BackgroundSettings.from_config({"exclude_chip_genes": True})
    model = build_background(cohort.counts, cohort.samples, settings, chip_panel(cohort, [3, 5]))
    rows = {(r.pos, r.patient_id, r.reason) for r in model.excluded.itertuples()}
    # Locus 5 is noisy as well: it keeps that reason, and is listed once.
    assert rows == {(cohort.panel["pos"][3], "", "chip_gene"), (cohort.panel["pos"][5], "", "noisy_locus")}
    unflagged = build_background(cohort.counts, cohort.samples)
    pd.testing.assert_frame_equal(model.locus_rates, unflagged.locus_rates)  # the rates are not touched


def test_exclude_chip_genes_without_the_panels_chip_column_is_a_user_error():
    cohort = simulate_cohort(CohortSpec(seed=8))
    settings = BackgroundSettings(exclude_chip_genes=True)
    with pytest.raises(UserFacingError, match="chip_suspect"):
        build_background(cohort.counts, cohort.samples, settings, cohort.panel)
    with pytest.raises(UserFacingError, match="needs the panel"):
        build_background(cohort.counts, cohort.samples, settings)


def test_chip_flag_and_exclusion_reach_the_callers_loci_table():
    from mrdtrack.calling import CallSettings, call_cohort

    cohort = simulate_cohort(CohortSpec(patients=3, loci_per_patient=10, controls=4, seed=8))
    panel = chip_panel(cohort, [3])
    settings = BackgroundSettings(exclude_chip_genes=True)
    model = build_background(cohort.counts, cohort.samples, settings, panel)
    fast = CallSettings(null_draws=200, lod_draws=100, fragment_lengths=False)
    loci = call_cohort(cohort.counts, cohort.samples, panel, model.locus_rates, model.excluded, fast).loci
    flagged = loci[loci["chip_suspect"]]
    assert set(flagged["pos"]) == {cohort.panel["pos"][3]} and set(flagged["gene"]) == {"DNMT3A"}
    assert set(flagged["reason"]) == {"chip_gene"} and not flagged["used"].any()
    assert (loci.loc[~loci["chip_suspect"], "gene"] == "").all()
