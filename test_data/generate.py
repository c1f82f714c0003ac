"""Regenerate the bundled demo dataset in test_data/ from a fixed seed.

    python test_data/generate.py

Deterministic and idempotent: it removes what it generated before and rewrites byte-identical files (with the
same versions of numpy, pysam/htslib and zlib). Everything except README.md and this script is generated.
See README.md for what the files are and what the truth tables mean.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mrdtrack import simulation as sim
from mrdtrack.tables import write_tsv

SEED = 20230520  # chosen so that every designed feature is visible at this shallow depth (check_story)
OUT = Path(__file__).resolve().parent
GENERATED = ["reference", "panels", "batch1", "batch2", "truth", "patients.tsv", "clinical.tsv"]
CONTIGS = {"chr1": 120_000, "chr2": 95_000, "chr3": 70_000}
BATCH2_FROM = date(2024, 1, 1)  # samples collected from then on were sequenced in the second lab batch
CHIP_VAF = 0.03
NOISE_RATE = 0.01
# Mean unique molecules per locus, kept modest to fit the ~12 MB budget: plasma scales with the sample's cfDNA
# input; white-blood-cell DNA is plentiful, so matched normals are deeper than the healthy-control plasmas.
PLASMA_MOLECULES = 44.0
CONTROL_MOLECULES = 20.0
NORMAL_MOLECULES = 50.0


@dataclass(frozen=True)
class Patient:
    patient_id: str
    n_loci: int
    with_ccf: bool
    vcf_gz: bool
    cohort: str
    enrollment: date
    age: int
    hr_positive: int
    pfs_days: int  # to progression, or to last follow-up when pfs_event is 0
    pfs_event: int
    os_days: int
    os_event: int
    restart_days: int | None = None
    restart_benefit: int | None = None
    has_normal: bool = False
    visits: tuple[tuple[int, float], ...] = ()  # (days from enrollment, true tumor fraction)


PATIENTS = [
    # Continues anti-HER2, never MRD positive, never progresses; carries the CHIP variant.
    Patient("P01", 16, True, False, "continue", date(2023, 5, 15), 58, 1, 686, 0, 686, 0,
            has_normal=True, visits=((-12, 0.0), (91, 0.0), (273, 0.0))),
    # Stops, stays negative and progression-free.
    Patient("P02", 18, False, True, "stop", date(2023, 6, 5), 64, 0, 695, 0, 695, 0,
            visits=((-5, 0.0), (98, 0.0), (280, 0.0))),
    # Stops, converts to positive months before progression; restarting anti-HER2 helps.
    Patient("P03", 28, True, True, "stop", date(2023, 7, 10), 51, 1, 330, 1, 691, 0, 345, 1,
            has_normal=True, visits=((-20, 0.0), (92, 0.0), (184, 0.002), (265, 0.012))),
    # Continues, positive from baseline, progresses and dies; last sample stored as CRAM.
    Patient("P04", 36, False, False, "continue", date(2023, 8, 21), 67, 1, 236, 1, 640, 1,
            has_normal=True, visits=((-3, 0.008), (90, 0.004), (181, 0.012))),
    # Stops, low positive at baseline, rises, progresses; restart does not help.
    Patient("P05", 32, False, True, "stop", date(2023, 10, 2), 49, 0, 205, 1, 637, 0, 220, 0,
            visits=((2, 0.006), (95, 0.010), (170, 0.015))),
    # Stops, negative throughout, no sample in the baseline window (first draw at screening, 75 days before);
    # its panel holds the noisy locus.
    Patient("P06", 20, True, False, "stop", date(2023, 11, 13), 72, 1, 595, 0, 595, 0,
            visits=((-75, 0.0), (120, 0.0), (300, 0.0))),
]  # fmt: skip

CONTROLS = [date(2023, 6, 20), date(2023, 9, 4), date(2023, 11, 27), date(2024, 2, 12), date(2024, 5, 6),
            date(2024, 8, 19)]  # fmt: skip
CRAM_SAMPLE = "P04_T3"


@dataclass(frozen=True)
class Sample:
    sample_id: str
    patient_id: str
    sample_type: str
    collected: date
    tf: float
    plasma_ml: float | None
    cfdna_ng: float | None

    @property
    def batch(self) -> str:
        return "batch2" if self.collected >= BATCH2_FROM else "batch1"

    @property
    def fmt(self) -> str:
        return "cram" if self.sample_id == CRAM_SAMPLE else "bam"


def sample_plan(rng: np.random.Generator) -> list[Sample]:
    """Plasma visits, matched normals (drawn with the first visit) and healthy controls."""
    samples = []
    for p in PATIENTS:
        for k, (day, tf) in enumerate(p.visits, start=1):
            ml, ng = _plasma_yield(rng)
            samples.append(Sample(f"{p.patient_id}_T{k}", p.patient_id, "plasma", _day(p, day), tf, ml, ng))
        if p.has_normal:
            samples.append(
                Sample(f"{p.patient_id}_N", p.patient_id, "normal", _day(p, p.visits[0][0]), 0, None, None)
            )
    for k, collected in enumerate(CONTROLS, start=1):
        ml, ng = _plasma_yield(rng)
        samples.append(Sample(f"CTRL{k:02d}", "", "control", collected, 0.0, ml, ng))
    return samples


def _plasma_yield(rng: np.random.Generator) -> tuple[float, float]:
    plasma_ml = round(float(rng.uniform(3.5, 9.0)), 1)
    return plasma_ml, round(plasma_ml * float(rng.lognormal(np.log(3.0), 0.4)), 1)


def _day(patient: Patient, days: int) -> date:
    return patient.enrollment + timedelta(days=days)


def make_panels(reference: sim.Reference, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    panels: dict[str, pd.DataFrame] = {}
    taken: list[tuple[str, int]] = []
    for p in PATIENTS:
        panel = sim.make_panel(reference, p.n_loci, rng, avoid=taken, with_ccf=p.with_ccf)
        taken += list(zip(panel["chrom"], panel["pos"], strict=True))
        panels[p.patient_id] = panel
    return panels


def _key(row: pd.Series) -> sim.LocusKey:
    return (str(row["chrom"]), int(row["pos"]), str(row["ref"]), str(row["alt"]))


def special_loci(
    reference: sim.Reference, panels: dict[str, pd.DataFrame]
) -> tuple[sim.LocusKey, sim.LocusKey]:
    """The CHIP variant (a C>T or G>A of P01, typical of clonal hematopoiesis) and the noisy locus (P06), each
    the best-captured candidate so that the shallow demo data show them in every sample."""
    p01 = panels["P01"]
    transitions = p01[(p01["ref"] + p01["alt"]).isin(["CT", "GA"])]
    candidates = transitions if len(transitions) else p01
    chip = _key(candidates.iloc[int(np.argmax(sim.capture_efficiency(reference, candidates)))])
    p06 = panels["P06"]
    noisy = _key(p06.iloc[int(np.argmax(sim.capture_efficiency(reference, p06)))])
    return chip, noisy


def settings_for(sample: Sample, noisy: sim.LocusKey) -> sim.SimulationSettings:
    """Lab batch 2 ran a duplicate marker and sequenced a little deeper (more PCR copies per molecule)."""
    batch2 = sample.batch == "batch2"
    if sample.sample_type == "normal":
        molecules, family = NORMAL_MOLECULES, 1.5
    elif sample.sample_type == "control":
        molecules, family = CONTROL_MOLECULES, 2.0
    else:
        molecules, family = PLASMA_MOLECULES * (sample.cfdna_ng / 20.0) ** 0.3, 2.0
    return sim.SimulationSettings(
        molecules_per_locus=float(molecules),
        family_size_mean=family + (0.2 if batch2 else 0.0),
        duplicate_marked=batch2,
        oxog_rate=3e-4 if batch2 else 1.5e-4,
        locus_noise={noisy: NOISE_RATE},
        library=f"{sample.sample_id}-lib",
        platform_unit=f"SIMFLOW{2 if batch2 else 1}:1",
    )


def simulate_all(
    reference: sim.Reference,
    panels: dict[str, pd.DataFrame],
    samples: list[Sample],
    chip: sim.LocusKey,
    noisy: sim.LocusKey,
    write: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate (and write) every alignment file; return the truth tables."""
    loci = pd.concat(panels.values(), ignore_index=True)[["chrom", "pos", "ref", "alt"]]
    truth_rows, counts = [], []
    for index, s in enumerate(samples):
        # One independent stream per sample, so editing one sample leaves the others' files unchanged.
        rng = np.random.default_rng([SEED, index])
        tumor = panels[s.patient_id] if s.sample_type == "plasma" else None
        chip_vaf = {chip: CHIP_VAF} if s.patient_id == "P01" else None
        settings = settings_for(s, noisy)
        simulated = sim.simulate_sample(
            reference, loci, tumor, s.tf, settings, rng, sample_id=s.sample_id, chip=chip_vaf
        )
        if write:
            sim.write_bam(simulated, OUT / s.batch / "bams" / f"{s.sample_id}.{s.fmt}", reference, fmt=s.fmt)
        mode = sim.oracle_dedup_mode(simulated.records, "auto")
        counts.append(sim.expected_counts(simulated, mode="auto"))
        truth_rows.append(
            {"sample_id": s.sample_id, "patient_id": s.patient_id, "sample_type": s.sample_type, "true_tf": s.tf,
             "dedup_mode_expected": mode, "duplicate_marked": int(settings.duplicate_marked), "file_format": s.fmt}
        )  # fmt: skip
    return pd.DataFrame(truth_rows), pd.concat(counts, ignore_index=True)


