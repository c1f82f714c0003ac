"""Detection benchmark (issue #4): a dilution series through the real background model and MRD caller.

Count-level simulation (no BAMs; our own binomial draws, not `simulate.expected_counts`, which needs full read
simulation and would take hours at clinical depth). Counting itself is benchmarked and tested elsewhere
(tests/test_counting_truth.py); this script measures what happens after counting.

The simulated cohort (one cohort capture covering every patient's loci, INVAR-style, so that other patients'
plasma is background at a patient's loci):

- `--replicates` patients, each with a panel of tumor SNVs drawn from `simulate.DEFAULT_SPECTRUM` (C>T half at
  CpG), both strands, random flanks; every locus has a fixed capture efficiency (log-normal, sd 0.3);
- per-molecule error rates by class: flat polymerase errors (transitions 1e-5, transversions 5e-6), C>T at CpG
  +3e-4, 8-oxoG C>A/G>T +1e-4, 85% of it in one read orientation (G>T in F1R2 molecules of a G reference, C>A in
  F2R1 ones of a C reference: the same strand); times a per-locus factor (log-normal, sd 0.5: loci of one
  context differ) and a per-sample factor (log-normal, sd 0.25: library-to-library variation). 2% of loci are
  noisy artifacts (+3e-3);
- scenario `oxog` (`--depth oxog`): clinical depth with an oxidised library prep, 8-oxoG +1e-3 with 97% in one
  orientation, times a per-library damage factor (log-normal, sd 0.7); its calls are also made blind to read
  orientations (the background's locus rates without `rate_f1r2` / `rate_f2r1`), and a table compares the two;
- scenario `bespoke` (`--depth bespoke`): clinical depth, but each patient's plasma and normal are captured at
  its own panel alone (Signatera-, RaDaR-like), so no other patient's plasma is background there; 10 healthy
  controls by default, captured at every panel;
- flanks: each plasma sample also has its flank table (`flanks` contract, as counting writes it): 2 x 23
  positions around each of its own panel loci (`counting.flank_window` 25, `flank_gap` 2), random reference
  trinucleotides fixed per patient, one row per covered position (drawn as rows per ALT base); each position
  at its locus's depth times the sample's depth factor, ALT molecules of each base at the same class rates
  (per-position factor, noisy artifacts) times the same per-sample noise factor and library 8-oxoG damage
  (with its orientation split) as the sample's panel loci, no tumor, non-tumor ALT lengths. The calls read
  them as the workflow's do: each sample's own null, and its own context x orientation factors from the
  background's context rates;
- 15% of patients carry CHIP (VAF 0.3% in blood-derived molecules) at one of their own panel loci, visible in
  their plasma and their matched white-blood-cell normal (5,000 molecules per locus at capture efficiency 1,
  median ~4,300: a buffy coat read with the plasma's capture panel, as INVAR's are; a germline exome at
  100-200x would hold a 0.3% clone's molecules less than half the time);
- depth per sample: Poisson(molecules x capture efficiency x sample depth factor (log-normal, sd 0.35));
- per patient: one plasma sample at each TF of the series and `--null-per-patient` TF-0 plasma samples, one
  matched normal; plus `--controls` healthy-control plasmas. A tumor-derived molecule (probability TF) carries
  the ALT with probability w/2 (w = 1, clonal heterozygous); tumor molecules are shorter (simulate's tumor
  fragment-length model), which the `alt_lengths` column carries; each sample's REF molecules get non-tumor
  lengths (its `fraglen.tsv` histogram).

The calls come from `mrdtrack.calling.build_background` and `mrdtrack.calling.call_cohort` with the default
settings (fragment lengths weigh in), as the workflow runs them; a second table compares them with
`calling.fragment_lengths: false` on the same data. Compared with:

- oracle: the same likelihood-ratio statistic with the TRUE per-locus error rates (CHIP and noisy loci
  included, sample factor unknown), threshold calibrated at the same 1% on its own TF-0 draws
  (`--oracle-null` fresh TF-0 tables per patient);
- ">= 2 loci": positive when at least 2 panel loci show an ALT molecule (a common rule of thumb), and ">= k
  loci" with k calibrated to 1% on the healthy controls scored at every patient panel;
- pooled binomial: all ALT over all molecules of the panel against the pooled background rate, p-value cut
  calibrated to 1% on the healthy controls scored at every patient panel;
- "oracle + lengths": the oracle with a per-molecule fragment-length likelihood (each ALT molecule weighs
  e_i + q_i r(length), r = tumor/normal length likelihood ratio from the simulator's TRUE length models),
  calibrated likewise: the most that length weighting can add. mrdtrack has to learn both length models from
  the data (fraglen.py). (The extra length draws shift the oracle's null draws, so its counts-only column can
  differ slightly from a run with `--no-fraglen`.)

Table columns: sensitivity = share called positive (at TF 0: the false-positive rate, measured on TF-0 plasma
of the patients at their own panels, scores that never enter the calibration); ratio = mrdtrack / oracle sensitivity;
median |log10(TF_est / TF)| (inf when most estimates are 0); 95% CI coverage = share with tf_ci_low <= TF <=
tf_ci_high; baselines; share `indeterminate` (too shallow to rule MRD out).

    python benchmarks/detection.py [--depth clinical|demo|oxog|bespoke|both] [--replicates 20] [--seed 1] [--jobs 2]
        [--null-per-patient 3] [--controls 20] [--oracle-null 200] [--no-fraglen] [--no-sample-background]
        [--no-flanks]

Deterministic for a given seed. Both depths take about 6 minutes on 2 cores (the clinical cohort: 220
samples x 800 loci, 3,800 null scores with 10,000 Monte Carlo draws each, called twice).

`--wgs` runs genome-wide signatures instead (`--depth wgs-2000` or `wgs-20000` for one of them): 2,000 or 20,000
loci per patient read at 30x-like plasma depth (30 molecules per locus at capture efficiency 1: 20-40 for most
samples), tumor fractions 1e-6 to 1e-3, `--samples-per-tf` plasma samples per patient and tumor fraction. Every
sample holds every patient's loci, as a whole genome does, so the cohort is kept small (WGS_OPTIONS).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mrdtrack import simulation as simulate
from mrdtrack.calling import BackgroundSettings, CallResult, CallSettings, build_background, call_cohort
from mrdtrack.calling.inference import lr_statistic_rows
from mrdtrack.calling.locus_classes import pyrimidine_class, reverse_complement
from mrdtrack.counting import CountSettings
from mrdtrack.flank_layout import BASES, FLANK_ROW_COLUMNS, compact_flanks

TFS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2)
WGS_TFS = (0.0, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
COMPLEMENT = str.maketrans("ACGT", "TGCA")
FPR = 0.01


@dataclass(frozen=True)
class Scenario:
    name: str
    n_loci: int  # panel loci per patient
    plasma_molecules: float  # mean informative molecules per locus (capture efficiency 1)
    control_molecules: float
    normal_molecules: float
    oxog_rate: float = 1e-4  # 8-oxoG C>A/G>T errors per molecule (before the per-locus factor)
    oxog_share: float = 0.85  # ... of which this share in the damaged read orientation
    oxog_library_sd: float = 0.0  # sd of the log per-library damage factor (mean 1)
    compare_orientation: bool = False  # also call blind to read orientations (locus rates without them)
    # Each patient's samples captured at their own panel alone (healthy controls at every panel).
    bespoke: bool = False


SCENARIOS = {
    "clinical": Scenario("clinical", 40, 3000.0, 3000.0, 5000.0),
    # The bundled demo (test_data/generate.py): ~20 loci, ~44 molecules per locus in plasma.
    "demo": Scenario("demo", 20, 44.0, 20.0, 50.0),
    # Clinical depth with an oxidised library prep: 8-oxoG 10x the clinical scenario's, nearly all in one read
    # orientation, and 2x more or less from one library to the next (log-normal sd 0.7).
    "oxog": Scenario("oxog", 40, 3000.0, 3000.0, 5000.0, 1e-3, 0.97, 0.7, compare_orientation=True),
    # Bespoke captures (Signatera-, RaDaR-like): a patient's plasma and normal hold its own panel's loci only, so
    # no other patient's plasma is background there; healthy controls are captured at every panel.
    "bespoke": Scenario("bespoke", 40, 3000.0, 3000.0, 5000.0, bespoke=True),
    # Genome-wide signatures in plasma WGS at about 30x (MRDetect-like); the normal is the same depth.
    "wgs-2000": Scenario("wgs-2000", 2000, 30.0, 30.0, 30.0),
    "wgs-20000": Scenario("wgs-20000", 20000, 30.0, 30.0, 30.0),
}


@dataclass(frozen=True)
class Options:
    replicates: int = 20
    null_per_patient: int = 3
    controls: int = 20
    oracle_null: int = 200
    seed: int = 1
    fraglen: bool = True
    sample_background: bool = True
    max_null_panels: int | None = CallSettings.max_null_panels
    vaf_spread: float = (
        0.0  # sd of log per-locus VAF weight (mean 1), which the panel does not give the caller
    )
    tfs: tuple[float, ...] = TFS
    samples_per_tf: int = 1  # plasma samples per patient at each tumor fraction
    flanks: bool = (
        True  # the calls read the samples' flank tables (False: the cohort threshold, as before them)
    )

    def call_settings(self, **changes: object) -> CallSettings:
        return CallSettings(
            sample_background=self.sample_background, max_null_panels=self.max_null_panels, **changes
        )


# ----------------------------------------------------------------------------------------------------------
# Truth: panels, error rates, samples
# ----------------------------------------------------------------------------------------------------------
def draw_panels(rng: np.random.Generator, n_patients: int, n_loci: int) -> pd.DataFrame:
    classes = list(simulate.DEFAULT_SPECTRUM)
    weights = np.array(list(simulate.DEFAULT_SPECTRUM.values()))
    rows = []
    for p in range(n_patients):
        for j in range(n_loci):
            sub = classes[rng.choice(len(classes), p=weights / weights.sum())]
            pyr_ref, pyr_alt = sub.split(">")
            cpg = sub == "C>T" and rng.random() < 0.5
            left = "ACGT"[rng.integers(4)]
            right = "G" if cpg else "ACGT"[rng.integers(4)]
            context, ref, alt = left + pyr_ref + right, pyr_ref, pyr_alt
            if rng.random() < 0.5:  # purine reference
                context, ref, alt = (
                    reverse_complement(context),
                    ref.translate(COMPLEMENT),
                    alt.translate(COMPLEMENT),
                )
            chrom = f"chr{1 + p % 22}"
            pos = 1_000_000 + 10_000 * (p // 22 * n_loci + j) + int(rng.integers(1000))
            rows.append((f"P{p + 1:03d}", chrom, pos, ref, alt, context, 1.0, sub, left + pyr_ref + right))
    columns = ["patient_id", "chrom", "pos", "ref", "alt", "context", "weight", "substitution", "pyr_context"]
    return pd.DataFrame(rows, columns=columns)


def true_error_rates(rng: np.random.Generator, panel: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Per locus: mean ALT rate per molecule over samples, the 8-oxoG part of it, and the share of 8-oxoG
    errors in F1R2 molecules (the count tables' orientation, on the reference strand)."""
    rates = class_error_rates(
        rng,
        panel["substitution"].to_numpy(),
        panel["pyr_context"].to_numpy(),
        panel["ref"].to_numpy(),
        scenario,
    )
    efficiency = np.exp(0.3 * rng.standard_normal(len(panel)) - 0.045)
    return panel.assign(**rates, efficiency=efficiency)


