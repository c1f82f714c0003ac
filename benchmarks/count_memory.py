"""Peak memory of counting one sample: a small BAM and a 10x larger one (10x the loci, same depth per locus).

Each count is a counting job as the workflow runs it (count_sample: the panel loci and the flank positions
around the sample's own patient's loci, in one pass of the BAM; count_speed.JOB) in a child process whose
resident set size (RSS, including its children) is sampled with psutil every 5 ms. Counting streams the
alignments locus by locus and tallies the flanks in batches, so the peak should stay roughly flat as the file
grows: the script prints both figures and their ratio, and exits 1 when the larger BAM needs more than
`--max-ratio` times the memory of the small one.

    python benchmarks/count_memory.py [--loci 50] [--molecules 1000] [--copies 3] [--max-ratio 1.5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from count_speed import PATIENT, build_labelled_bam, job_command  # noqa: E402


def peak_rss_mib(command: list[str], interval: float = 0.005) -> float:
    """Peak RSS (MiB) of `command` and its children, sampled every `interval` seconds until it exits."""
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            rss = process.memory_info().rss
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
            peak = max(peak, rss)
        time.sleep(interval)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return peak / 2**20


def count_command(files: dict[str, Path], output: Path) -> list[str]:
    return job_command(files, output, 1, "auto", PATIENT)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loci", type=int, default=50, help="loci of the small BAM (the large one has 10x)")
    parser.add_argument("--molecules", type=int, default=1000, help="unique molecules per locus")
    parser.add_argument("--copies", type=int, default=3, help="read pairs per molecule (PCR duplicates)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per BAM; the largest peak is kept")
    parser.add_argument("--max-ratio", type=float, default=1.5, help="fail above this large/small peak ratio")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mrdtrack-count-memory-"))
    figures = {}
    for label, n_loci in (("small", args.loci), ("large", args.loci * 10)):
        files, size_mb = build_labelled_bam(workdir, label, n_loci, args.molecules, args.copies)
        folder = files["bam"].parent
        peak = max(peak_rss_mib(count_command(files, folder / "counts.tsv")) for _ in range(args.repeats))
        figures[label] = (size_mb, peak)
        print(f"  {label}: {size_mb:8.1f} MB BAM -> peak RSS {peak:7.1f} MiB", flush=True)
    (small_size, small_peak), (large_size, large_peak) = figures["small"], figures["large"]
    ratio = large_peak / small_peak
    print(f"\ncounting job (panel loci and flanks) peak RSS: {small_peak:.1f} MiB ({small_size:.1f} MB BAM) -> {large_peak:.1f} MiB "
          f"({large_size:.1f} MB BAM): x{ratio:.2f} memory for x{large_size / small_size:.1f} data "
          f"(limit x{args.max_ratio})")  # fmt: skip
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    raise SystemExit(main())