def check_story(truth: pd.DataFrame, counts: pd.DataFrame, loci: pd.DataFrame) -> list[str]:
    """What the demo is meant to show, checked on the truth: depth is shallow, so an unlucky seed could hide a
    designed feature. Returns the problems (empty when every feature is visible)."""
    special = loci[loci["special"] != ""]
    counts = counts.merge(special[["chrom", "pos", "special"]], on=["chrom", "pos"], how="left")
    problems = []
    chip = counts[counts["special"] == "chip"].set_index("sample_id")["alt_molecules"]
    plasma = chip[truth.loc[(truth["patient_id"] == "P01") & (truth["sample_type"] == "plasma"), "sample_id"]]
    if chip["P01_N"] < 2 or plasma.sum() < 3 or (plasma > 0).sum() < 2:
        problems.append(f"CHIP variant not visible enough in P01: {chip.filter(like='P01').to_dict()}")
    noisy = counts[counts["special"] == "noisy"]
    if (noisy["alt_molecules"] > 0).mean() < 1 / 3:
        problems.append("noisy locus shows ALT in fewer than a third of the samples")
    own = counts.merge(loci[["patient_id", "chrom", "pos"]], on=["chrom", "pos"])
    own = own.merge(truth[["sample_id", "patient_id", "true_tf"]], on=["sample_id", "patient_id"])
    per_sample = own[own["special"].isna()].groupby(["sample_id", "true_tf"])
    for (sample_id, tf), group in per_sample:
        tumor_alt, alt = group["true_tumor_alt_molecules"].sum(), group["alt_molecules"].sum()
        need = 4 if tf >= 0.01 else 3 if tf >= 0.005 else 0
        if tumor_alt < need or (tf == 0 and alt > 1):
            problems.append(f"{sample_id} (TF {tf}): {tumor_alt} tumor ALT, {alt} ALT molecules at its loci")
    return problems


