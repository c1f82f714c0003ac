"""How long does calling take as the cohort grows, and how much do worker processes save?

Calling scores every plasma and control sample against every other patient's panel (the null scores that
calibrate the threshold), then each plasma sample at its own panel with its LOD95, so its work grows with
samples x patients. This simulates the detection benchmark's clinical cohort (benchmarks/detection.py: per
patient 7 plasma samples of the dilution series, 3 TF-0 plasma samples and a matched normal, plus 20 healthy
controls; 40 loci x 3,000 molecules per locus) for `--patients` patients, calls it with 1 and with `--workers`
processes (fragment lengths weigh in, as by default), checks that both give the same tables byte for byte and
prints the wall times.

    python benchmarks/call_speed.py [--patients 20] [--workers 2]

Exits 1 when the tables differ.
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

from mrdtrack.background import BackgroundSettings, build_background  # noqa: E402
from mrdtrack.caller import CallResult, CallSettings  # noqa: E402
from mrdtrack.tables import write_tsv  # noqa: E402

TABLES = ("calls", "loci", "null_scores")


def timed_call(cohort, background, workers: int) -> tuple[CallResult, float]:
    started = time.perf_counter()
    result = call_simulated(cohort, background, CallSettings(), workers)
    return result, time.perf_counter() - started


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
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    cohort = simulate_cohort(SCENARIOS["clinical"], Options(replicates=args.patients))
    background = build_background(cohort.counts, cohort.samples, BackgroundSettings())
    plasma = (cohort.samples["sample_type"] == "plasma").sum()
    one, one_seconds = timed_call(cohort, background, 1)
    print(
        f"{args.patients} patients, {len(cohort.samples)} samples ({plasma} plasma): "
        f"{len(one.null_scores)} null scores, {plasma} calls with LOD95"
    )
    print(f"1 process: {one_seconds:.1f} s")
    many, many_seconds = timed_call(cohort, background, args.workers)
    print(f"{args.workers} processes: {many_seconds:.1f} s ({one_seconds / many_seconds:.2f}x faster)")
    identical = same_tables(one, many)
    print(f"calls, loci and null scores identical: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