def class_error_rates(
    rng: np.random.Generator, sub: np.ndarray, ctx: np.ndarray, ref: np.ndarray, scenario: Scenario
) -> dict[str, np.ndarray]:
    """The error model of one set of positions (panel loci or flank positions alike): the class rate times a
    per-position factor, 2% noisy artifacts; `sub` and `ctx` on the pyrimidine strand, `ref` as read."""
    transition = np.isin(sub, ["C>T", "T>C"])
    rate = np.where(transition, 1e-5, 5e-6)
    cpg = (sub == "C>T") & np.array([c[2] == "G" for c in ctx], dtype=bool)
    rate = rate + np.where(cpg, 3e-4, 0.0)
    damage = np.where(sub == "C>A", scenario.oxog_rate, 0.0)
    rate = rate + damage
    sd = 0.5
    locus_factor = np.exp(sd * rng.standard_normal(len(sub)) - sd**2 / 2)
    rate, damage = rate * locus_factor, damage * locus_factor
    noisy = rng.random(len(sub)) < 0.02
    rate = rate + np.where(noisy, 3e-3, 0.0)
    # 8-oxoG turns a G into T on one strand: G>T in the F1R2 molecules of a G reference is C>A in the F2R1
    # molecules of a C one. Other errors split evenly.
    damage_f1r2 = np.where(ref == "G", scenario.oxog_share, 1 - scenario.oxog_share)
    return {"true_rate": rate, "damage_rate": damage, "damage_f1r2": damage_f1r2, "noisy": noisy}