def write_sheets(samples: list[Sample], panels: dict[str, pd.DataFrame], reference: sim.Reference) -> None:
    for batch in ("batch1", "batch2"):
        rows = [
            {"sample_id": s.sample_id, "patient_id": s.patient_id, "sample_type": s.sample_type,
             "collection_date": s.collected.isoformat(), "bam": f"bams/{s.sample_id}.{s.fmt}", "batch": batch,
             "plasma_ml": s.plasma_ml, "cfdna_ng": s.cfdna_ng}
            for s in samples if s.batch == batch
        ]  # fmt: skip
        write_tsv(pd.DataFrame(rows), OUT / batch / "samples.tsv")
    patient_rows = []
    for p in PATIENTS:
        name = f"{p.patient_id}.vcf" + (".gz" if p.vcf_gz else "")
        sim.write_panel_vcf(panels[p.patient_id], OUT / "panels" / name, reference, compress=p.vcf_gz)
        patient_rows.append({"patient_id": p.patient_id, "panel_vcf": f"panels/{name}"})
    write_tsv(pd.DataFrame(patient_rows), OUT / "patients.tsv")
    write_tsv(clinical_table(), OUT / "clinical.tsv")


def clinical_table() -> pd.DataFrame:
    rows = []
    for p in PATIENTS:
        rows.append(
            {"patient_id": p.patient_id, "cohort": p.cohort, "enrollment_date": p.enrollment.isoformat(),
             "pfs_event": p.pfs_event, "pfs_date": _day(p, p.pfs_days).isoformat(), "os_event": p.os_event,
             "os_date": _day(p, p.os_days).isoformat(), "age": p.age, "hr_positive": p.hr_positive,
             "restart_date": _day(p, p.restart_days).isoformat() if p.restart_days is not None else "",
             "restart_benefit": p.restart_benefit}
        )  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["restart_benefit"] = frame["restart_benefit"].astype("Int64")
    return frame


