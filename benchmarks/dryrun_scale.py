"""How long does `snakemake -n` take on a large cohort? (Cluster executors re-run the Snakefile in every job.)

Generates a cohort of N samples (default 5,000: 500 patients x 8 plasma samples + controls + normals) as sheets
with empty placeholder BAM/BAI files (a dry run opens no alignment), then times `snakemake --dry-run` on it.

    python benchmarks/dryrun_scale.py [--samples 5000] [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VCF = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def make_cohort(folder: Path, n_samples: int) -> Path:
    """Sheets and placeholder files for `n_samples` samples; returns the config path."""
    n_patients = max(n_samples // 10, 1)
    (folder / "bams").mkdir(parents=True, exist_ok=True)
    (folder / "panels").mkdir(exist_ok=True)
    patients = ["patient_id\tpanel_vcf"]
    clinical = ["patient_id\tcohort\tenrollment_date\tpfs_event\tpfs_date\tos_event\tos_date"]
    samples = ["sample_id\tpatient_id\tsample_type\tcollection_date\tbam"]
    for p in range(n_patients):
        patient = f"P{p:05d}"
        (folder / "panels" / f"{patient}.vcf").write_text(VCF)
        patients.append(f"{patient}\tpanels/{patient}.vcf")
        clinical.append(f"{patient}\tstop\t2024-01-01\t0\t2025-01-01\t0\t2025-01-01")
    for s in range(n_samples):
        kind, patient = _sample_kind(s, n_patients)
        name = f"S{s:06d}"
        for suffix in (".bam", ".bam.bai"):
            (folder / "bams" / f"{name}{suffix}").touch()
        samples.append(f"{name}\t{patient}\t{kind}\t2024-01-01\tbams/{name}.bam")
    for name, lines in (("samples.tsv", samples), ("patients.tsv", patients), ("clinical.tsv", clinical)):
        (folder / name).write_text("\n".join(lines) + "\n")
    (folder / "ref.fa").write_text(">chr1\nACGT\n")
    (folder / "ref.fa.fai").write_text("chr1\t4\t6\t4\t5\n")
    config = {
        "samples": "samples.tsv",
        "patients": "patients.tsv",
        "clinical": "clinical.tsv",
        "reference": "ref.fa",
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def _sample_kind(index: int, n_patients: int) -> tuple[str, str]:
    if index % 10 == 9:
        return ("control", "") if index % 20 == 9 else ("normal", f"P{(index // 10) % n_patients:05d}")
    return "plasma", f"P{(index // 10) % n_patients:05d}"


def dry_run(folder: Path, config: Path) -> float:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
               "--directory", str(folder), "--configfile", str(config), "--dry-run", "--quiet", "all",
               "--cores", "1"]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"dry run failed:\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="mrdtrack-dryrun-"))
    config = make_cohort(folder, args.samples)
    (folder / "config").mkdir(exist_ok=True)
    shutil.copy(config, folder / "config" / "config.yaml")
    times = [dry_run(folder, config) for _ in range(args.repeats)]
    print(f"snakemake --dry-run on {args.samples} samples: median {statistics.median(times):.1f} s "
          f"(runs: {', '.join(f'{t:.1f}' for t in times)}; target < 15 s)")  # fmt: skip


if __name__ == "__main__":
    main()
