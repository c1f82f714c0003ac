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

With `--loci L` it measures instead one plasma sample's own call at a genome-wide panel size, as a workflow
call job makes it (`SampleCaller.call`, after the cohort step): `--patients` patients (4 by default here) of
`--loci` loci each, `--molecules` informative molecules per locus (30: plasma WGS at about 30x), every sample
holding every patient's loci (INVAR-style). It prints each call's CPU and wall time on one process, the
p-value and LOD methods the calls used and, with `--profile`, where one call's time goes (cProfile).
With `--flanks` each call also gets its flank table (`--flank-window` bp either side of each of its own panel
loci, less the 2 bp gap, every position at about its locus's depth, every ALT base at the benchmark's error
rates), so that its own null (`calling.synthetic_null_panels` synthetic panels) is drawn and scored as in the
workflow; the time to read that table (`mrdtrack.tables.read_table`) is printed apart.

    python benchmarks/call_speed.py [--patients 10] [--workers 2] [--trial]
    python benchmarks/call_speed.py --loci 2000 [--molecules 30] [--patients 4] [--calls 6] [--profile]
        [--lod-method auto|analytic|monte_carlo] [--flanks] [--flank-window 25]

Exits 1 when the tables differ between 1 and `--workers` processes.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection import SCENARIOS, Cohort, Options, Scenario, call_simulated, simulate_cohort  # noqa: E402

from mrdtrack.calling import (  # noqa: E402
    BackgroundSettings,
    CallResult,
    CallSettings,
    SampleCaller,
    build_background,
    calibrate,
)
from mrdtrack.calling.locus_classes import pyrimidine_class  # noqa: E402
from mrdtrack.flank_layout import compact_table  # noqa: E402
from mrdtrack.tables import read_table, write_tsv  # noqa: E402

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


BASES = np.array(list("ACGT"))
FLANK_GAP = 2  # counting.flank_gap's default


def flank_error_rates(ref: np.ndarray, alt: np.ndarray, context: np.ndarray) -> np.ndarray:
    """Per molecule error rate of each (ref, alt, trinucleotide) row, by the detection benchmark's classes:
    transitions 1e-5, transversions 5e-6, C>T at CpG +3e-4, 8-oxoG C>A +1e-4 (pyrimidine strand)."""
    keys = pd.Series(ref + alt + context)
    unique = keys.unique()
    rates = {}
    for key in unique:
        substitution, ctx, _ = pyrimidine_class(key[0], key[1], key[2:])
        rate = 1e-5 if substitution in ("C>T", "T>C") else 5e-6
        rate += 3e-4 if substitution == "C>T" and ctx[2] == "G" else 0.0
        rate += 1e-4 if substitution == "C>A" else 0.0
        rates[key] = rate
    return keys.map(rates).to_numpy(dtype=float)


def simulate_flanks(
    rng: np.random.Generator, loci: pd.DataFrame, depth: np.ndarray, window: int
) -> pd.DataFrame:
    """A flank table (`flanks` contract) around `loci` (chrom, pos): every position up to `window` bp either
    side but the gap, Poisson(its locus's `depth`) molecules, each ALT base at `flank_error_rates` times a
    per-position factor (log-normal, sd 0.5) and the sample's own factor (sd 0.25); ALT fragments 140-180 bp."""
    offsets = np.array([d for d in range(-window, window + 1) if abs(d) > FLANK_GAP])
    positions = len(loci) * len(offsets)
    chrom = np.repeat(loci["chrom"].to_numpy(), len(offsets))
    pos = (loci["pos"].to_numpy()[:, None] + offsets[None, :]).ravel()
    context_bases = BASES[rng.integers(0, 4, (positions, 3))]
    ref = context_bases[:, 1]
    context = np.char.add(np.char.add(context_bases[:, 0], ref), context_bases[:, 2])
    n = rng.poisson(np.repeat(np.maximum(depth, 1), len(offsets)))
    ref_index = np.searchsorted(BASES, ref)
    alt_index = (ref_index[:, None] + np.arange(1, 4)) % 4
    alt = BASES[alt_index]
    rate = flank_error_rates(np.repeat(ref, 3), alt.ravel(), np.repeat(context, 3)).reshape(positions, 3)
    factor = np.exp(0.5 * rng.standard_normal((positions, 1)) - 0.125) * np.exp(
        0.25 * rng.standard_normal() - 0.25**2 / 2
    )
    errors = rng.binomial(n[:, None], np.minimum(rate * factor, 0.1))
    ref_n = np.maximum(n - errors.sum(axis=1), 0)
    at = np.arange(positions)
    molecules, f1r2 = np.zeros((positions, 4), dtype=np.int64), np.zeros((positions, 4), dtype=np.int64)
    molecules[at, ref_index], molecules[at[:, None], alt_index] = ref_n, errors
    f1r2[at[:, None], alt_index] = rng.binomial(errors, 0.5)
    f1r2[at, ref_index] = rng.binomial(ref_n, 0.5)
    lengths = np.full((positions, 4), "", dtype=object)
    cells = np.nonzero(errors)
    lengths[cells[0], alt_index[cells]] = [
        ",".join(map(str, np.sort(rng.integers(140, 181, a)).tolist())) for a in errors[cells].tolist()
    ]
    covered = molecules.sum(axis=1) > 0  # counting writes covered positions only
    where = pd.DataFrame(
        {"chrom": chrom, "pos": pos, "ref": ref.astype(object), "context": context.astype(object)}
    )
    return compact_table(
        where[covered],
        molecules[covered],
        f1r2[covered],
        np.zeros(covered.sum(), dtype=np.int64),
        lengths[covered],
    )


