"""A simulated, STOP-HER2-sized MRD study to run the whole workflow on: `mrdtrack demo DIR`.

The cohort follows the trial's design (TBCRC 062): 52 patients stop anti-HER2 therapy and 30 continue it, enrolled
over 18 months; a plasma draw within 30 days before enrollment, then one every ~91 days (jittered, a few missed)
for up to 3 years or until progression, sometimes one more after it; matched normals (white blood cells) for some
patients; healthy-donor controls. Progression follows an MRD-dependent hazard: patients with tumor DNA at baseline
progress more, and earlier, in both cohorts, and most patients who progress from a negative baseline convert
months before the radiographic progression, so lead times show. A fifth of those progress without detectable
tumor DNA (low shedders), as in real cohorts. The event times are drawn by stratified sampling per cohort and
baseline group, so every group's event count stays close to its expectation whatever the seed.

Sequencing follows pooled-capture MRD assays (INVAR/TAPAS style): patients are grouped, in enrollment order, into
capture pools of about eight, and every sample of a pool is captured with the pool's combined panel. A sample's
molecules at the other patients' loci of its pool are same-sample background for the workflow; at loci of other
pools it has no molecules at all. Healthy controls are captured with one pool each. Every file is simulated by
`mrdtrack.simulation.cfdna` from its own seed (the study seed and the sample's name), in worker processes, so the same
command writes byte-identical files whatever the number of workers.

The truth (`truth/`) says what every file holds: each sample's true tumor fraction and tumor molecules, each
patient's MRD course and latent progression time, the CHIP and noisy loci.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mrdtrack.processes import in_parallel
from mrdtrack.simulation import cfdna as sim
from mrdtrack.tables import write_tsv
from mrdtrack.vocabulary import DAYS_PER_MONTH

DEFAULT_SEED = 62  # TBCRC 062
TRIAL_COHORTS = {"stop": 52, "continue": 30}
TF_START = 1e-4  # tumor fraction when a converting patient's tumor DNA first appears
TF_MAX = 1e-2  # tumor fraction reached at progression (and kept after it)
# The config's first line: marks a folder that --overwrite may replace.
CONFIG_MARK = "# Written by `mrdtrack demo`"
# The demo runs on a laptop: 25 samples per counting or calling job start Python ~45 times instead of ~1,000.
DEMO_SAMPLES_PER_JOB = 25


@dataclass(frozen=True)
class DemoDesign:
    """Everything that shapes the demo cohort; the defaults make the STOP-HER2-sized one."""

    n_patients: int = 82
    accrual_start: date = date(2023, 5, 1)
    accrual_days: int = 548  # 18 months
    data_cutoff: date = date(2026, 1, 31)
    visit_days: int = 91
    visit_jitter_days: int = 10
    baseline_max_days_before: int = 28  # inside the workflow's 30-day baseline window
    max_follow_up_days: int = 1096  # draws stop after 3 years
    missed_visit_rate: float = 0.08
    post_progression_draw_rate: float = 0.5
    withdrawal_rate: float = 0.04  # patients lost to follow-up at a random time
    # Baseline MRD positive share and monthly progression hazards (negative, positive) per cohort. Stopping
    # anti-HER2 therapy raises the hazard; 1-year PFS in `stop` comes out near 60% (the trial's null is 50%).
    baseline_positive_share: dict[str, float] = field(
        default_factory=lambda: {"stop": 0.25, "continue": 0.17}
    )
    hazard_per_month: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"stop": (0.030, 0.115), "continue": (0.0075, 0.05)}
    )
    shedding_share: float = 0.75  # of progressions from a negative baseline, those preceded by tumor DNA
    lead_days: tuple[int, int] = (180, 450)  # tumor DNA appears this long before progression (uniform)
    # Baseline-positive tumor DNA grows tenfold every this many months (uniform) up to TF_MAX at progression:
    # the sooner a patient progresses, the more tumor DNA at baseline.
    months_per_decade: tuple[float, float] = (12.0, 30.0)
    loci_range: tuple[int, int] = (16, 36)  # panel size per patient (uniform)
    pool_size: int = 4
    lab_batches: int = 3
    controls_per_pool: int = 1
    normal_share: float = 0.25  # patients with a matched white-blood-cell sample
    chip_patients: int = 3  # of those, carriers of a CHIP variant at one of their panel loci
    noisy_loci_per_pools: int = 6  # one locus far noisier than its context per this many pools
    # Mean unique molecules per locus (plasma scales with its cfDNA input) and read pairs per molecule.
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
    """One patient's design and truth. Days count from enrollment; `progression_day` is latent (the patient
    is censored at `follow_up_day` when it comes later)."""

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
    """The whole cohort before any file is written: patients, samples, panels and special loci."""

    design: DemoDesign
    seed: int
    reference: sim.Reference
    patients: list[DemoPatient]
    samples: list[DemoSample]
    panels: dict[str, pd.DataFrame]
    chip: dict[sim.LocusKey, float]  # CHIP variant -> VAF in the carrier's non-tumor molecules
    chip_carrier: dict[sim.LocusKey, str]
    noise: dict[sim.LocusKey, float]  # noisy locus -> extra ALT rate in every sample

    def pool_panel(self, pool: int) -> pd.DataFrame:
        """The combined panel a pool's samples are captured with."""
        members = [p.patient_id for p in self.patients if p.pool == pool]
        return pd.concat([self.panels[m] for m in members], ignore_index=True)[["chrom", "pos", "ref", "alt"]]


