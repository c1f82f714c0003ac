"""A simulated, STOP-HER2-sized MRD study to run the whole workflow on: `mrdtrack demo DIR`.

The cohort follows the trial's design (TBCRC 062): 52 patients stop anti-HER2 therapy and 30 continue it, enrolled
over 18 months; a plasma draw within 30 days before enrollment, then one every ~91 days (jittered, a few missed)
for up to 3 years or until progression, sometimes one more after it; matched normals (white blood cells) for some
patients; healthy-donor controls. Progression follows an MRD-dependent hazard: patients with tumor DNA at baseline
progress more, and earlier, in both cohorts, and most patients who progress from a negative baseline convert
months before the radiographic progression, so lead times show. A quarter of those progress without detectable
tumor DNA (low shedders), as in real cohorts. The event times are drawn by stratified sampling per cohort and
baseline group, so every group's event count stays close to its expectation whatever the seed.

Sequencing follows pooled-capture MRD assays (INVAR/TAPAS style): patients are grouped, in enrollment order, into
capture pools of four (`pool_size`), and every sample of a pool is captured with the pool's combined panel. A
sample's molecules at the other patients' loci of its pool are same-sample background for the workflow; at loci
of other pools it has no molecules at all. Healthy controls are captured with one pool each. Every file is simulated by
`simulate_sample` from its own seed (the study seed and the sample's name), in worker processes, so the same
command writes byte-identical files whatever the number of workers.

The truth (`truth/`) says what every file holds: each sample's true tumor fraction and tumor molecules, each
patient's MRD course and latent progression time, the CHIP and noisy loci.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mrdtrack.processes import in_parallel
from mrdtrack.simulation.bam_bulk import write_bam_fast
from mrdtrack.simulation.demo_plan import (
    DEFAULT_SEED,
    DemoPatient,
    DemoPlan,
    DemoSample,
    DemoStudy,
    plan_demo,
)
from mrdtrack.simulation.panels import locus_truth_table, write_panel_vcf
from mrdtrack.simulation.records import SimulationSettings
from mrdtrack.simulation.reference import write_reference
from mrdtrack.simulation.simulate import simulate_sample, warm_up
from mrdtrack.tables import write_tsv
from mrdtrack.vocabulary import LOCUS_KEY

# The config's first line: marks a folder that --overwrite may replace.
CONFIG_MARK = "# Written by `mrdtrack demo`"
# The demo runs on a laptop: 25 samples per counting or calling job start Python ~45 times instead of ~1,000.
DEMO_SAMPLES_PER_JOB = 25

BATCH_SETTINGS = (  # per lab batch: duplicates marked (0x400), extra read pairs per molecule, 8-oxoG rate
    (False, 0.0, 1.5e-4),
    (True, 0.2, 3e-4),
    (False, 0.1, 2e-4),
)


def write_demo(folder: str | Path, plan: DemoPlan, workers: int = 2) -> dict[str, Any]:
    """Write the plan's reference, panels, sheets, BAMs, truth and config.yaml under `folder`.

    Paths in config.yaml start with `folder` as given, so snakemake runs from where this ran (as
    config/config.yaml's paths are relative to the repository root).

    Parameters
    ----------
    folder
        Where to write; it must be empty or absent.
    plan
        The cohort (`plan_demo`).
    workers
        Processes simulating BAMs; the files are identical whatever the number.

    Returns
    -------
    dict
        `samples` (number of samples) and `bytes` (size of everything written).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    write_reference(plan.reference, out / "reference" / "genome.fa.gz")
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
        write_panel_vcf(panel, out / name, plan.reference, compress=True)
        rows.append({"patient_id": patient_id, "panel_vcf": name})
    write_tsv(pd.DataFrame(rows), out / "patients.tsv")


def sample_settings(plan: DemoPlan, sample: DemoSample) -> SimulationSettings:
    """A library's depth (plasma scales with its cfDNA input) and its lab batch's chemistry."""
    batch = int(sample.batch.removeprefix("batch")) - 1
    marked, extra_copies, oxog = BATCH_SETTINGS[batch % len(BATCH_SETTINGS)]
    study = plan.study
    if sample.sample_type == "normal":
        molecules = study.normal_molecules
    else:
        molecules = study.plasma_molecules * (sample.cfdna_ng / 20.0) ** 0.3
    return SimulationSettings(
        molecules_per_locus=float(molecules),
        family_size_mean=study.family_size_mean + extra_copies,
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
    warm_up(plan.reference)  # caches and compiled code, made once before the workers fork
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
    simulated = simulate_sample(
        plan.reference, pools[sample.pool], own, sample.tf, sample_settings(plan, sample), rng,
        sample_id=sample.sample_id, chip=chip,
    )  # fmt: skip
    write_bam_fast(simulated, out / sample.batch / bam_path(sample), plan.reference, plan.study.bam_level)
    truth = simulated.truth()
    if sample.patient_id:
        mine = plan.panels[sample.patient_id][LOCUS_KEY]
        truth = truth.merge(mine, on=LOCUS_KEY)
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
    write_tsv(locus_truth_table(plan.panels, plan.chip, plan.noise), out / "truth" / "loci.tsv")


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
        "report_date": plan.study.data_cutoff.isoformat(),
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
    """`mrdtrack demo`: write the study and say how to run the workflow on it.

    Parameters
    ----------
    folder
        Where to write the study.
    seed
        The study seed (None: the documented demo's).
    n_patients
        Cohort size, split as the trial's cohorts are.
    threads
        Worker processes (at most the machine's CPUs).
    overwrite
        Replace a folder an earlier `mrdtrack demo` wrote (never any other).

    Returns
    -------
    int
        The exit status: 0 written, 1 folder refused, 2 invalid arguments.
    """
    if n_patients < 2:
        print("mrdtrack demo: --patients must be at least 2 (one per cohort)", file=sys.stderr)
        return 2
    try:
        prepare_folder(folder, overwrite)
    except FileExistsError as error:
        print(f"mrdtrack demo: {error}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    plan = plan_demo(DemoStudy(n_patients=n_patients), DEFAULT_SEED if seed is None else seed)
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
