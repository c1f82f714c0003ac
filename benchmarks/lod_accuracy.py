"""How close is the analytic LOD95 to the Monte Carlo one, and what does each cost?

For panels from the bundled demo's size (20 loci x 44 molecules) to a genome-wide signature (20,000 loci x 30
molecules), counts only and with fragment lengths (tumor fragments shorter), this draws one sample's loci
(molecules Poisson around the depth, background rates log-uniform 1e-5 to 5e-4), its null distribution as a
call would (Monte Carlo below `monte_carlo_max_expected` expected background molecules, chi-bar above), and then
its LOD95 by `lod_method: monte_carlo` with `--seeds` different draws (`lod_draws` tables each) and by
`lod_method: analytic`. It prints the Monte Carlo LODs' mean and spread, the analytic LOD's ratio to their mean
and its distance in Monte Carlo standard deviations, and the CPU time of each.

    python benchmarks/lod_accuracy.py [--seeds 5] [--lod-draws 1000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from mrdtrack.calling import (
    CallSettings,
    LengthClasses,
    LikelihoodTerms,
    lod95,
    null_distribution,
    seeded_rng,
)

THRESHOLD = 0.01


@dataclass(frozen=True)
class Panel:
    loci: int
    molecules: float


PANELS = (Panel(20, 44), Panel(40, 3000), Panel(500, 30), Panel(2000, 30), Panel(2000, 300), Panel(20000, 30))
QUICK = (Panel(20, 44), Panel(500, 30), Panel(2000, 30))


def length_classes() -> LengthClasses:
    """Six classes, tumor fragments shorter (ratio 5 down to 0.5); the last holds no fragment."""
    tumor = np.array([0.05, 0.25, 0.3, 0.2, 0.2, 0.0])
    normal = np.array([0.01, 0.09, 0.2, 0.3, 0.4, 0.0])
    return LengthClasses(np.zeros(1, dtype=np.int64), normal, tumor)


def compare(panel: Panel, classes: LengthClasses | None, seeds: int, draws: int) -> str:
    rng = np.random.default_rng([panel.loci, int(panel.molecules)])
    n = rng.poisson(panel.molecules, panel.loci)
    e = 10 ** rng.uniform(-5, np.log10(5e-4), panel.loci)
    terms = LikelihoodTerms.of_loci(n, e, np.ones(panel.loci))
    settings = CallSettings(lod_draws=draws)
    null = null_distribution(terms, settings, seeded_rng(1, "null"), classes)
    simulated, simulated_cpu = [], []
    for seed in range(seeds):
        began = time.process_time()
        simulated.append(
            lod95(
                terms,
                THRESHOLD,
                null,
                CallSettings(lod_draws=draws, lod_method="monte_carlo"),
                seeded_rng(seed, "lod"),
                classes,
            )  # fmt: skip
        )
        simulated_cpu.append(time.process_time() - began)
    began = time.process_time()
    analytic = lod95(
        terms, THRESHOLD, null, CallSettings(lod_method="analytic"), seeded_rng(0, "lod"), classes
    )
    analytic_cpu = time.process_time() - began
    mean, spread = float(np.mean(simulated)), float(np.std(simulated, ddof=1)) if seeds > 1 else float("nan")
    distance = (analytic - mean) / spread if spread > 0 else float("nan")
    return (
        f"| {panel.loci:,} x {panel.molecules:g} | {'lengths' if classes else 'counts'} | "
        f"{terms.expected_background():.2f} | {null.method} | {mean:.3g} | {spread / mean:.1%} | {analytic:.3g} | "
        f"{analytic / mean:.3f} | {distance:+.1f} | {np.median(simulated_cpu):.2f} s | {analytic_cpu:.2f} s |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="Monte Carlo LODs per panel")
    parser.add_argument("--lod-draws", type=int, default=CallSettings.lod_draws)
    parser.add_argument("--quick", action="store_true", help="the three smaller panels only")
    args = parser.parse_args(argv)
    print(
        f"LOD95 at p <= {THRESHOLD}: Monte Carlo ({args.seeds} seeds x {args.lod_draws} draws) vs analytic\n\n"
        "| loci x molecules | evidence | expected background | p-value | Monte Carlo mean | its sd | analytic | "
        "analytic / mean | (analytic - mean) / sd | Monte Carlo CPU | analytic CPU |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for panel in QUICK if args.quick else PANELS:
        for classes in (None, length_classes()):
            print(compare(panel, classes, args.seeds, args.lod_draws), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
