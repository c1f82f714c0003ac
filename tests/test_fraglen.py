"""Fragment-length evidence: the length-weighted likelihood, its null and LOD, and the learned length model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mrdtrack.calling import (
    CallSettings,
    LengthClasses,
    LengthModel,
    LikelihoodTerms,
    build_background,
    build_length_model,
    call_cohort,
    lod95,
    null_distribution,
    seeded_rng,
)
from mrdtrack.calling.fraglen import MAX_LENGTH, histogram, parse_lengths
from mrdtrack.calling.inference import lr_statistic_rows, mle, profile_ci
from mrdtrack.calling.likelihood import log_likelihood
from mrdtrack.simulation import SimulationSettings, fragment_length_pmf
from mrdtrack.tables import read_tables, write_tsv

FAST = CallSettings(null_draws=2000, lod_draws=400)
SIM = SimulationSettings()
NORMAL_PMF = fragment_length_pmf(SIM.normal_fragment_mode, SIM)
TUMOR_PMF = fragment_length_pmf(SIM.tumor_fragment_mode, SIM, True)


def classes_of(normal: list[float], tumor: list[float]) -> LengthClasses:
    """Length classes given directly (lengths 0..k-1 are classes 0..k-1)."""
    k = len(normal)
    return LengthClasses(np.arange(k), np.asarray(normal, float), np.asarray(tumor, float))


def split_into_classes(a: np.ndarray, probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.multinomial(a, probabilities)


# ----------------------------------------------------------------------------------------------------------
# Likelihood with length classes
# ----------------------------------------------------------------------------------------------------------
def test_lengths_that_carry_no_information_leave_the_fit_as_counts_only():
    rng = np.random.default_rng(1)
    n = rng.integers(500, 3000, 30).astype(float)
    e, w = rng.lognormal(np.log(1e-4), 0.8, 30), rng.uniform(0.5, 1, 30)
    a = rng.binomial(n.astype(int), e + (1 - e) * 2e-3 * w / 2)
    table = split_into_classes(a, np.full(5, 0.2), rng)
    r = np.ones(5)
    assert mle(table, n, e, w, r) == pytest.approx(mle(a, n, e, w), rel=1e-9)
    assert lr_statistic_rows(table[None], n, e, w, r)[0] == pytest.approx(
        lr_statistic_rows(a[None], n, e, w)[0], rel=1e-9
    )
    assert profile_ci(table, n, e, w, 0.95, r) == pytest.approx(profile_ci(a, n, e, w), rel=1e-7)


def test_length_weighted_likelihood_is_the_per_molecule_mixture_of_tumor_and_normal_lengths():
    """Each ALT molecule of length l: e g_N(l) + q g_T(l); each REF molecule: 1 - e - q. Written out
    molecule by molecule, independently of the class tables."""
    n, e, w = np.array([800.0, 1200.0]), np.array([2e-4, 5e-4]), np.array([1.0, 0.6])
    lengths = {0: [120, 166, 145], 1: [171]}
    classes = LengthClasses(np.arange(MAX_LENGTH + 1), *(np.pad(p, (0, MAX_LENGTH + 1 - len(p))) for p in
                                                          (NORMAL_PMF, TUMOR_PMF)))  # fmt: skip
    table = classes.table([np.array(lengths[0]), np.array(lengths[1])])

    def by_hand(f: float) -> float:
        q = (1 - e) * f * w / 2
        total = sum((n[i] - len(ls)) * np.log1p(-(e[i] + q[i])) for i, ls in lengths.items())
        return total + sum(
            np.log(e[i] * NORMAL_PMF[x] + q[i] * TUMOR_PMF[x]) for i, ls in lengths.items() for x in ls
        )

    for f in (1e-4, 3e-3, 0.05):
        ours = log_likelihood(f, table, n, e, w, classes.ratio) - log_likelihood(
            0.0, table, n, e, w, classes.ratio
        )
        assert ours == pytest.approx(by_hand(f) - by_hand(0.0), rel=1e-9)


def test_short_mutant_molecules_are_stronger_evidence_than_long_ones():
    n, e, w = np.full(20, 2000.0), np.full(20, 1e-4), np.ones(20)
    r = np.array([0.4, 3.0])
    long_alt, short_alt = np.zeros((20, 2), int), np.zeros((20, 2), int)
    long_alt[:6, 0], short_alt[:6, 1] = 1, 1
    counts_only = lr_statistic_rows(long_alt.sum(1)[None], n, e, w)[0]
    long_stat = lr_statistic_rows(long_alt[None], n, e, w, r)[0]
    short_stat = lr_statistic_rows(short_alt[None], n, e, w, r)[0]
    assert long_stat < counts_only < short_stat
    assert mle(long_alt, n, e, w, r) < mle(short_alt, n, e, w, r)


def test_null_p_values_with_lengths_keep_the_false_positive_rate():
    rng = np.random.default_rng(4)
    loci = 30
    n, e, w = np.full(loci, 3000.0), rng.lognormal(np.log(5e-5), 0.8, loci), np.ones(loci)
    classes = classes_of([0.1, 0.2, 0.4, 0.3], [0.4, 0.3, 0.2, 0.1])
    settings = CallSettings(p_value_method="monte_carlo", null_draws=5000)
    null = null_distribution(LikelihoodTerms.of_loci(n, e, w), settings, seeded_rng(1, "x"), classes)
    draws = 20_000
    tables = rng.multinomial(rng.binomial(n.astype(int), e, size=(draws, loci)), classes.normal)
    p = null.p_value(lr_statistic_rows(tables, n, e, w, classes.ratio))
    for alpha in (0.01, 0.05):
        assert (p <= alpha).mean() <= alpha + 3 * np.sqrt(alpha / draws)
        assert (p <= alpha).mean() >= alpha / 3  # and is not uselessly conservative


def test_shorter_tumor_fragments_lower_the_limit_of_detection():
    loci = 40
    n, e, w = np.full(loci, 3000.0), np.full(loci, 1e-4), np.ones(loci)
    settings = CallSettings(lod_draws=400, null_draws=2000)
    informative = classes_of([0.1, 0.3, 0.6], [0.6, 0.3, 0.1])
    flat = classes_of([0.1, 0.3, 0.6], [0.1, 0.3, 0.6])

    def lod(classes: LengthClasses | None) -> float:
        null = null_distribution(LikelihoodTerms.of_loci(n, e, w), settings, seeded_rng(2, "null"), classes)
        return lod95(LikelihoodTerms.of_loci(n, e, w), 0.01, null, settings, seeded_rng(2, "lod"), classes)

    counts_only, with_flat, with_informative = lod(None), lod(flat), lod(informative)
    assert with_flat == pytest.approx(counts_only, rel=0.1)
    assert with_informative < 0.8 * counts_only


# ----------------------------------------------------------------------------------------------------------
# The learned length model
# ----------------------------------------------------------------------------------------------------------
def draw_lengths(pmf: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(len(pmf), size, p=pmf)


def ref_histogram(molecules: int, rng: np.random.Generator) -> np.ndarray:
    return histogram(draw_lengths(NORMAL_PMF, molecules, rng))


def test_without_tumor_dna_in_the_cohort_lengths_weigh_nothing():
    rng = np.random.default_rng(5)
    samples = [f"S{i}" for i in range(20)]
    ref = {s: ref_histogram(20_000, rng) for s in samples}
    # Every plasma sample: its ALT molecules are the 10 background molecules expected.
    alt = {s: (draw_lengths(NORMAL_PMF, 10, rng), 10.0) for s in samples}
    model = build_length_model(ref, alt, prior=200, bandwidth=4)
    ratio = model.classes("S0").ratio
    normal = model.classes("S0").normal
    assert np.all(np.abs(np.log(ratio[normal > 0.01])) < 0.25)


def test_length_classes_are_probabilities_numpy_can_draw_from_even_when_every_length_is_one_class():
    ref = np.random.default_rng(2).poisson(50, MAX_LENGTH + 1).astype(float)
    ref[-1] = 0  # no fragment beyond the longest length class: no tumor DNA, every length in one class
    classes = LengthModel({"S1": ref}, {}, 10 * ref, prior=200.0, bandwidth=4.0).classes("S1")
    for probabilities in (classes.normal, classes.tumor):
        assert probabilities.min() >= 0 and probabilities.max() <= 1
        np.random.default_rng(0).multinomial(3, probabilities)  # raised on 1.0000000000000013


def test_tumor_lengths_are_learned_from_the_other_samples_mutant_molecules():
    rng = np.random.default_rng(6)
    ref = {s: ref_histogram(20_000, rng) for s in ("A", "B", "C")}
    tumor_rich = (
        np.concatenate([draw_lengths(TUMOR_PMF, 3000, rng), draw_lengths(NORMAL_PMF, 20, rng)]),
        20.0,
    )
    background_only = (draw_lengths(NORMAL_PMF, 20, rng), 20.0)
    model = build_length_model(ref, {"A": tumor_rich, "B": background_only, "C": background_only}, 200, 4)
    learned = model.classes("C")
    short, typical = learned.class_of_length[135], learned.class_of_length[167]
    assert learned.ratio[short] > 1.5 > 1 > learned.ratio[typical]
    # A's own mutant molecules are the only tumor DNA: left out of A's model, nothing is learned.
    assert np.all(np.abs(np.log(model.classes("A").ratio[model.classes("A").normal > 0.01])) < 0.25)


def test_a_sample_with_an_unusual_size_profile_gets_its_own_normal_lengths():
    rng = np.random.default_rng(7)
    shifted = SIM.normal_fragment_mode + 15
    long_library = histogram(draw_lengths(fragment_length_pmf(shifted, SIM), 20_000, rng))
    ref = {"A": ref_histogram(20_000, rng), "B": long_library}
    model = build_length_model(ref, {}, 200, 4)
    assert np.argmax(model.sample_normal("B")) == pytest.approx(shifted, abs=4)
    assert np.argmax(model.sample_normal("A")) == pytest.approx(SIM.normal_fragment_mode, abs=4)


def test_alt_lengths_cells_and_fragment_length_files_are_read(tmp_path):
    assert parse_lengths("").size == 0 and list(parse_lengths("140,167")) == [140, 167]
    path = tmp_path / "S1.fraglen.tsv"
    write_tsv(pd.DataFrame({"allele": ["ref", "alt"], "length": [167, 140], "molecules": [10, 1]}), str(path))
    table = read_tables("fraglen", [str(path)])
    assert table.to_dict("list") == {
        "sample_id": ["S1", "S1"],
        "allele": ["ref", "alt"],
        "length": [167, 140],
        "molecules": [10, 1],
    }


# ----------------------------------------------------------------------------------------------------------
# Calling a cohort with lengths
# ----------------------------------------------------------------------------------------------------------
def length_cohort(seed: int = 8) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """6 patients x 25 loci, 2 plasma samples each (TF 0 and TF 0.01 for P1-P3; TF 0 for the rest), 6
    controls; every sample is sequenced at every patient's loci; tumor fragments are shorter."""
    rng = np.random.default_rng(seed)
    patients = [f"P{i}" for i in range(1, 7)]
    loci = pd.DataFrame(
        {
            "patient_id": np.repeat(patients, 25),
            "chrom": "chr1",
            "pos": 1000 + 1000 * np.arange(150),
            "ref": "C",
            "alt": "A",
            "context": rng.choice(["ACA", "TCT", "GCA", "CCG"], 150),
            "weight": 1.0,
        }
    )
    samples, counts, lengths = [], [], []
    specs = [
        (f"{p}_{k}", p, "plasma", tf) for p in patients for k, tf in enumerate([0.0, 0.01 if p < "P4" else 0])
    ]
    specs += [(f"C{i}", "", "control", 0.0) for i in range(6)]
    for sample_id, patient, kind, tf in specs:
        n = rng.poisson(1500, 150)
        own = (loci["patient_id"] == patient).to_numpy()
        tumor = rng.binomial(n, tf / 2 * own)
        errors = rng.binomial(n - tumor, 1e-4)
        alt_text = [
            ",".join(
                map(str, np.concatenate([draw_lengths(TUMOR_PMF, t, rng), draw_lengths(NORMAL_PMF, x, rng)]))
            )
            for t, x in zip(tumor, errors, strict=True)
        ]
        frame = loci[["chrom", "pos", "ref", "alt", "context"]].assign(
            sample_id=sample_id, panel_patients=loci["patient_id"], ref_molecules=n - tumor - errors,
            alt_molecules=tumor + errors, alt_lengths=alt_text,
        )  # fmt: skip
        for allele in ("alt", "ref"):
            f1r2 = rng.binomial(frame[f"{allele}_molecules"], 0.5)
            frame[f"{allele}_f1r2"], frame[f"{allele}_f2r1"] = f1r2, frame[f"{allele}_molecules"] - f1r2
        counts.append(frame)
        ref_hist = np.bincount(draw_lengths(NORMAL_PMF, int(frame["ref_molecules"].sum()), rng))
        at = np.flatnonzero(ref_hist)
        lengths.append(
            pd.DataFrame({"sample_id": sample_id, "allele": "ref", "length": at, "molecules": ref_hist[at]})
        )
        samples.append({"sample_id": sample_id, "patient_id": patient, "sample_type": kind,
                        "collection_date": "2025-01-01", "batch": "b1"})  # fmt: skip
    return (
        pd.concat(counts, ignore_index=True),
        pd.DataFrame(samples),
        loci,
        pd.concat(lengths, ignore_index=True),
    )