# ------------------------------------------------------------------------------------------------------------
# The plan
# ------------------------------------------------------------------------------------------------------------
def plan_demo(design: DemoDesign | None = None, seed: int = DEFAULT_SEED) -> DemoPlan:
    """Draw the cohort (reference, panels, patients, samples) from `seed`; nothing is written."""
    design = design or DemoDesign()
    rng = np.random.default_rng([seed, 0])
    patients = plan_patients(design, rng)
    total_loci = sum(p.n_loci for p in patients)
    reference = sim.make_reference(rng, reference_contigs(total_loci))
    panels = sim.make_panels(reference, {p.patient_id: p.n_loci for p in patients}, rng, with_ccf=True)
    chip, carriers = chip_variants(design, patients, panels, reference, rng)
    noise = noisy_loci(design, patients, panels, reference, rng, avoid=set(chip))
    samples = plan_samples(design, patients, rng)
    return DemoPlan(design, seed, reference, patients, samples, panels, chip, carriers, noise)


def reference_contigs(total_loci: int) -> dict[str, int]:
    """Three random contigs with room for every panel locus 600+ bp apart (about a quarter of it taken)."""
    total = max(400_000, 2_600 * total_loci)
    return {"chr1": int(total * 0.40), "chr2": int(total * 0.33), "chr3": int(total * 0.27)}