def locus_table(panels: dict[str, pd.DataFrame], chip: sim.LocusKey, noisy: sim.LocusKey) -> pd.DataFrame:
    """Every panel row with its weight and whether it is the CHIP variant or the noisy locus."""
    frames = [panel.assign(patient_id=pid, weight=sim.panel_weights(panel)) for pid, panel in panels.items()]
    table = pd.concat(frames, ignore_index=True)
    keys = [_key(row) for _, row in table.iterrows()]
    table["special"] = ["chip" if k == chip else "noisy" if k == noisy else "" for k in keys]
    table["chip_vaf"] = [CHIP_VAF if k == chip else 0.0 for k in keys]
    table["noise_rate"] = [NOISE_RATE if k == noisy else 0.0 for k in keys]
    return table[["patient_id", "chrom", "pos", "ref", "alt", "weight", "special", "chip_vaf", "noise_rate"]]


def clean() -> None:
    for name in GENERATED:
        path = OUT / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def report_sizes() -> None:
    total = 0
    for path in sorted(p for p in OUT.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        size = path.stat().st_size
        total += size
        print(f"{size:>10,d}  {path.relative_to(OUT)}")
    print(f"{total:>10,d}  total ({total / 1e6:.2f} MB)")


def main() -> None:
    started = time.time()
    clean()
    rng = np.random.default_rng(SEED)
    reference = sim.make_reference(rng, CONTIGS)
    sim.write_reference(reference, OUT / "reference" / "genome.fa.gz")
    panels = make_panels(reference, rng)
    chip, noisy = special_loci(reference, panels)
    samples = sample_plan(rng)
    write_sheets(samples, panels, reference)
    truth_samples, truth_counts = simulate_all(reference, panels, samples, chip, noisy)
    write_tsv(truth_samples, OUT / "truth" / "samples.tsv")
    write_tsv(truth_counts, OUT / "truth" / "locus_counts.tsv")
    loci = locus_table(panels, chip, noisy)
    write_tsv(loci, OUT / "truth" / "loci.tsv")
    report_sizes()
    problems = check_story(truth_samples, truth_counts, loci)
    if problems:
        raise SystemExit("the designed features are not all visible with this seed:\n" + "\n".join(problems))
    print(f"generated {len(samples)} samples in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