def true_weights(rng: np.random.Generator, panel: pd.DataFrame, spread: float) -> np.ndarray:
    """The tumor's real per-locus weight: the panel's, times a log-normal factor (subclonal variants, copy
    number) that the panel VCF does not tell the caller, at most 2 (a tumor copy shows the ALT at most once)
    and of mean 1 after that cap (`simulate.spread_weights`)."""
    return simulate.spread_weights(rng, panel["weight"].to_numpy(dtype=float), spread)


@dataclass(frozen=True)
class SampleFactors:
    """One library's draws, shared by its panel loci and its flanks: depth and noise over the cohort's mean
    (log-normal, mean 1) and 8-oxoG damage over the cohort's mean."""

    depth: float
    noise: float
    damage: float


@dataclass
class SampleSpec:
    sample_id: str
    patient_id: str  # "" for controls
    sample_type: str
    tf: float
    molecules: float


def sample_specs(patients: list[str], scenario: Scenario, options: Options) -> list[SampleSpec]:
    specs = []
    for p in patients:
        for k, tf in enumerate(t for t in options.tfs if t > 0):
            for r in range(options.samples_per_tf):
                name = f"{p}_TF{k + 1}" if options.samples_per_tf == 1 else f"{p}_TF{k + 1}_{r + 1}"
                specs.append(SampleSpec(name, p, "plasma", tf, scenario.plasma_molecules))
        for k in range(options.null_per_patient):
            specs.append(SampleSpec(f"{p}_TF0_{k + 1}", p, "plasma", 0.0, scenario.plasma_molecules))
        specs.append(SampleSpec(f"{p}_N", p, "normal", 0.0, scenario.normal_molecules))
    for c in range(options.controls):
        specs.append(SampleSpec(f"C{c + 1:03d}", "", "control", 0.0, scenario.control_molecules))
    return specs


def draw_counts(
    rng: np.random.Generator,
    loci: pd.DataFrame,
    spec: SampleSpec,
    chip: dict[str, int],
    own: np.ndarray,
    damage_factor: float = 1.0,
) -> tuple[dict[str, np.ndarray], SampleFactors]:
    """One sample's molecule counts at every cohort locus (`own`: the loci of the sample's own panel;
    `damage_factor`: its library's 8-oxoG over the cohort's mean), and the sample's factors drawn for them (its
    flanks share them)."""
    depth_factor = np.exp(0.35 * rng.standard_normal() - 0.35**2 / 2)
    noise_factor = np.exp(0.25 * rng.standard_normal() - 0.25**2 / 2)
    n = rng.poisson(spec.molecules * loci["efficiency"].to_numpy() * depth_factor)
    tf = spec.tf if spec.sample_type == "plasma" else 0.0
    tumor = rng.binomial(n, tf * own)
    tumor_alt = rng.binomial(tumor, loci["true_weight"].to_numpy() / 2 * own)
    non_tumor = n - tumor
    chip_vaf = np.zeros(len(loci))
    if spec.patient_id in chip:
        chip_vaf[chip[spec.patient_id]] = 0.003
    chip_alt = rng.binomial(non_tumor, chip_vaf)
    damage = loci["damage_rate"].to_numpy() * damage_factor
    rate = loci["true_rate"].to_numpy() + loci["damage_rate"].to_numpy() * (damage_factor - 1)  # exact at 1
    errors = rng.binomial(non_tumor - chip_alt, np.minimum(rate * noise_factor, 1))
    alt = tumor_alt + chip_alt + errors
    damage_share = np.divide(damage, rate, out=np.zeros(len(rate)), where=rate > 0)
    error_f1r2 = rng.binomial(errors, damage_share * loci["damage_f1r2"].to_numpy() + (1 - damage_share) / 2)
    bio_f1r2 = rng.binomial(tumor_alt + chip_alt, 0.5)
    alt_f1r2 = error_f1r2 + bio_f1r2
    ref = n - alt
    ref_f1r2 = rng.binomial(ref, 0.5)
    return {
        "ref_molecules": ref, "alt_molecules": alt, "alt_f1r2": alt_f1r2, "alt_f2r1": alt - alt_f1r2,
        "ref_f1r2": ref_f1r2, "ref_f2r1": ref - ref_f1r2, "tumor_alt": tumor_alt,
    }, SampleFactors(depth_factor, noise_factor, damage_factor)  # fmt: skip


def alt_lengths(rng: np.random.Generator, tumor_alt: np.ndarray, alt: np.ndarray) -> list[str]:
    settings = simulate.SimulationSettings()
    normal = simulate.fragment_length_pmf(settings.normal_fragment_mode, settings)
    tumor = simulate.fragment_length_pmf(settings.tumor_fragment_mode, settings, True)
    out = []
    for t, a in zip(tumor_alt.tolist(), alt.tolist(), strict=True):
        if a == 0:
            out.append("")
            continue
        lengths = np.concatenate(
            [rng.choice(len(tumor), t, p=tumor), rng.choice(len(normal), a - t, p=normal)]
        )
        out.append(",".join(map(str, lengths.tolist())))
    return out


# ----------------------------------------------------------------------------------------------------------
# Flanks: each sample's own background, as counting tallies it
# ----------------------------------------------------------------------------------------------------------


def flank_offsets(settings: CountSettings | None = None) -> np.ndarray:
    """Flank positions relative to a panel locus: within `flank_window` bp, beyond `flank_gap` (2 x 23 at the
    defaults), as counting picks them."""
    settings = settings or CountSettings()
    near = np.arange(settings.flank_gap + 1, settings.flank_window + 1)
    return np.concatenate([-near[::-1], near])