def flank_tables(cohort: Cohort, plasma: list[str], window: int) -> dict[str, pd.DataFrame]:
    """Each plasma sample's flank table around its own patient's panel loci, at its depth there."""
    tables = {}
    for sample_id in plasma:
        patient = cohort.samples.set_index("sample_id").loc[sample_id, "patient_id"]
        own = cohort.counts[cohort.counts["sample_id"] == sample_id]
        own = own[own["panel_patients"] == patient]
        depth = (own["ref_molecules"] + own["alt_molecules"]).to_numpy()
        rng = np.random.default_rng([29, len(tables)])
        tables[sample_id] = simulate_flanks(rng, own, depth, window)
    return tables


def read_time(table: pd.DataFrame) -> tuple[float, float]:
    """(CPU, wall) seconds to read a flank table back as a call job reads its own (`read_table`)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sample.flanks.tsv"
        write_tsv(table, path)
        began_cpu, began_wall = time.process_time(), time.perf_counter()
        read_table("flanks", path)
        return time.process_time() - began_cpu, time.perf_counter() - began_wall


def per_sample_calls(
    loci: int, molecules: float, patients: int, calls: int, settings: CallSettings, profile: bool,
    window: int | None = None,
) -> None:  # fmt: skip
    """Time `calls` plasma samples' own calls at `loci`-locus panels (after the cohort step)."""
    scenario = Scenario(f"{loci} loci", loci, molecules, molecules, molecules)
    options = Options(replicates=patients, null_per_patient=1, controls=4, tfs=(0.0, 1e-5, 1e-4))
    started = time.perf_counter()
    cohort = simulate_cohort(scenario, options)
    background = build_background(cohort.counts, cohort.samples, BackgroundSettings())
    panel = cohort.panel[["patient_id", "chrom", "pos", "ref", "alt", "context", "weight"]]
    calibration = calibrate(
        cohort.counts, cohort.samples, panel, background.locus_rates, background.excluded, settings,
        cohort.fragment_lengths,
    )  # fmt: skip
    print(
        f"{patients} patients x {loci:,} loci ({patients * loci:,} cohort loci per sample), {molecules:g} "
        f"molecules per locus; {len(cohort.samples)} samples simulated, background and cohort step "
        f"({len(calibration.null_scores)} null scores) in {time.perf_counter() - started:.0f} s"
    )
    caller = SampleCaller(
        cohort.samples, panel, background.locus_rates, background.excluded, calibration, settings
    )
    counts = dict(tuple(cohort.counts.groupby("sample_id", sort=False)))
    lengths = dict(tuple(cohort.fragment_lengths.groupby("sample_id", sort=False)))
    plasma = [s.sample_id for s in cohort.specs if s.sample_type == "plasma"][:calls]
    flanks = flank_tables(cohort, plasma, window) if window is not None else {}
    if flanks:
        rows = np.median([len(table) for table in flanks.values()])
        cpu, wall = read_time(next(iter(flanks.values())))
        print(
            f"flank tables: median {rows:,.0f} rows (covered positions) per sample ({window} bp windows); "
            "reading one back takes "
            f"{cpu:.1f} s CPU, {wall:.1f} s wall"
        )
    profiler = cProfile.Profile()
    cpu, wall = [], []
    for sample_id in plasma:
        began_cpu, began_wall = time.process_time(), time.perf_counter()
        profiler.enable()
        row, _ = caller.call(
            sample_id, counts[sample_id], lengths.get(sample_id), flanks=flanks.get(sample_id)
        )
        profiler.disable()
        cpu.append(time.process_time() - began_cpu)
        wall.append(time.perf_counter() - began_wall)
        print(
            f"  {sample_id}: {cpu[-1]:.2f} s CPU, {wall[-1]:.2f} s wall; {row['mrd_status']}, "
            f"LOD95 {row['lod95']:.3g}, p-value {row['p_value_method']} "
            f"({row['expected_background_molecules']:.1f} expected background molecules); threshold "
            f"{row['threshold']:.3g} ({row['threshold_reason']})"
        )
    print(
        f"per-sample call: median {np.median(cpu):.2f} s CPU, {np.median(wall):.2f} s wall (max {max(cpu):.2f} s CPU)"
    )
    if profile:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=None, help="10; 4 with --loci")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trial", action="store_true", help="also call an 82-patient cohort")
    parser.add_argument("--loci", type=int, default=None, help="time one sample's call at this panel size")
    parser.add_argument("--molecules", type=float, default=30.0, help="with --loci: molecules per locus")
    parser.add_argument("--calls", type=int, default=6, help="with --loci: plasma samples called")
    parser.add_argument("--lod-method", default="auto", help="with --loci: calling.lod_method")
    parser.add_argument("--profile", action="store_true", help="with --loci: cProfile the calls")
    parser.add_argument("--flanks", action="store_true", help="with --loci: each call's own null from flanks")
    parser.add_argument("--flank-window", type=int, default=25, help="with --flanks: bp either side")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.loci:
        # Only a method asked for is set: the script also times versions of mrdtrack without the setting.
        settings = (
            CallSettings()
            if args.lod_method == "auto"
            else replace(CallSettings(), lod_method=args.lod_method)
        )
        per_sample_calls(
            args.loci, args.molecules, args.patients or 4, args.calls, settings, args.profile,
            args.flank_window if args.flanks else None,
        )  # fmt: skip
        return 0
    args.patients = args.patients or 10

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
