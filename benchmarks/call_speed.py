"""How long does calling take as the cohort grows, and how much do worker processes save?

Calling is a cohort step (every plasma and control sample scored against at most `calling.max_null_panels`
other patients' panels: the null scores that set the threshold) and then one call per plasma sample (its own
panel, with its LOD95): both linear in the samples. This simulates the detection benchmark's clinical cohort
(benchmarks/detection.py: per patient 6 plasma samples of the dilution series, 3 TF-0 plasma samples and a
matched normal, plus 20 healthy controls; 40 loci x 3,000 molecules per locus) and measures:

1. calling time for `--patients` N and 2N patients (so N and 2N samples at a fixed panel size per patient),
   in one process, and their ratio (linear: about 2);
2. the N cohort with `--workers` processes: the same tables byte for byte, and the speed-up;
3. with `--trial`, the trial's size: 82 patients (738 plasma samples) on `--workers` processes.

    python benchmarks/call_speed.py [--patients 10] [--workers 2] [--trial]

Exits 1 when the tables differ between 1 and `--workers` processes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection import SCENARIOS, Options, call_simulated, simulate_cohort  # noqa: E402

from mrdtrack.calling import BackgroundSettings, CallResult, CallSettings, build_background  # noqa: E402
from mrdtrack.tables import write_tsv  # noqa: E402

TABLES = ("calls", "loci", "null_scores")


def timed_call(patients: int, workers: int) -> tuple[CallResult, float, str]:
    cohort = simulate_cohort(SCENARIOS["clinical"], Options(replicates=patients))
    background = build_background(cohort.counts, cohort.samples, BackgroundSettings())
    started = time.perf_counter()
    result = call_simulated(cohort, background, CallSettings(), workers)
    seconds = time.perf_counter() - started
    plasma = int((cohort.samples["sample_type"] == "plasma").sum())
    size = (
        f"{patients} patients, {len(cohort.samples)} samples ({plasma} plasma): "
        f"{len(result.null_scores)} null scores, {plasma} calls with LOD95"
    )
    return result, seconds, size


def same_tables(first: CallResult, second: CallResult) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        for name in TABLES:
            for tag, result in (("1", first), ("2", second)):
                write_tsv(getattr(result, name), Path(folder) / f"{name}.{tag}.tsv")
        return all(
            (Path(folder) / f"{name}.1.tsv").read_bytes() == (Path(folder) / f"{name}.2.tsv").read_bytes()
            for name in TABLES
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trial", action="store_true", help="also call an 82-patient cohort")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    one, one_seconds, size = timed_call(args.patients, 1)
    print(f"N: {size}\n   1 process: {one_seconds:.1f} s")
    _, double_seconds, double_size = timed_call(2 * args.patients, 1)
    print(f"2N: {double_size}\n   1 process: {double_seconds:.1f} s")
    print(f"2N / N time: {double_seconds / one_seconds:.2f} (linear: 2; target <= 2.2)")
    many, many_seconds, _ = timed_call(args.patients, args.workers)
    print(f"N on {args.workers} processes: {many_seconds:.1f} s ({one_seconds / many_seconds:.2f}x faster)")
    identical = same_tables(one, many)
    print(f"calls, loci and null scores identical: {identical}")
    if args.trial:
        _, trial_seconds, trial_size = timed_call(82, args.workers)
        print(f"trial: {trial_size}\n   {args.workers} processes: {trial_seconds:.0f} s")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