@pytest.fixture(scope="module")
def length_calls():
    counts, samples, panel, lengths = length_cohort()
    model = build_background(counts, samples)
    settings = CallSettings(null_draws=2000, lod_draws=400, fragment_lengths=True)
    return call_cohort(counts, samples, panel, model.locus_rates, model.excluded, settings, lengths)


def test_calls_with_lengths_detect_tumor_and_spare_tumor_free_samples(length_calls):
    status = dict(zip(length_calls.calls["sample_id"], length_calls.calls["mrd_status"], strict=True))
    assert [status[f"P{i}_1"] for i in (1, 2, 3)] == ["positive"] * 3
    assert sum(status[f"P{i}_0"] == "positive" for i in range(1, 7)) == 0
    tf = length_calls.calls.set_index("sample_id").loc[["P1_1", "P2_1", "P3_1"]]
    assert ((tf["tf_ci_low"] <= 0.01) & (tf["tf_ci_high"] >= 0.01)).all()


def test_the_learned_length_model_is_written_and_favours_short_fragments(length_calls):
    model = length_calls.length_model.set_index("length")
    assert model["tumor_molecules"].iloc[0] > 100
    assert model.loc[135, "ratio"] > 1.2 > 1 > model.loc[170, "ratio"]


def test_lengths_on_without_the_histograms_is_a_clear_error():
    counts, samples, panel, _ = length_cohort()
    model = build_background(counts, samples)
    with pytest.raises(ValueError, match="fragment-length histograms"):
        call_cohort(
            counts, samples, panel, model.locus_rates, model.excluded, CallSettings(fragment_lengths=True)
        )


def test_count_tables_without_lengths_are_called_on_counts_not_dropped(caplog):
    """Mutant molecules with no recorded length (count tables from an older version) must not vanish."""
    counts, samples, panel, lengths = length_cohort()
    model = build_background(counts, samples)
    without = counts.assign(alt_lengths="")
    settings = CallSettings(null_draws=2000, lod_draws=400)
    weighted = call_cohort(without, samples, panel, model.locus_rates, model.excluded, settings, lengths)
    counts_only = call_cohort(
        without, samples, panel, model.locus_rates, model.excluded, replace(settings, fragment_lengths=False)
    )
    columns = ["sample_id", "mrd_status", "tumor_fraction", "p_value"]
    pd.testing.assert_frame_equal(weighted.calls[columns], counts_only.calls[columns])
    assert not weighted.calls["length_weighted"].any()
    assert "called on counts only" in caplog.text


def test_calls_say_whether_lengths_weighed_in(length_calls):
    assert length_calls.calls["length_weighted"].all()