def flank_sites(rng: np.random.Generator, own: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """The flank positions of one patient's panel loci (`own`, with `efficiency`) and their truth: one row per
    position and ALT base, random reference trinucleotides (uniform bases, as the panel's flanking bases are),
    each row's class error rates from `class_error_rates` (the panel loci's model, per-position factor and noisy
    artifacts included), and the capture efficiency of the locus the position sits next to. A property of the
    patient's genome: every sample of the patient shares them."""
    offsets = flank_offsets()
    locus = np.repeat(np.arange(len(own)), len(offsets))
    pos = own["pos"].to_numpy()[locus] + np.tile(offsets, len(own))
    trinucleotide = rng.integers(4, size=(len(locus), 3))
    context = np.array(["".join(BASES[b] for b in row) for row in trinucleotide.tolist()], dtype=object)
    ref = np.array([c[1] for c in context], dtype=object)
    rows = pd.DataFrame({
        "chrom": np.repeat(own["chrom"].to_numpy(), 3 * len(offsets)), "pos": np.repeat(pos, 3),
        "ref": np.repeat(ref, 3), "alt": [b for r in ref for b in BASES if b != r], "context": np.repeat(context, 3),
        "position": np.repeat(np.arange(len(locus)), 3), "efficiency": own["efficiency"].to_numpy()[np.repeat(locus, 3)],
    })  # fmt: skip
    pyr = [
        pyrimidine_class(r, a, c) for r, a, c in zip(rows["ref"], rows["alt"], rows["context"], strict=True)
    ]
    sub = np.array([p[0] for p in pyr], dtype=object)
    ctx = np.array([p[1] for p in pyr], dtype=object)
    rates = class_error_rates(rng, sub, ctx, rows["ref"].to_numpy(), scenario)
    return rows.assign(substitution=sub, pyr_context=ctx, **rates)


def draw_flanks(
    rng: np.random.Generator, sites: pd.DataFrame, spec: SampleSpec, factors: SampleFactors
) -> pd.DataFrame:
    """One sample's flank table (`flanks` contract, rows and order as counting writes them; drawn as one row per
    position and ALT base, `flank_rows`' layout, and folded by `compact_flanks`): each position's
    molecules at its locus's depth times the sample's depth factor, error ALT molecules of each base at the
    position's rate times the sample's noise factor and its library's 8-oxoG damage (split by read orientation
    as at the panel loci), no tumor, non-tumor ALT fragment lengths; uncovered positions have no rows."""
    first = sites.groupby("position", sort=False).head(1)
    n_position = rng.poisson(spec.molecules * first["efficiency"].to_numpy() * factors.depth)
    n = np.repeat(n_position, 3)
    damage = sites["damage_rate"].to_numpy() * factors.damage
    rate = sites["true_rate"].to_numpy() + sites["damage_rate"].to_numpy() * (factors.damage - 1)
    alt = rng.binomial(n, np.minimum(rate * factors.noise, 1))
    per_position = alt.reshape(-1, 3).sum(axis=1)
    # Three binomials of one position's molecules can, rarely, exceed them: split the position's instead.
    excess = np.flatnonzero(per_position > n_position)
    for p in excess.tolist():
        alt[3 * p : 3 * p + 3] = rng.multinomial(n_position[p], alt[3 * p : 3 * p + 3] / per_position[p])
    alt_total = np.repeat(alt.reshape(-1, 3).sum(axis=1), 3)
    ref = n - alt_total
    damage_share = np.divide(damage, rate, out=np.zeros(len(rate)), where=rate > 0)
    alt_f1r2 = rng.binomial(alt, damage_share * sites["damage_f1r2"].to_numpy() + (1 - damage_share) / 2)
    ref_f1r2_position = rng.binomial(ref[::3], 0.5)
    ref_f1r2 = np.repeat(ref_f1r2_position, 3)
    table = pd.DataFrame({
        "chrom": sites["chrom"].to_numpy(), "pos": sites["pos"].to_numpy(dtype=np.int64),
        "ref": sites["ref"].to_numpy(), "alt": sites["alt"].to_numpy(), "context": sites["context"].to_numpy(),
        "ref_molecules": ref, "alt_molecules": alt, "other_molecules": alt_total - alt,
        "discordant_molecules": np.zeros(len(n), dtype=np.int64), "alt_f1r2": alt_f1r2, "alt_f2r1": alt - alt_f1r2,
        "ref_f1r2": ref_f1r2, "ref_f2r1": ref - ref_f1r2,
        "alt_lengths": sorted_lengths(rng, alt),
    }, columns=FLANK_ROW_COLUMNS)  # fmt: skip
    return compact_flanks(table[n > 0].reset_index(drop=True))


def sorted_lengths(rng: np.random.Generator, alt: np.ndarray) -> list[str]:
    """Comma-joined, sorted non-tumor fragment lengths of each row's ALT molecules, as counting joins them."""
    lengths = alt_lengths(rng, np.zeros_like(alt), alt)
    return [",".join(sorted(t.split(","), key=int)) if t else "" for t in lengths]


@dataclass
class Cohort:
    panel: pd.DataFrame  # per patient locus, with the truth
    loci: pd.DataFrame  # unique cohort loci (= panel rows: no shared loci)
    samples: pd.DataFrame
    counts: pd.DataFrame
    chip: dict[str, int]
    specs: list[SampleSpec]
    fragment_lengths: pd.DataFrame | None  # REF length histograms (sample_id, allele, length, molecules)
    flanks: dict[str, pd.DataFrame]  # each plasma sample's flank table (`flanks` contract), by sample id


def simulate_cohort(scenario: Scenario, options: Options) -> Cohort:
    rng = np.random.default_rng([options.seed, 7])
    patients = [f"P{p + 1:03d}" for p in range(options.replicates)]
    panel = true_error_rates(rng, draw_panels(rng, len(patients), scenario.n_loci), scenario)
    panel["true_weight"] = true_weights(np.random.default_rng([options.seed, 13]), panel, options.vaf_spread)
    loci = panel.reset_index(drop=True)
    chip = {}
    for p in patients:
        if rng.random() < 0.15:
            own = np.flatnonzero(loci["patient_id"] == p)
            chip[p] = int(rng.choice(own))
    specs = sample_specs(patients, scenario, options)
    sites = {
        p: flank_sites(np.random.default_rng([options.seed, 23, zlib_key(p)]), loci[loci["patient_id"] == p], scenario)
        for p in patients
    }  # fmt: skip
    frames, histograms, flanks = [], [], {}
    for spec in specs:
        own = (loci["patient_id"] == spec.patient_id).to_numpy().astype(float)
        sample_rng = np.random.default_rng([options.seed, 11, zlib_key(spec.sample_id)])
        values, factors = draw_counts(
            sample_rng, loci, spec, chip, own, library_damage(scenario, options, spec.sample_id)
        )
        # Counting tallies flanks for every sample of a patient; the calls read the plasma samples'.
        if spec.sample_type == "plasma":
            flank_rng = np.random.default_rng([options.seed, 19, zlib_key(spec.sample_id)])
            flanks[spec.sample_id] = draw_flanks(flank_rng, sites[spec.patient_id], spec, factors)
        frame = loci[["chrom", "pos", "ref", "alt", "context"]].copy()
        frame.insert(0, "sample_id", spec.sample_id)
        frame["panel_patients"] = loci["patient_id"].to_numpy()
        for key, value in values.items():
            frame[key] = value
        frame["alt_lengths"] = (
            alt_lengths(sample_rng, values["tumor_alt"], values["alt_molecules"]) if options.fraglen else ""
        )
        if scenario.bespoke and spec.sample_type != "control":
            frame = frame[own > 0]
        if options.fraglen:
            histograms.append(
                ref_length_histogram(sample_rng, spec.sample_id, int(frame["ref_molecules"].sum()))
            )
        frames.append(frame)
    counts = pd.concat(frames, ignore_index=True)
    samples = pd.DataFrame(
        {
            "sample_id": [s.sample_id for s in specs],
            "patient_id": [s.patient_id for s in specs],
            "sample_type": [s.sample_type for s in specs],
            "collection_date": "2025-01-01",
            "batch": "b1",
        }
    )
    fragment_lengths = pd.concat(histograms, ignore_index=True) if histograms else None
    return Cohort(panel, loci, samples, counts, chip, specs, fragment_lengths, flanks)


def library_damage(scenario: Scenario, options: Options, sample_id: str) -> float:
    """The library's 8-oxoG over the cohort's mean (log-normal, mean 1; 1 without spread), drawn apart so that
    scenarios without it draw exactly what they did."""
    sd = scenario.oxog_library_sd
    if sd <= 0:
        return 1.0
    rng = np.random.default_rng([options.seed, 17, zlib_key(sample_id)])
    return float(np.exp(sd * rng.standard_normal() - sd**2 / 2))


def ref_length_histogram(rng: np.random.Generator, sample_id: str, molecules: int) -> pd.DataFrame:
    """The sample's REF molecules per fragment length, as the counting step writes them (non-tumor lengths:
    the tumor's share of REF molecules is negligible at MRD levels)."""
    settings = simulate.SimulationSettings()
    normal = simulate.fragment_length_pmf(settings.normal_fragment_mode, settings)
    counts = rng.multinomial(molecules, normal)
    length = np.flatnonzero(counts)
    return pd.DataFrame(
        {"sample_id": sample_id, "allele": "ref", "length": length, "molecules": counts[length]}
    )


def zlib_key(text: str) -> int:
    return zlib.crc32(text.encode())


# ----------------------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------------------
def oracle_rates(cohort: Cohort, patient: str) -> tuple[np.ndarray, np.ndarray]:
    """(locus indices, true non-tumor ALT rate) of the patient's panel: errors + CHIP."""
    own = np.flatnonzero(cohort.loci["patient_id"] == patient)
    e = cohort.loci["true_rate"].to_numpy()[own].copy()
    if patient in cohort.chip:
        e[own == cohort.chip[patient]] += 0.003 * (1 - e[own == cohort.chip[patient]])
    return own, e


LOG10_F_GRID = np.linspace(-7, 0, 281)


def length_ratio() -> tuple[np.ndarray, np.ndarray]:
    """(REF-length pmf, tumor/normal length likelihood ratio) per fragment length: the simulator's models."""
    settings = simulate.SimulationSettings()
    normal = simulate.fragment_length_pmf(settings.normal_fragment_mode, settings)
    tumor = simulate.fragment_length_pmf(settings.tumor_fragment_mode, settings, True)
    return normal, np.divide(tumor, normal, out=np.ones_like(tumor), where=normal > 0)


def length_lr(a: np.ndarray, n: np.ndarray, e: np.ndarray, locus: np.ndarray, r: np.ndarray) -> float:
    """INVAR-style statistic: each ALT molecule j at locus i has likelihood e_i + q_i r_j (r = its length's
    tumor/normal likelihood ratio, q_i = (1 - e_i) f / 2), each REF molecule 1 - e_i - q_i; 2 (max - f=0) on a
    log10 f grid. With every r = 1 this is the counts-only statistic."""
    f = np.concatenate([[0.0], 10**LOG10_F_GRID])
    q = (1 - e)[None, :] * f[:, None] / 2
    ll = ((n - a)[None, :] * np.log1p(-(e[None, :] + q))).sum(axis=1)
    ll = ll + np.log(e[locus][None, :] + q[:, locus] * r[None, :]).sum(axis=1)
    return float(max(0.0, 2 * (ll.max() - ll[0])))


def oracle_threshold(cohort: Cohort, scenario: Scenario, options: Options) -> tuple[float, float]:
    """99th percentiles of the oracle statistics (counts; counts + lengths) over fresh TF-0 plasma tables."""
    rng = np.random.default_rng([options.seed, 13])
    normal, ratio = length_ratio()
    stats_, length_stats = [], []
    for patient in sorted(cohort.panel["patient_id"].unique()):
        own, e = oracle_rates(cohort, patient)
        sub = cohort.loci.iloc[own]
        mask = np.ones(len(sub))
        for k in range(options.oracle_null):
            spec = SampleSpec(f"null{k}", patient, "plasma", 0.0, scenario.plasma_molecules)
            values, _ = draw_counts(rng, sub, spec, {patient: int(np.flatnonzero(own == cohort.chip[patient])[0])}
                                 if patient in cohort.chip else {}, mask,
                                 library_damage(scenario, options, f"{patient}_null{k}"))  # fmt: skip
            a, n = values["alt_molecules"], values["alt_molecules"] + values["ref_molecules"]
            stats_.append(float(lr_statistic_rows(a[None, :], n, e, np.ones(len(n)))[0]))
            if options.fraglen:
                r = ratio[rng.choice(len(normal), int(a.sum()), p=normal)]
                length_stats.append(length_lr(a, n, e, np.repeat(np.arange(len(a)), a), r))
    length_cut = float(np.quantile(length_stats, 1 - FPR, method="higher")) if length_stats else np.inf
    return float(np.quantile(stats_, 1 - FPR, method="higher")), length_cut


def own_panel_lengths(cohort: Cohort, sample_id: str, patient: str) -> tuple[np.ndarray, np.ndarray]:
    """(locus index within the panel, fragment length) of every ALT molecule of the sample at its panel."""
    rows = cohort.counts[
        (cohort.counts["sample_id"] == sample_id) & (cohort.counts["panel_patients"] == patient)
    ]
    locus, length = [], []
    for i, text in enumerate(rows["alt_lengths"].tolist()):
        values = [int(v) for v in text.split(",")] if text else []
        locus += [i] * len(values)
        length += values
    return np.asarray(locus, dtype=np.int64), np.asarray(length, dtype=np.int64)


def own_panel_table(cohort: Cohort, sample_id: str, patient: str) -> tuple[np.ndarray, np.ndarray]:
    rows = cohort.counts[
        (cohort.counts["sample_id"] == sample_id) & (cohort.counts["panel_patients"] == patient)
    ]
    a = rows["alt_molecules"].to_numpy()
    return a, a + rows["ref_molecules"].to_numpy()


ORIENTED_RATES = ["rate_f1r2", "rate_f2r1"]


def call_simulated(
    cohort: Cohort,
    background,
    settings: CallSettings,
    workers: int = 1,
    orientation: bool = True,
    flanks: bool = True,
) -> CallResult:
    """The workflow's calling step on a simulated cohort (`orientation` False: blind to read orientations, as
    with a background table without its orientation columns)."""
    panel = cohort.panel[["patient_id", "chrom", "pos", "ref", "alt", "context", "weight"]]
    rates = background.locus_rates if orientation else background.locus_rates.drop(columns=ORIENTED_RATES)
    # As the workflow's calibrate and call_sample steps read them: each plasma sample's flank table (its own
    # null), and the background's context rates (the reference of its own factors; not when blind).
    return call_cohort(
        cohort.counts,
        cohort.samples,
        panel,
        rates,
        background.excluded,
        settings,
        cohort.fragment_lengths,
        workers=workers,
        flanks=cohort.flanks if flanks else None,
        context_rates=background.context_rates if orientation and flanks else None,
    )


def run_scenario(scenario: Scenario, options: Options) -> dict:
    started = time.time()
    cohort = simulate_cohort(scenario, options)
    background = build_background(cohort.counts, cohort.samples, BackgroundSettings())

    def call(
        fragment_lengths: bool, overdispersion: bool = True, orientation: bool = True
    ) -> tuple[pd.DataFrame, float, float]:
        begun = time.time()
        settings = options.call_settings(fragment_lengths=fragment_lengths, overdispersion=overdispersion)
        result = call_simulated(cohort, background, settings, orientation=orientation, flanks=options.flanks)
        return result.calls.set_index("sample_id"), result.threshold, time.time() - begun

    # The default configuration (fragment lengths weigh in), and counts only for comparison.
    calls, mrd_threshold, elapsed_mrd = call(options.fraglen)
    counts_calls, counts_threshold, elapsed_counts = call(False) if options.fraglen else (None, np.nan, 0.0)
    # Under VAF spread: the binomial interval (no overdispersion term) on the same data.
    binomial_calls = call(options.fraglen, overdispersion=False)[0] if options.vaf_spread > 0 else None
    # With read-orientation damage: the same configuration blind to orientations.
    blind_calls, blind_threshold, _ = (
        call(options.fraglen, orientation=False) if scenario.compare_orientation else (None, np.nan, 0.0)
    )
    # Oracle.
    threshold, length_threshold = oracle_threshold(cohort, scenario, options)
    _, ratio = length_ratio()
    # Baselines: calibration on healthy controls scored at every patient panel.
    pooled = background.locus_rates
    pooled_rate = pooled["alt_molecules"].sum() / pooled["total_molecules"].sum()
    control_scores = []
    for spec in cohort.specs:
        if spec.sample_type != "control":
            continue
        for patient in sorted(cohort.panel["patient_id"].unique()):
            a, n = own_panel_table(cohort, spec.sample_id, patient)
            control_scores.append(((a > 0).sum(), stats.binom.sf(a.sum() - 1, n.sum(), pooled_rate)))
    control_loci = np.array([c[0] for c in control_scores])
    control_p = np.sort([c[1] for c in control_scores])
    k_cal = next(k for k in range(1, 10_000) if np.mean(control_loci >= k) <= FPR)
    p_cut = control_p[int(np.floor(FPR * len(control_p)))] if len(control_p) else FPR
    p_cut = float(np.max(control_p[control_p < p_cut])) if (control_p < p_cut).any() else p_cut / 2
    caught = set(background.excluded.loc[background.excluded["patient_id"] != "", "patient_id"])
    rows = []
    for spec in cohort.specs:
        if spec.sample_type != "plasma":
            continue
        call = calls.loc[spec.sample_id]
        a, n = own_panel_table(cohort, spec.sample_id, spec.patient_id)
        _, e = oracle_rates(cohort, spec.patient_id)
        oracle_stat = float(lr_statistic_rows(a[None, :], n, e, np.ones(len(n)))[0])
        length_positive = False
        if options.fraglen:
            locus, length = own_panel_lengths(cohort, spec.sample_id, spec.patient_id)
            length_positive = length_lr(a, n, e, locus, ratio[length]) > length_threshold
        counts_only = counts_calls.loc[spec.sample_id] if counts_calls is not None else None
        rows.append(
            {
                "counts_positive": counts_only is not None and counts_only["mrd_status"] == "positive",
                "counts_tf_est": counts_only["tumor_fraction"] if counts_only is not None else np.nan,
                "counts_ci_low": counts_only["tf_ci_low"] if counts_only is not None else np.nan,
                "counts_ci_high": counts_only["tf_ci_high"] if counts_only is not None else np.nan,
                "counts_lod95": counts_only["lod95"] if counts_only is not None else np.nan,
                "binomial_ci_low": binomial_calls.loc[spec.sample_id, "tf_ci_low"]
                if binomial_calls is not None
                else np.nan,
                "binomial_ci_high": binomial_calls.loc[spec.sample_id, "tf_ci_high"]
                if binomial_calls is not None
                else np.nan,
                "blind_positive": blind_calls is not None
                and blind_calls.loc[spec.sample_id, "mrd_status"] == "positive",
                "blind_ci_low": blind_calls.loc[spec.sample_id, "tf_ci_low"]
                if blind_calls is not None
                else np.nan,
                "blind_ci_high": blind_calls.loc[spec.sample_id, "tf_ci_high"]
                if blind_calls is not None
                else np.nan,
                "sample_id": spec.sample_id,
                "tf": spec.tf,
                "mrd_positive": call["mrd_status"] == "positive",
                "status": call["mrd_status"],
                "tf_est": call["tumor_fraction"],
                "ci_low": call["tf_ci_low"],
                "ci_high": call["tf_ci_high"],
                "lod95": call["lod95"],
                "oracle_positive": oracle_stat > threshold,
                "oracle_length_positive": length_positive,
                "two_loci": (a > 0).sum() >= 2,
                "k_loci": (a > 0).sum() >= k_cal,
                "pooled": stats.binom.sf(a.sum() - 1, n.sum(), pooled_rate) <= p_cut,
                "molecules": n.sum(),
                "chip_missed": spec.patient_id in cohort.chip and spec.patient_id not in caught,
            }
        )
    table = pd.DataFrame(rows)
    n_null = int(calls["n_null_scores"].iloc[0])
    plasma_calls = calls.loc[table["sample_id"]]
    return {
        "scenario": scenario,
        "table": table,
        "calls": calls,
        "threshold": mrd_threshold,
        "k_cal": k_cal,
        "pooled_rate": pooled_rate,
        "excluded": background.excluded,
        "chip": cohort.chip,
        "loci": cohort.loci,
        "fraglen": options.fraglen,
        "seconds_mrd": elapsed_mrd,
        "seconds_counts": elapsed_counts,
        "counts_threshold": counts_threshold,
        "blind_threshold": blind_threshold,
        "seconds": time.time() - started,
        "options": options,
        "null_scores": n_null,
        "threshold_source": calls["threshold_source"].iloc[0],
        "threshold_sources": plasma_calls["threshold_source"].value_counts().to_dict(),
        "own_null_panels": float(plasma_calls["own_null_panels"].median()),
    }


# ----------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------
def log10_error(est: np.ndarray, tf: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.abs(np.log10(np.asarray(est, dtype=float) / tf))


def summarize(out: dict) -> str:
    t, s = out["table"], out["scenario"]
    lines = [
        f"### {s.name}: {out['table']['molecules'].median():,.0f} median molecules per sample over {s.n_loci} "
        f"loci ({s.plasma_molecules:g} per locus at capture efficiency 1)",
        "",
        "| TF | n | mrdtrack sens. | oracle sens. | ratio | median abs log10 error | 95% CI coverage | "
        ">= 2 loci | >= k loci | pooled binomial | indeterminate |"
        + (" oracle + lengths | ratio to it |" if out["fraglen"] else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        + (" --- | --- |" if out["fraglen"] else ""),
    ]
    for tf in out["options"].tfs:
        g = t[t["tf"] == tf]
        sens, orc = g["mrd_positive"].mean(), g["oracle_positive"].mean()
        ratio = _ratio(sens, orc, tf)
        covered = ((g["ci_low"] <= tf) & (tf <= g["ci_high"])).mean()
        err = f"{np.median(log10_error(g['tf_est'], tf)):.3f}" if tf > 0 else ""
        label = "0 (FPR)" if tf == 0 else f"{tf:g}"
        lines.append(
            f"| {label} | {len(g)} | {sens:.1%} | {orc:.1%} | {ratio} | {err} | "
            f"{covered:.0%} | {g['two_loci'].mean():.1%} | {g['k_loci'].mean():.1%} | {g['pooled'].mean():.1%} | "
            f"{(g['status'] == 'indeterminate').mean():.0%} |"
            + (
                f" {g['oracle_length_positive'].mean():.1%} | {_ratio(sens, g['oracle_length_positive'].mean(), tf)} |"
                if out["fraglen"]
                else ""
            )
        )
    null = t[t["tf"] == 0]
    fp = int(null["mrd_positive"].sum())
    fp_chip = int((null["mrd_positive"] & null["chip_missed"]).sum())
    ci = stats.binomtest(fp, len(null)).proportion_ci(0.95, method="exact")
    lines += [
        "",
        f"FPR at TF 0: {fp}/{len(null)} = {fp / len(null):.1%} (exact 95% CI {ci.low:.1%}-{ci.high:.1%}; "
        f"{fp_chip} of them in patients whose CHIP locus the matched-normal exclusion missed); "
        f"cohort threshold p <= {out['threshold']:.3g} ({out['threshold_source']}, {out['null_scores']} null "
        f"scores, max_null_panels {out['options'].max_null_panels}); thresholds of the plasma calls: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(out['threshold_sources'].items()))} (median own-null panels "
        f"{out['own_null_panels']:.0f}); k = {out['k_cal']} loci; "
        f"pooled background rate {out['pooled_rate']:.3g}; median LOD95 {t['lod95'].median():.3g}; "
        f"{len(out['excluded'])} loci excluded ({', '.join(f'{k}: {v}' for k, v in out['excluded']['reason'].value_counts().items())}); "
        f"calling took {out['seconds_mrd']:.0f} s, everything {out['seconds']:.0f} s.",
    ]  # fmt: skip
    return "\n".join(lines)


def summarize_coverage(out: dict) -> str:
    """95% interval coverage under the VAF spread: the default interval and the binomial one."""
    t = out["table"]
    lines = [
        f"#### {out['scenario'].name}: 95% interval coverage, per-locus VAF spread sd {out['options'].vaf_spread:g} "
        "(log scale, unknown to the caller)",
        "",
        "| TF | n | coverage (default: widened by overdispersion) | binomial interval | median tf_dispersion |",
        "| --- | --- | --- | --- | --- |",
    ]
    for tf in out["options"].tfs:
        if tf == 0:
            continue
        g = t[t["tf"] == tf]
        widened = ((g["ci_low"] <= tf) & (tf <= g["ci_high"])).mean()
        binomial = ((g["binomial_ci_low"] <= tf) & (tf <= g["binomial_ci_high"])).mean()
        dispersion = out["calls"].loc[g["sample_id"], "tf_dispersion"].median()
        lines.append(f"| {tf:g} | {len(g)} | {widened:.0%} | {binomial:.0%} | {dispersion:.2f} |")
    return "\n".join(lines)


def summarize_orientation(out: dict) -> str:
    """The default (each read orientation at its own rate) next to the same calls blind to orientations."""
    t = out["table"]
    s = out["scenario"]
    lines = [
        f"#### {s.name}: read orientations (default) vs blind to them; 8-oxoG {s.oxog_rate:g} per molecule, "
        f"{s.oxog_share:.0%} in one orientation, library-to-library sd {s.oxog_library_sd:g} (log scale)",
        "",
        "| TF | n | with orientations sens. | blind sens. | 95% CI coverage: with / blind |",
        "| --- | --- | --- | --- | --- |",
    ]
    for tf in out["options"].tfs:
        g = t[t["tf"] == tf]
        label = "0 (FPR)" if tf == 0 else f"{tf:g}"
        coverage = [((g[lo] <= tf) & (tf <= g[hi])).mean() for lo, hi in
                    (("ci_low", "ci_high"), ("blind_ci_low", "blind_ci_high"))]  # fmt: skip
        lines.append(
            f"| {label} | {len(g)} | {g['mrd_positive'].mean():.1%} | {g['blind_positive'].mean():.1%} | "
            f"{coverage[0]:.0%} / {coverage[1]:.0%} |"
        )
    null = t[t["tf"] == 0]
    lines += [
        "",
        f"FPR at TF 0: {int(null['mrd_positive'].sum())}/{len(null)} with orientations (threshold p <= "
        f"{out['threshold']:.3g}), {int(null['blind_positive'].sum())}/{len(null)} blind to them (p <= "
        f"{out['blind_threshold']:.3g}).",
    ]
    return "\n".join(lines)


def _ratio(sens: float, oracle: float, tf: float) -> str:
    return f"{sens / oracle:.2f}" if oracle > 0 and tf > 0 else ("n/a" if tf > 0 else "")


def summarize_counts_only(out: dict) -> str:
    """The default (fragment lengths weigh in) next to `calling.fragment_lengths: false`, on the same data."""
    t = out["table"]
    lines = [
        f"#### {out['scenario'].name}: with fragment lengths (default) vs counts only",
        "",
        "| TF | with lengths sens. | counts only sens. | median abs log10 error: lengths / counts | "
        "95% CI coverage: lengths / counts | median LOD95: lengths / counts |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for tf in out["options"].tfs:
        g = t[t["tf"] == tf]
        label = "0 (FPR)" if tf == 0 else f"{tf:g}"
        errors = [np.median(log10_error(g[c], tf)) for c in ("tf_est", "counts_tf_est")] if tf > 0 else []
        coverage = [((g[lo] <= tf) & (tf <= g[hi])).mean() for lo, hi in
                    (("ci_low", "ci_high"), ("counts_ci_low", "counts_ci_high"))]  # fmt: skip
        lines.append(
            f"| {label} | {g['mrd_positive'].mean():.1%} | {g['counts_positive'].mean():.1%} | "
            f"{' / '.join(f'{x:.3f}' for x in errors)} | {coverage[0]:.0%} / {coverage[1]:.0%} | "
            f"{g['lod95'].median():.3g} / {g['counts_lod95'].median():.3g} |"
        )
    null = t[t["tf"] == 0]
    lines += [
        "",
        f"Counts only: FPR at TF 0 {int(null['counts_positive'].sum())}/{len(null)}; threshold p <= "
        f"{out['counts_threshold']:.3g}; calling took {out['seconds_counts']:.0f} s.",
    ]
    return "\n".join(lines)


# Genome-wide cohorts: every sample holds every patient's loci, so fewer patients, more samples per patient.
WGS_OPTIONS = {
    "wgs-2000": {"replicates": 6, "null_per_patient": 5, "controls": 20, "samples_per_tf": 4},
    "wgs-20000": {"replicates": 2, "null_per_patient": 10, "controls": 10, "samples_per_tf": 10},
}


# Scenario defaults other than Options' (bespoke captures: 10 healthy controls, as a lab's panel of normals).
SCENARIO_OPTIONS = {**WGS_OPTIONS, "bespoke": {"controls": 10}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", choices=[*SCENARIOS, "both"], default=None,
                        help="both (default: clinical and demo), oxog (clinical depth with 8-oxoG damage), bespoke (each patient's own panel alone, 10 controls), or with --wgs one of the genome-wide scenarios")  # fmt: skip
    parser.add_argument("--wgs", action="store_true", help="genome-wide signatures at 30x (both sizes)")
    parser.add_argument("--replicates", type=int, default=None, help="patients (20; WGS_OPTIONS with --wgs)")
    parser.add_argument("--null-per-patient", type=int, default=None)
    parser.add_argument("--controls", type=int, default=None)
    parser.add_argument("--samples-per-tf", type=int, default=None)
    parser.add_argument("--oracle-null", type=int, default=Options.oracle_null)
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument(
        "--no-fraglen",
        action="store_true",
        help="no fragment lengths: call counts only (calling.fragment_lengths: false), no comparison",
    )
    parser.add_argument(
        "--no-sample-background", action="store_true", help="calling.sample_background: false"
    )
    parser.add_argument(
        "--no-flanks", action="store_true", help="calls without the samples' flank tables (cohort threshold)"
    )
    parser.add_argument(
        "--max-null-panels", default=str(Options.max_null_panels), help="calling.max_null_panels (or 'all')"
    )
    parser.add_argument(
        "--vaf-spread",
        type=float,
        default=0.0,
        help="sd of the log per-locus VAF weight the caller does not know",
    )
    parser.add_argument(
        "--tfs", default=None, help="tumor fractions, comma-separated (TFS; WGS_TFS with --wgs)"
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    if args.wgs:
        names = [args.depth] if args.depth in WGS_OPTIONS else list(WGS_OPTIONS)
    else:
        names = ["clinical", "demo"] if args.depth in (None, "both") else [args.depth]
    tfs = args.tfs.split(",") if args.tfs else (WGS_TFS if args.wgs else TFS)
    all_options = []
    for name in names:
        defaults = {**dataclasses.asdict(Options()), **SCENARIO_OPTIONS.get(name, {})}
        given = {"replicates": args.replicates, "null_per_patient": args.null_per_patient,
                 "controls": args.controls, "samples_per_tf": args.samples_per_tf}  # fmt: skip
        sizes = {key: defaults[key] if value is None else value for key, value in given.items()}
        all_options.append(Options(
            **sizes, oracle_null=args.oracle_null, seed=args.seed, fraglen=not args.no_fraglen,
            sample_background=not args.no_sample_background, flanks=not args.no_flanks,
            max_null_panels=None if args.max_null_panels == "all" else int(args.max_null_panels),
            vaf_spread=args.vaf_spread, tfs=tuple(sorted({0.0, *(float(t) for t in tfs)})),
        ))  # fmt: skip
    logging.basicConfig(level=logging.WARNING)
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(names)))) as pool:
        outs = list(pool.map(run_scenario, [SCENARIOS[n] for n in names], all_options))
    for options in all_options:
        print(f"seed {options.seed}, {options.replicates} patients x {options.samples_per_tf} sample(s) per TF, "
              f"{options.null_per_patient} TF-0 samples per patient, {options.controls} healthy controls")  # fmt: skip
    print()
    for out in outs:
        print(summarize(out))
        print()
        if out["fraglen"]:
            print(summarize_counts_only(out))
            print()
        if out["options"].vaf_spread > 0:
            print(summarize_coverage(out))
            print()
        if out["scenario"].compare_orientation:
            print(summarize_orientation(out))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
