"""How long does `snakemake -n` take on a large cohort? (Cluster executors re-run the Snakefile in every job.)

Generates a cohort of N samples (default 5,000: 500 patients x 8 plasma samples + controls + normals) as sheets
with empty placeholder BAM/BAI files (a dry run opens no alignment), then times `snakemake --dry-run` on it.
With `--profile`, one more dry run under cProfile says where the time goes: the share spent in mrdtrack's own
code (sheet parsing and checks in `mrdtrack.inputs.sheets`, the workflow's input and resource functions in
workflow/rules/*.smk) against Snakemake's (DAG building, scheduling).

With `--panel-records N`, every patient's panel is a genome-wide signature: a bgzipped, indexed VCF of N SNVs
(benchmarks/panel_speed.py writes it, on a random 100 Mb reference), instead of an empty VCF.

    python benchmarks/dryrun_scale.py [--samples 5000] [--repeats 3] [--workdir DIR] [--profile]
                                      [--panel-records 20000]
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panel_speed import write_reference, write_vcf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VCF = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def make_cohort(folder: Path, n_samples: int, panel_records: int = 0) -> Path:
    """Sheets and placeholder files for `n_samples` samples (panels of `panel_records` SNVs each, or empty);
    returns the config path."""
    n_patients = max(n_samples // 10, 1)
    (folder / "bams").mkdir(parents=True, exist_ok=True)
    (folder / "panels").mkdir(exist_ok=True)
    patients = ["patient_id\tpanel_vcf"]
    clinical = ["patient_id\tcohort\tenrollment_date\tpfs_event\tpfs_date\tos_event\tos_date"]
    samples = ["sample_id\tpatient_id\tsample_type\tcollection_date\tbam"]
    signature = None
    if panel_records:
        rng = np.random.default_rng(3)
        reference, sequences = write_reference(folder, rng)
        signature = write_vcf(folder / "signature.vcf.gz", sequences, panel_records, rng)
    for p in range(n_patients):
        patient = f"P{p:05d}"
        if signature is None:
            (folder / "panels" / f"{patient}.vcf").write_text(VCF)
            patients.append(f"{patient}\tpanels/{patient}.vcf")
        else:  # hard links: one signature's bytes, a file per patient
            for suffix in ("", ".tbi"):
                target = folder / "panels" / f"{patient}.vcf.gz{suffix}"
                target.unlink(missing_ok=True)
                os.link(Path(f"{signature}{suffix}"), target)
            patients.append(f"{patient}\tpanels/{patient}.vcf.gz")
        clinical.append(f"{patient}\tstop\t2024-01-01\t0\t2025-01-01\t0\t2025-01-01")
    for s in range(n_samples):
        kind, patient = _sample_kind(s, n_patients)
        name = f"S{s:06d}"
        for suffix in (".bam", ".bam.bai"):
            (folder / "bams" / f"{name}{suffix}").touch()
        samples.append(f"{name}\t{patient}\t{kind}\t2024-01-01\tbams/{name}.bam")
    for name, lines in (("samples.tsv", samples), ("patients.tsv", patients), ("clinical.tsv", clinical)):
        (folder / name).write_text("\n".join(lines) + "\n")
    if signature is None:
        (folder / "ref.fa").write_text(">chr1\nACGT\n")
        (folder / "ref.fa.fai").write_text("chr1\t4\t6\t4\t5\n")
    config = {
        "samples": "samples.tsv",
        "patients": "patients.tsv",
        "clinical": "clinical.tsv",
        "reference": "ref.fa" if signature is None else "genome.fa",
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def _sample_kind(index: int, n_patients: int) -> tuple[str, str]:
    if index % 10 == 9:
        return ("control", "") if index % 20 == 9 else ("normal", f"P{(index // 10) % n_patients:05d}")
    return "plasma", f"P{(index // 10) % n_patients:05d}"


def dry_run(folder: Path, config: Path, profile: Path | None = None) -> float:
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    command = [sys.executable, *profiler, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
               "--directory", str(folder), "--configfile", str(config), "--dry-run", "--quiet", "all",
               "--cores", "1"]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"dry run failed:\n{result.stderr[-3000:]}")
    return elapsed


def own_share(profile: Path) -> tuple[float, float]:
    """(seconds in mrdtrack's code, total seconds) of a profiled run. mrdtrack's code: the cumulative time of
    the outermost calls into src/mrdtrack, and the workflow's own functions in workflow/rules (input and
    resource functions, called by Snakemake for every job), without what they call back into Snakemake."""
    stats = pstats.Stats(str(profile))
    own = 0.0
    for (path, _line, name), (_cc, _nc, self_time, cumulative, callers) in stats.stats.items():
        ours = "/src/mrdtrack/" in path
        rules = "/workflow/rules/" in path and name != "<module>"
        if ours and not any("/src/mrdtrack/" in caller[0] for caller in callers):
            own += cumulative
        elif rules:
            own += self_time
    return own, stats.total_tt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--profile", action="store_true", help="one more run under cProfile: mrdtrack's share"
    )
    parser.add_argument("--panel-records", type=int, default=0, help="SNVs per panel VCF (0: empty VCFs)")
    args = parser.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="mrdtrack-dryrun-"))
    config = make_cohort(folder, args.samples, args.panel_records)
    (folder / "config").mkdir(exist_ok=True)
    shutil.copy(config, folder / "config" / "config.yaml")
    times = [dry_run(folder, config) for _ in range(args.repeats)]
    panels = f", panels of {args.panel_records:,} SNVs" if args.panel_records else ""
    print(f"snakemake --dry-run on {args.samples} samples{panels}: median {statistics.median(times):.1f} s "
          f"(runs: {', '.join(f'{t:.1f}' for t in times)}; target < 15 s)")  # fmt: skip
    if args.profile:
        profile = folder / "dryrun.prof"
        dry_run(folder, config, profile)
        own, total = own_share(profile)
        print(f"under cProfile: {total:.0f} s, of which mrdtrack's own code {own:.1f} s ({own / total:.1%}; "
              "target < 10%)")  # fmt: skip


if __name__ == "__main__":
    main()
