"""The demo study's plan: the whole cohort drawn from one seed before any file is written (`demo` writes it).

The study's numbers (`DemoStudy`), the patients (cohort, enrollment, baseline MRD, tumor fraction course,
progression, death, restart), their samples and capture pools, the panels on a reference sized for them, and the
CHIP and noisy loci.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from mrdtrack.simulation.panels import best_captured_locus, locus_key, make_panels, plasma_yield
from mrdtrack.simulation.records import LocusKey
from mrdtrack.simulation.reference import Reference, make_reference
from mrdtrack.vocabulary import DAYS_PER_MONTH, LOCUS_KEY

DEFAULT_SEED = 62  # TBCRC 062
TRIAL_COHORTS = {"stop": 52, "continue": 30}
TF_START = 1e-4  # tumor fraction when a converting patient's tumor DNA first appears
TF_MAX = 1e-2  # tumor fraction reached at progression (and kept after it)


@dataclass(frozen=True)
class DemoStudy:
    """The numbers that shape the demo study; the defaults make the STOP-HER2-sized one (docs/demo.md).

    Parameters
    ----------
    n_patients : int
        Patients enrolled, split between the cohorts `stop` and `continue` as the trial's 52:30.
    accrual_start : datetime.date
        The first possible enrollment date.
    accrual_days : int
        Enrollment dates are drawn uniformly over this many days from `accrual_start` (548: 18 months).
    data_cutoff : datetime.date
        End of follow-up: patients still progression-free are censored then.
    visit_days : int
        Days between scheduled plasma draws after the baseline one (91: quarterly).
    visit_jitter_days : int
        Each scheduled draw falls up to this many days before or after its day (uniform).
    baseline_max_days_before : int
        The baseline draw falls 0 to this many days before enrollment (inside the workflow's 30-day baseline
        window).
    max_follow_up_days : int
        No scheduled draw after this many days from enrollment (1096: 3 years).
    missed_visit_rate : float
        Probability that a patient misses a scheduled draw.
    post_progression_draw_rate : float
        Probability that a patient who progresses has one more draw 14-56 days after progression.
    withdrawal_rate : float
        Probability that a patient is lost to follow-up (censored at a random day before the cutoff).
    baseline_positive_share : dict of str to float
        Cohort -> share of its patients MRD positive at baseline (exactly, rounded to whole patients).
    hazard_per_month : dict of str to (float, float)
        Cohort -> monthly progression hazard (exponential times) of baseline-negative and baseline-positive
        patients. Stopping anti-HER2 therapy raises it: 1-year PFS in `stop` comes out near 60%, above the
        trial's null of 50%.
    shedding_share : float
        Probability that a baseline-negative patient's progression is preceded by tumor DNA in plasma
        (baseline-positive patients always shed).
    lead_days : (int, int)
        Tumor DNA of a converting patient appears this many days before progression (uniform from the first to
        just below the second; never before day 14).
    months_per_decade : (float, float)
        Baseline-positive tumor fraction grows tenfold every this many months (uniform between the two) up to
        `TF_MAX` at progression: the sooner a patient progresses, the more tumor DNA at baseline.
    loci_range : (int, int)
        Panel size (tumor SNVs) per patient, uniform between the two, both included.
    pool_size : int
        Patients per capture pool: their samples are captured with the pool's combined panel.
    lab_batches : int
        Sequencing batches, each taking an equal stretch of collection dates (batch chemistry differs).
    controls_per_pool : int
        Healthy-donor plasma samples captured with each pool's panel.
    normal_share : float
        Probability that a patient has a matched white-blood-cell sample, drawn with the baseline plasma.
    chip_patients : int
        Patients with a matched normal who carry a clonal-hematopoiesis (CHIP) variant at one of their panel
        loci.
    noisy_loci_per_pools : int
        One locus far noisier than its context (ALT in 1% of molecules of every sample) per this many pools.
    plasma_molecules : float
        Mean unique molecules per locus of a plasma or control sample with 20 ng of cfDNA (scaled by the
        sample's cfDNA mass to the power 0.3).
    normal_molecules : float
        Mean unique molecules per locus of a matched-normal sample.
    family_size_mean : float
        Mean read pairs per molecule (some lab batches add PCR copies).
    bam_level : int
        BGZF deflate level of the BAMs written (0-9).
    """

    n_patients: int = 82
    accrual_start: date = date(2023, 5, 1)
    accrual_days: int = 548
    data_cutoff: date = date(2026, 1, 31)
    visit_days: int = 91
    visit_jitter_days: int = 10
    baseline_max_days_before: int = 28
    max_follow_up_days: int = 1096
    missed_visit_rate: float = 0.08
    post_progression_draw_rate: float = 0.5
    withdrawal_rate: float = 0.04
    baseline_positive_share: dict[str, float] = field(
        default_factory=lambda: {"stop": 0.25, "continue": 0.17}
    )
    hazard_per_month: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"stop": (0.030, 0.115), "continue": (0.0075, 0.05)}
    )
    shedding_share: float = 0.75
    lead_days: tuple[int, int] = (180, 450)
    months_per_decade: tuple[float, float] = (12.0, 30.0)
    loci_range: tuple[int, int] = (16, 36)
    pool_size: int = 4
    lab_batches: int = 3
    controls_per_pool: int = 1
    normal_share: float = 0.25
    chip_patients: int = 3
    noisy_loci_per_pools: int = 6
    plasma_molecules: float = 210.0
    normal_molecules: float = 210.0
    family_size_mean: float = 1.15
    bam_level: int = 6

    def cohort_sizes(self) -> dict[str, int]:
        """The trial's 52:30 split, scaled to `n_patients` (at least one patient per cohort)."""
        if self.n_patients < 2:
            raise ValueError("the demo needs at least 2 patients (one per cohort)")
        stop = min(max(round(self.n_patients * TRIAL_COHORTS["stop"] / 82), 1), self.n_patients - 1)
        return {"stop": stop, "continue": self.n_patients - stop}


@dataclass(frozen=True)
class DemoPatient:
    """One patient as planned, with the truth. Days count from enrollment; `progression_day` is latent (the
    patient is censored at `follow_up_day` when it comes later)."""

    patient_id: str
    cohort: str
    enrollment: date
    age: int
    hr_positive: int
    pool: int
    n_loci: int
    baseline_tf: float  # 0: MRD negative at baseline
    sheds: bool  # tumor DNA rises before progression (always, when positive at baseline)
    progression_day: int
    conversion_day: int | None  # first day with tumor DNA, for patients negative at baseline who shed
    follow_up_day: int  # censoring: data cutoff or withdrawal
    death_day: int | None
    restart_day: int | None
    restart_benefit: int | None
    has_normal: bool

    @property
    def progressed(self) -> bool:
        return self.progression_day <= self.follow_up_day

    @property
    def mrd_course(self) -> str:
        if self.baseline_tf > 0:
            return "baseline_positive"
        if self.conversion_day is not None and self.conversion_day <= self.follow_up_day:
            return "converts"
        return "negative"

    def tumor_fraction(self, day: int) -> float:
        """True tumor fraction of a draw: log-linear growth to TF_MAX at progression, flat after it."""
        if day >= self.progression_day:
            return TF_MAX if self.sheds else 0.0
        if self.baseline_tf > 0:
            progress = max(day, 0) / self.progression_day
            return float(self.baseline_tf * (TF_MAX / self.baseline_tf) ** progress)
        if self.conversion_day is None or day < self.conversion_day:
            return 0.0
        progress = (day - self.conversion_day) / (self.progression_day - self.conversion_day)
        return float(TF_START * (TF_MAX / TF_START) ** progress)


@dataclass(frozen=True)
class DemoSample:
    sample_id: str
    patient_id: str  # empty for controls
    sample_type: str  # plasma, normal, control
    collected: date
    day: int | None  # from enrollment (None for controls)
    tf: float
    pool: int
    batch: str
    plasma_ml: float | None
    cfdna_ng: float | None


@dataclass
class DemoPlan:
    """The whole cohort before any file is written: patients, samples, panels and special loci.

    Parameters
    ----------
    study : DemoStudy
        The numbers the plan was drawn with.
    seed : int
        The seed it was drawn from.
    reference : Reference
        The simulated genome, sized for every panel.
    patients : list of DemoPatient
        Each patient's cohort, dates, pool and true course (tumor fraction, progression, death, restart).
    samples : list of DemoSample
        Every plasma, matched-normal and control draw: date, true tumor fraction, pool, lab batch, plasma
        volume and cfDNA mass.
    panels : dict of str to pandas.DataFrame
        Patient -> panel loci (chrom, 1-based pos, ref, alt, ccf).
    chip : dict of LocusKey to float
        CHIP variant -> its VAF in the carrier's non-tumor molecules (matched normal and plasma).
    chip_carrier : dict of LocusKey to str
        CHIP variant -> the patient who carries it.
    noise : dict of LocusKey to float
        Noisy locus -> extra ALT rate per molecule in every sample.
    """

    study: DemoStudy
    seed: int
    reference: Reference
    patients: list[DemoPatient]
    samples: list[DemoSample]
    panels: dict[str, pd.DataFrame]
    chip: dict[LocusKey, float]
    chip_carrier: dict[LocusKey, str]
    noise: dict[LocusKey, float]

    def pool_panel(self, pool: int) -> pd.DataFrame:
        """The combined panel a pool's samples are captured with."""
        members = [p.patient_id for p in self.patients if p.pool == pool]
        return pd.concat([self.panels[m] for m in members], ignore_index=True)[LOCUS_KEY]


def plan_demo(study: DemoStudy | None = None, seed: int = DEFAULT_SEED) -> DemoPlan:
    """Draw the cohort (reference, panels, patients, samples) from `seed`; nothing is written.

    Parameters
    ----------
    study
        The numbers that shape the study (default: the STOP-HER2-sized one).
    seed
        The study seed; the same seed gives the same plan.

    Returns
    -------
    DemoPlan
        The whole cohort, ready for `write_demo`.
    """
    study = study or DemoStudy()
    rng = np.random.default_rng([seed, 0])
    patients = plan_patients(study, rng)
    total_loci = sum(p.n_loci for p in patients)
    reference = make_reference(rng, reference_contigs(total_loci))
    panels = make_panels(reference, {p.patient_id: p.n_loci for p in patients}, rng, with_ccf=True)
    chip, carriers = chip_variants(study, patients, panels, reference, rng)
    noise = noisy_loci(study, patients, panels, reference, rng, avoid=set(chip))
    samples = plan_samples(study, patients, rng)
    return DemoPlan(study, seed, reference, patients, samples, panels, chip, carriers, noise)


def reference_contigs(total_loci: int) -> dict[str, int]:
    """Three random contigs with room for every panel locus 600+ bp apart (about a quarter of it taken)."""
    total = max(400_000, 2_600 * total_loci)
    return {"chr1": int(total * 0.40), "chr2": int(total * 0.33), "chr3": int(total * 0.27)}


def plan_patients(study: DemoStudy, rng: np.random.Generator) -> list[DemoPatient]:
    sizes = study.cohort_sizes()
    cohorts = np.array(["stop"] * sizes["stop"] + ["continue"] * sizes["continue"])
    cohorts = cohorts[rng.permutation(cohorts.size)]  # patients choose their cohort as they enroll
    n = cohorts.size
    enrollment_days = np.sort(rng.integers(0, study.accrual_days, n))
    positive = baseline_positive(study, cohorts, rng)
    progression = progression_days(study, cohorts, positive, rng)
    n_pools = math.ceil(n / study.pool_size)
    with_normal = rng.random(n) < study.normal_share
    patients = []
    for i in range(n):
        enrollment = study.accrual_start + timedelta(days=int(enrollment_days[i]))
        patients.append(
            _patient(study, rng, f"P{i + 1:03d}", str(cohorts[i]), enrollment, bool(positive[i]),
                     int(progression[i]), pool=i * n_pools // n, has_normal=bool(with_normal[i]))
        )  # fmt: skip
    return patients


def baseline_positive(study: DemoStudy, cohorts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exactly the study's share of each cohort (rounded) is MRD positive at baseline."""
    positive = np.zeros(cohorts.size, bool)
    for cohort, share in study.baseline_positive_share.items():
        members = np.flatnonzero(cohorts == cohort)
        chosen = rng.choice(members, round(share * members.size), replace=False) if members.size else []
        positive[chosen] = True
    return positive


def progression_days(
    study: DemoStudy, cohorts: np.ndarray, positive: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Exponential times to progression per cohort and baseline group, by stratified sampling: the k-th of n
    patients of a group draws its uniform from ((k + U) / n), so no group ends up with far fewer events than
    its hazard implies (a small group could otherwise show none)."""
    days = np.zeros(cohorts.size, np.int64)
    for cohort, hazards in study.hazard_per_month.items():
        for is_positive, hazard in zip((False, True), hazards, strict=True):
            members = np.flatnonzero((cohorts == cohort) & (positive == is_positive))
            if not members.size:
                continue
            u = (rng.permutation(members.size) + rng.random(members.size)) / members.size
            months = -np.log1p(-u) / hazard
            days[members] = np.maximum(np.round(months * DAYS_PER_MONTH), 1).astype(np.int64)
    return days


def _patient(
    study: DemoStudy,
    rng: np.random.Generator,
    patient_id: str,
    cohort: str,
    enrollment: date,
    positive: bool,
    progression_day: int,
    pool: int,
    has_normal: bool,
) -> DemoPatient:
    follow_up = (study.data_cutoff - enrollment).days
    if rng.random() < study.withdrawal_rate:
        follow_up = int(rng.integers(30, follow_up))
    baseline_tf = 0.0
    if positive:
        decades = progression_day / DAYS_PER_MONTH / rng.uniform(*study.months_per_decade)
        baseline_tf = float(np.clip(TF_MAX * 10**-decades, TF_START, TF_MAX))
    sheds = positive or bool(rng.random() < study.shedding_share)
    conversion = None
    if sheds and not positive:
        # Tumor DNA appears before progression, but never before the baseline draw.
        conversion = max(progression_day - int(rng.integers(*study.lead_days)), 14)
        conversion = min(conversion, progression_day - 1)
    restart_day, restart_benefit, death_day = None, None, None
    if cohort == "stop" and progression_day + 7 <= follow_up:
        restart_day = progression_day + int(rng.integers(7, 36))
        restart_benefit = int(rng.random() < 0.7)
    if progression_day <= follow_up:
        # HER2+ metastatic disease after progression: median survival about 3 years, longer after a restart
        # that helps.
        median_months = 60 if restart_benefit == 1 else 36
        death_day = progression_day + int(rng.exponential(median_months / math.log(2) * DAYS_PER_MONTH))
    return DemoPatient(
        patient_id, cohort, enrollment, int(np.clip(round(rng.normal(57, 10)), 30, 85)),
        int(rng.random() < 0.55), pool, int(rng.integers(study.loci_range[0], study.loci_range[1] + 1)),
        baseline_tf, sheds, progression_day, conversion, follow_up,
        death_day if death_day is not None and death_day <= follow_up else None,
        restart_day if restart_day is not None and restart_day <= follow_up else None,
        restart_benefit if restart_day is not None and restart_day <= follow_up else None, has_normal,
    )  # fmt: skip


def visit_days(study: DemoStudy, patient: DemoPatient, rng: np.random.Generator) -> list[tuple[str, int]]:
    """(visit label, day) of the patient's plasma draws: baseline, quarterly until progression or censoring
    (missing a few), and sometimes one after progression."""
    last = min(patient.follow_up_day, patient.progression_day - 1)
    visits = [("V00", -int(rng.integers(0, study.baseline_max_days_before + 1)))]
    for k in range(1, study.max_follow_up_days // study.visit_days + 1):
        jitter = int(rng.integers(-study.visit_jitter_days, study.visit_jitter_days + 1))
        day = k * study.visit_days + jitter
        missed = rng.random() < study.missed_visit_rate
        if day <= last and day <= study.max_follow_up_days and not missed:
            visits.append((f"V{k:02d}", day))
    if patient.progressed and rng.random() < study.post_progression_draw_rate:
        day = patient.progression_day + int(rng.integers(14, 57))
        if day <= patient.follow_up_day:
            visits.append(("PD", day))
    return visits


def plan_samples(
    study: DemoStudy, patients: Sequence[DemoPatient], rng: np.random.Generator
) -> list[DemoSample]:
    samples = []
    for patient in patients:
        for label, day in visit_days(study, patient, rng):
            collected = patient.enrollment + timedelta(days=day)
            ml, ng = plasma_yield(rng)
            samples.append(DemoSample(f"{patient.patient_id}_{label}", patient.patient_id, "plasma", collected,
                                      day, patient.tumor_fraction(day), patient.pool, "", ml, ng))  # fmt: skip
            if label == "V00" and patient.has_normal:
                samples.append(DemoSample(f"{patient.patient_id}_N", patient.patient_id, "normal", collected, day,
                                          0.0, patient.pool, "", None, None))  # fmt: skip
    samples += plan_controls(study, patients, rng)
    return assign_batches(samples, study.lab_batches)


def assign_batches(samples: list[DemoSample], n_batches: int) -> list[DemoSample]:
    """The lab sequenced the draws in `n_batches` runs, each of an equal stretch of collection dates."""
    first = min(s.collected for s in samples)
    span = (max(s.collected for s in samples) - first).days + 1
    return [replace(s, batch=f"batch{1 + (s.collected - first).days * n_batches // span}") for s in samples]


def plan_controls(
    study: DemoStudy, patients: Sequence[DemoPatient], rng: np.random.Generator
) -> list[DemoSample]:
    """Healthy-donor plasma, captured with each pool's panel, collected throughout the study."""
    span = (study.data_cutoff - study.accrual_start).days
    controls = []
    for pool in sorted({p.pool for p in patients}):
        for _ in range(study.controls_per_pool):
            collected = study.accrual_start + timedelta(days=int(rng.integers(0, span)))
            ml, ng = plasma_yield(rng)
            controls.append(DemoSample(f"CTRL{len(controls) + 1:03d}", "", "control", collected, None, 0.0, pool,
                                       "", ml, ng))  # fmt: skip
    return controls


def chip_variants(
    study: DemoStudy,
    patients: Sequence[DemoPatient],
    panels: dict[str, pd.DataFrame],
    reference: Reference,
    rng: np.random.Generator,
) -> tuple[dict[LocusKey, float], dict[LocusKey, str]]:
    """A clonal-hematopoiesis C>T/G>A at one panel locus of a few patients with a matched normal, present in
    the non-tumor molecules of their normal and plasma: the matched normal is what removes it."""
    with_normal = [p.patient_id for p in patients if p.has_normal]
    carriers = sorted(rng.choice(with_normal, min(study.chip_patients, len(with_normal)), replace=False))
    chip, carrier_of = {}, {}
    for patient in carriers:
        key = best_captured_locus(reference, panels[str(patient)], ("CT", "GA"))
        chip[key] = round(float(rng.uniform(0.01, 0.04)), 3)
        carrier_of[key] = str(patient)
    return chip, carrier_of


def noisy_loci(
    study: DemoStudy,
    patients: Sequence[DemoPatient],
    panels: dict[str, pd.DataFrame],
    reference: Reference,
    rng: np.random.Generator,
    avoid: set[LocusKey],
) -> dict[LocusKey, float]:
    """A few loci (never a CHIP one) whose ALT shows in 1% of the molecules of every sample (a synthesis or
    mapping artifact): the background model must exclude them."""
    pools = sorted({p.pool for p in patients})
    chosen = pools[:: study.noisy_loci_per_pools]
    noise = {}
    for pool in chosen:
        members = [p.patient_id for p in patients if p.pool == pool]
        panel = panels[str(rng.choice(members))]
        panel = panel[[locus_key(row) not in avoid for _, row in panel.iterrows()]]
        noise[best_captured_locus(reference, panel)] = 0.01
    return noise
