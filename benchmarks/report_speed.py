"""How long does the investigator report take for a large cohort? Target: under 10 s (issue #6).

Builds synthetic producer tables (docs/tables.md) for 100 patients x 8 plasma samples with the test suite's
fixture builder (tests/test_report.py), then times `mrdtrack.report.write_report` (page + per-figure HTML files,
no static images) several times in this process and prints each run and the median.

    python benchmarks/report_speed.py [--patients 100] [--samples 8] [--repeats 5] [--target 10] [--workdir DIR]

Exits 1 when the median is above the target.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fixture builder lives with the tests (conftest gives REPO)

from test_report import build_fixture  # noqa: E402

from mrdtrack.report import ReportSettings, write_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--samples", type=int, default=8, help="plasma samples per patient")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=10.0, help="seconds; exit 1 when the median is above")
    parser.add_argument(
        "--workdir", type=Path, help="keep the inputs and the report here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    folder = args.workdir or Path(tempfile.mkdtemp(prefix="report_speed."))
    try:
        start = time.perf_counter()
        cohort = build_fixture(folder / "results", n_patients=args.patients, samples_per_patient=args.samples)
        print(
            f"inputs: {args.patients} patients x {args.samples} samples, built in {time.perf_counter() - start:.1f} s"
        )
        times = []
        for i in range(args.repeats):
            start = time.perf_counter()
            report = write_report(
                cohort.inputs, folder / "report/mrd_report.html", folder / "report/figures", ReportSettings()
            )
            times.append(time.perf_counter() - start)
            print(f"run {i + 1}: {times[-1]:.2f} s ({len(report.html) / 1e6:.1f} MB page)")
        median = statistics.median(times)
        verdict = "OK" if median < args.target else "TOO SLOW"
        print(f"median {median:.2f} s over {args.repeats} runs (min {min(times):.2f}, max {max(times):.2f}); "
              f"target < {args.target:g} s: {verdict}")  # fmt: skip
        return 0 if median < args.target else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