def plan_patients(design: DemoDesign, rng: np.random.Generator) -> list[DemoPatient]:
    sizes = design.cohort_sizes()
    cohorts = np.array(["stop"] * sizes["stop"] + ["continue"] * sizes["continue"])
    cohorts = cohorts[rng.permutation(cohorts.size)]  # patients choose their cohort as they enroll
    n = cohorts.size
    enrollment_days = np.sort(rng.integers(0, design.accrual_days, n))
    positive = baseline_positive(design, cohorts, rng)
    progression = progression_days(design, cohorts, positive, rng)
    n_pools = math.ceil(n / design.pool_size)
    with_normal = rng.random(n) < design.normal_share
    patients = []
    for i in range(n):
        enrollment = design.accrual_start + timedelta(days=int(enrollment_days[i]))
        patients.append(
            _patient(design, rng, f"P{i + 1:03d}", str(cohorts[i]), enrollment, bool(positive[i]),
                     int(progression[i]), pool=i * n_pools // n, has_normal=bool(with_normal[i]))
        )  # fmt: skip
    return patients


def baseline_positive(design: DemoDesign, cohorts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exactly the designed share of each cohort (rounded) is MRD positive at baseline."""
    positive = np.zeros(cohorts.size, bool)
    for cohort, share in design.baseline_positive_share.items():
        members = np.flatnonzero(cohorts == cohort)
        chosen = rng.choice(members, round(share * members.size), replace=False) if members.size else []
        positive[chosen] = True
    return positive


def progression_days(
    design: DemoDesign, cohorts: np.ndarray, positive: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Exponential times to progression per cohort and baseline group, by stratified sampling: the k-th of n
    patients of a group draws its uniform from ((k + U) / n), so no group ends up with far fewer events than
    its hazard implies (a small group could otherwise show none)."""
    days = np.zeros(cohorts.size, np.int64)
    for cohort, hazards in design.hazard_per_month.items():
        for is_positive, hazard in zip((False, True), hazards, strict=True):
            members = np.flatnonzero((cohorts == cohort) & (positive == is_positive))
            if not members.size:
                continue
            u = (rng.permutation(members.size) + rng.random(members.size)) / members.size
            months = -np.log1p(-u) / hazard
            days[members] = np.maximum(np.round(months * DAYS_PER_MONTH), 1).astype(np.int64)
    return days


def _patient(
    design: DemoDesign,
    rng: np.random.Generator,
    patient_id: str,
    cohort: str,
    enrollment: date,
    positive: bool,
    progression_day: int,
    pool: int,
    has_normal: bool,
) -> DemoPatient:
    follow_up = (design.data_cutoff - enrollment).days
    if rng.random() < design.withdrawal_rate:
        follow_up = int(rng.integers(30, follow_up))
    baseline_tf = 0.0
    if positive:
        decades = progression_day / DAYS_PER_MONTH / rng.uniform(*design.months_per_decade)
        baseline_tf = float(np.clip(TF_MAX * 10**-decades, TF_START, TF_MAX))
    sheds = positive or bool(rng.random() < design.shedding_share)
    conversion = None
    if sheds and not positive:
        # Tumor DNA appears before progression, but never before the baseline draw.
        conversion = max(progression_day - int(rng.integers(*design.lead_days)), 14)
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
        int(rng.random() < 0.55), pool, int(rng.integers(design.loci_range[0], design.loci_range[1] + 1)),
        baseline_tf, sheds, progression_day, conversion, follow_up,
        death_day if death_day is not None and death_day <= follow_up else None,
        restart_day if restart_day is not None and restart_day <= follow_up else None,
        restart_benefit if restart_day is not None and restart_day <= follow_up else None, has_normal,
    )  # fmt: skip


def visit_days(design: DemoDesign, patient: DemoPatient, rng: np.random.Generator) -> list[tuple[str, int]]:
    """(visit label, day) of the patient's plasma draws: baseline, quarterly until progression or censoring
    (missing a few), and sometimes one after progression."""
    last = min(patient.follow_up_day, patient.progression_day - 1)
    visits = [("V00", -int(rng.integers(0, design.baseline_max_days_before + 1)))]
    for k in range(1, design.max_follow_up_days // design.visit_days + 1):
        jitter = int(rng.integers(-design.visit_jitter_days, design.visit_jitter_days + 1))
        day = k * design.visit_days + jitter
        missed = rng.random() < design.missed_visit_rate
        if day <= last and day <= design.max_follow_up_days and not missed:
            visits.append((f"V{k:02d}", day))
    if patient.progressed and rng.random() < design.post_progression_draw_rate:
        day = patient.progression_day + int(rng.integers(14, 57))
        if day <= patient.follow_up_day:
            visits.append(("PD", day))
    return visits


def plan_samples(
    design: DemoDesign, patients: Sequence[DemoPatient], rng: np.random.Generator
) -> list[DemoSample]:
    samples = []
    for patient in patients:
        for label, day in visit_days(design, patient, rng):
            collected = patient.enrollment + timedelta(days=day)
            ml, ng = sim.plasma_yield(rng)
            samples.append(DemoSample(f"{patient.patient_id}_{label}", patient.patient_id, "plasma", collected,
                                      day, patient.tumor_fraction(day), patient.pool, "", ml, ng))  # fmt: skip
            if label == "V00" and patient.has_normal:
                samples.append(DemoSample(f"{patient.patient_id}_N", patient.patient_id, "normal", collected, day,
                                          0.0, patient.pool, "", None, None))  # fmt: skip
    samples += plan_controls(design, patients, rng)
    return assign_batches(samples, design.lab_batches)


def assign_batches(samples: list[DemoSample], n_batches: int) -> list[DemoSample]:
    """The lab sequenced the draws in `n_batches` runs, each of an equal stretch of collection dates."""
    first = min(s.collected for s in samples)
    span = (max(s.collected for s in samples) - first).days + 1
    return [replace(s, batch=f"batch{1 + (s.collected - first).days * n_batches // span}") for s in samples]


def plan_controls(
    design: DemoDesign, patients: Sequence[DemoPatient], rng: np.random.Generator
) -> list[DemoSample]:
    """Healthy-donor plasma, captured with each pool's panel, collected throughout the study."""
    span = (design.data_cutoff - design.accrual_start).days
    controls = []
    for pool in sorted({p.pool for p in patients}):
        for _ in range(design.controls_per_pool):
            collected = design.accrual_start + timedelta(days=int(rng.integers(0, span)))
            ml, ng = sim.plasma_yield(rng)
            controls.append(DemoSample(f"CTRL{len(controls) + 1:03d}", "", "control", collected, None, 0.0, pool,
                                       "", ml, ng))  # fmt: skip
    return controls


def chip_variants(
    design: DemoDesign,
    patients: Sequence[DemoPatient],
    panels: dict[str, pd.DataFrame],
    reference: sim.Reference,
    rng: np.random.Generator,
) -> tuple[dict[sim.LocusKey, float], dict[sim.LocusKey, str]]:
    """A clonal-hematopoiesis C>T/G>A at one panel locus of a few patients with a matched normal, present in
    the non-tumor molecules of their normal and plasma: the matched normal is what removes it."""
    with_normal = [p.patient_id for p in patients if p.has_normal]
    carriers = sorted(rng.choice(with_normal, min(design.chip_patients, len(with_normal)), replace=False))
    chip, carrier_of = {}, {}
    for patient in carriers:
        key = sim.best_captured_locus(reference, panels[str(patient)], ("CT", "GA"))
        chip[key] = round(float(rng.uniform(0.01, 0.04)), 3)
        carrier_of[key] = str(patient)
    return chip, carrier_of


def noisy_loci(
    design: DemoDesign,
    patients: Sequence[DemoPatient],
    panels: dict[str, pd.DataFrame],
    reference: sim.Reference,
    rng: np.random.Generator,
    avoid: set[sim.LocusKey],
) -> dict[sim.LocusKey, float]:
    """A few loci (never a CHIP one) whose ALT shows in 1% of the molecules of every sample (a synthesis or
    mapping artifact): the background model must exclude them."""
    pools = sorted({p.pool for p in patients})
    chosen = pools[:: design.noisy_loci_per_pools]
    noise = {}
    for pool in chosen:
        members = [p.patient_id for p in patients if p.pool == pool]
        panel = panels[str(rng.choice(members))]
        panel = panel[[sim.locus_key(row) not in avoid for _, row in panel.iterrows()]]
        noise[sim.best_captured_locus(reference, panel)] = 0.01
    return noise


# ------------------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------------------
BATCH_SETTINGS = (  # per lab batch: duplicates marked (0x400), extra read pairs per molecule, 8-oxoG rate
    (False, 0.0, 1.5e-4),
    (True, 0.2, 3e-4),
    (False, 0.1, 2e-4),
)


def write_demo(folder: str | Path, plan: DemoPlan, workers: int = 2) -> dict[str, Any]:
    """Write the plan's reference, panels, sheets, BAMs, truth and config.yaml under `folder` (which must be
    empty or absent). Paths in config.yaml start with `folder` as given, so snakemake runs from where this ran
    (as config/config.yaml's paths are relative to the repository root)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    sim.write_reference(plan.reference, out / "reference" / "genome.fa.gz")
    write_panels(out, plan)
    truth = simulate_files(out, plan, workers)
    write_sheets(out, plan)
    write_truth(out, plan, truth)
    write_config(out, plan)
    return {
        "samples": len(plan.samples),
        "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
    }


def write_panels(out: Path, plan: DemoPlan) -> None:
    rows = []
    for patient_id, panel in plan.panels.items():
        name = f"panels/{patient_id}.vcf.gz"
        sim.write_panel_vcf(panel, out / name, plan.reference, compress=True)
        rows.append({"patient_id": patient_id, "panel_vcf": name})
    write_tsv(pd.DataFrame(rows), out / "patients.tsv")


def sample_settings(plan: DemoPlan, sample: DemoSample) -> sim.SimulationSettings:
    """A library's depth (plasma scales with its cfDNA input) and its lab batch's chemistry."""
    batch = int(sample.batch.removeprefix("batch")) - 1
    marked, extra_copies, oxog = BATCH_SETTINGS[batch % len(BATCH_SETTINGS)]
    design = plan.design
    if sample.sample_type == "normal":
        molecules = design.normal_molecules
    else:
        molecules = design.plasma_molecules * (sample.cfdna_ng / 20.0) ** 0.3
    return sim.SimulationSettings(
        molecules_per_locus=float(molecules),
        family_size_mean=design.family_size_mean + extra_copies,
        duplicate_marked=marked,
        oxog_rate=oxog,
        locus_noise=plan.noise,
        library=f"{sample.sample_id}-lib",
        platform_unit=f"DEMO{sample.batch.removeprefix('batch')}:1",
    )


def bam_path(sample: DemoSample) -> str:
    """Relative to the batch's sheet."""
    return f"bams/{sample.sample_id}.bam"


def simulate_files(out: Path, plan: DemoPlan, workers: int) -> pd.DataFrame:
    """Simulate and write every sample's BAM in `workers` processes; one truth row per sample."""
    sim.warm_up(plan.reference)  # caches and compiled code, made once before the workers fork
    pools = {pool: plan.pool_panel(pool) for pool in sorted({p.pool for p in plan.patients})}
    rows = in_parallel(_simulate_one, plan.samples, (out, plan, pools), workers)
    return pd.DataFrame(rows)


def _simulate_one(
    shared: tuple[Path, DemoPlan, dict[int, pd.DataFrame]], sample: DemoSample
) -> dict[str, Any]:
    out, plan, pools = shared
    # One stream per sample, named by the study seed and the sample: a file depends on nothing else.
    rng = np.random.default_rng([plan.seed, zlib.crc32(sample.sample_id.encode())])
    own = plan.panels[sample.patient_id] if sample.sample_type == "plasma" else None
    chip = {k: vaf for k, vaf in plan.chip.items() if plan.chip_carrier[k] == sample.patient_id}
    simulated = sim.simulate_sample(
        plan.reference, pools[sample.pool], own, sample.tf, sample_settings(plan, sample), rng,
        sample_id=sample.sample_id, chip=chip,
    )  # fmt: skip
    sim.write_bam_fast(
        simulated, out / sample.batch / bam_path(sample), plan.reference, plan.design.bam_level
    )
    truth = simulated.truth()
    if sample.patient_id:
        mine = plan.panels[sample.patient_id][["chrom", "pos", "ref", "alt"]]
        truth = truth.merge(mine, on=["chrom", "pos", "ref", "alt"])
    return {
        "sample_id": sample.sample_id, "patient_id": sample.patient_id, "sample_type": sample.sample_type,
        "pool": sample.pool, "batch": sample.batch, "collection_date": sample.collected.isoformat(),
        "day": sample.day, "true_tf": sample.tf, "own_panel_molecules": int(truth["true_molecules"].sum()),
        "own_panel_tumor_alt_molecules": int(truth["true_tumor_alt_molecules"].sum()),
        "records": len(simulated.records),
    }  # fmt: skip


def write_sheets(out: Path, plan: DemoPlan) -> None:
    """One sample sheet per lab batch, and the clinical sheet."""
    for batch in sorted({s.batch for s in plan.samples}):
        rows = [
            {"sample_id": s.sample_id, "patient_id": s.patient_id, "sample_type": s.sample_type,
             "collection_date": s.collected.isoformat(), "bam": bam_path(s), "batch": batch,
             "plasma_ml": s.plasma_ml, "cfdna_ng": s.cfdna_ng}
            for s in plan.samples if s.batch == batch
        ]  # fmt: skip
        write_tsv(pd.DataFrame(rows), out / batch / "samples.tsv")
    write_tsv(clinical_table(plan.patients), out / "clinical.tsv")


def clinical_table(patients: Sequence[DemoPatient]) -> pd.DataFrame:
    """The clinical sheet (test_data/clinical.tsv's columns): PFS and OS, covariates, restarts in `stop`."""
    rows = []
    for p in patients:
        pfs_day = p.progression_day if p.progressed else p.follow_up_day
        os_day = p.death_day if p.death_day is not None else p.follow_up_day
        rows.append(
            {"patient_id": p.patient_id, "cohort": p.cohort, "enrollment_date": p.enrollment.isoformat(),
             "pfs_event": int(p.progressed), "pfs_date": _on(p, pfs_day), "os_event": int(p.death_day is not None),
             "os_date": _on(p, os_day), "age": p.age, "hr_positive": p.hr_positive,
             "restart_date": _on(p, p.restart_day) if p.restart_day is not None else "",
             "restart_benefit": p.restart_benefit}
        )  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["restart_benefit"] = frame["restart_benefit"].astype("Int64")
    return frame


def _on(patient: DemoPatient, day: int) -> str:
    return (patient.enrollment + timedelta(days=int(day))).isoformat()


def write_truth(out: Path, plan: DemoPlan, samples: pd.DataFrame) -> None:
    write_tsv(samples, out / "truth" / "samples.tsv")
    write_tsv(patient_truth(plan), out / "truth" / "patients.tsv")
    write_tsv(sim.locus_truth_table(plan.panels, plan.chip, plan.noise), out / "truth" / "loci.tsv")


def patient_truth(plan: DemoPlan) -> pd.DataFrame:
    rows = []
    for p in plan.patients:
        row = {k: v for k, v in asdict(p).items() if k != "enrollment"}
        rows.append({"patient_id": p.patient_id, "enrollment_date": p.enrollment.isoformat(),
                     "mrd_course": p.mrd_course, "progressed": int(p.progressed), **row})  # fmt: skip
    frame = pd.DataFrame(rows)
    for column in ("conversion_day", "death_day", "restart_day", "restart_benefit"):
        frame[column] = frame[column].astype("Int64")
    return frame


def demo_config(folder: str, plan: DemoPlan) -> dict[str, Any]:
    """The run's config: the keys of config/config.yaml, every one set (snakemake merges a --configfile into
    the Snakefile's default config, so a key left out here would come from config/config.yaml)."""
    batches = sorted({s.batch for s in plan.samples})
    return {
        "study_name": f"STOP-HER2 (TBCRC 062) MRD correlative study: simulated demo cohort (seed {plan.seed})",
        "report_date": plan.design.data_cutoff.isoformat(),
        "samples": [f"{folder}/{batch}/samples.tsv" for batch in batches],
        "patients": f"{folder}/patients.tsv",
        "clinical": f"{folder}/clinical.tsv",
        "reference": f"{folder}/reference/genome.fa.gz",
        "samples_per_job": DEMO_SAMPLES_PER_JOB,
        "panel": {"weight_info_field": "CCF", "on_invalid_record": "skip"},
        "counting": {
            "min_mapq": 20,
            "min_baseq": 20,
            "require_proper_pair": False,
            "dedup": "auto",
            "umi_tag": "RX",
            "umi_mismatches": 1,
            "umi_duplex": False,
            "consensus_fraction": 0.6,
            "merge_mates": True,
            "engine": "auto",
        },
        "background": {},
        "calling": {"false_positive_rate": 0.01},
        "clinical_join": {"baseline_window_days_before": 30, "baseline_window_days_after": 7},
        "survival": {
            "covariates": ["age", "hr_positive"],
            "landmarks_months": [3, 6, 12],
            "timepoints_months": [6, 12, 24],
        },
        "report": {},
    }


def write_config(out: Path, plan: DemoPlan) -> None:
    folder = out.as_posix()
    header = (
        f"{CONFIG_MARK} (seed {plan.seed}, {len(plan.patients)} patients). Run from the folder\n"
        f"# `mrdtrack demo` ran in: snakemake --cores 2 --configfile {folder}/config.yaml\n"
        "# Paths are relative to that folder, as in config/config.yaml; see config/README.md for every key.\n"
    )
    text = yaml.safe_dump(demo_config(folder, plan), sort_keys=False, default_flow_style=False)
    (out / "config.yaml").write_text(header + text)


def prepare_folder(folder: str | Path, overwrite: bool) -> None:
    """Refuse a folder holding anything; with `overwrite`, replace one that an earlier `mrdtrack demo` wrote
    (its config.yaml says so), and still refuse any other: --overwrite must never delete a user's data."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(
            f"{path} is not empty: choose another folder, or pass --overwrite to replace a demo"
        )
    config = path / "config.yaml"
    if not config.is_file() or not config.read_text().startswith(CONFIG_MARK):
        raise FileExistsError(f"{path} does not hold an mrdtrack demo (no config.yaml written by `mrdtrack "
                              "demo`): not replacing it; choose another folder")  # fmt: skip
    shutil.rmtree(path)


def worker_count(requested: int) -> int:
    """At most the machine's CPUs: more workers than cores only add memory."""
    return max(1, min(requested, os.cpu_count() or 1))


def run_demo_command(folder: str, seed: int | None, n_patients: int, threads: int, overwrite: bool) -> int:
    """`mrdtrack demo`: write the study and say how to run the workflow on it."""
    if n_patients < 2:
        print("mrdtrack demo: --patients must be at least 2 (one per cohort)", file=sys.stderr)
        return 2
    try:
        prepare_folder(folder, overwrite)
    except FileExistsError as error:
        print(f"mrdtrack demo: {error}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    plan = plan_demo(DemoDesign(n_patients=n_patients), DEFAULT_SEED if seed is None else seed)
    written = write_demo(folder, plan, worker_count(threads))
    counts = pd.Series([s.sample_type for s in plan.samples]).value_counts()
    cohorts = pd.Series([p.cohort for p in plan.patients]).value_counts()
    print(
        f"mrdtrack demo: {len(plan.patients)} patients ({cohorts.get('stop', 0)} stop, "
        f"{cohorts.get('continue', 0)} continue), {counts.get('plasma', 0)} plasma, {counts.get('normal', 0)} "
        f"normal and {counts.get('control', 0)} control samples in {folder} "
        f"({written['bytes'] / 1e6:.0f} MB, {time.perf_counter() - started:.0f} s).\n"
        f"Run the workflow on it from this folder:\n  snakemake --cores 2 --configfile {Path(folder).as_posix()}/config.yaml"
    )
    return 0
