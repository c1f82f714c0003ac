"""The `mrdtrack` command: check a run's inputs or a new batch without running anything; count one file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mrdtrack import __version__
from mrdtrack.counting.molecules import CountSettings
from mrdtrack.counting.sample import count_sample
from mrdtrack.inputs.check import Checked, check_run, read_config
from mrdtrack.inputs.panel import compact_panel
from mrdtrack.inputs.problems import Problem, format_problems, in_file_order
from mrdtrack.inputs.sheets import load_samples, sample_sheets
from mrdtrack.logs import user_errors_as_messages
from mrdtrack.settings import section_schema
from mrdtrack.tables import read_table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mrdtrack", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mrdtrack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="validate the config, sheets, panel VCFs, reference and alignment headers (no read is counted)",
    )
    check.add_argument("--config", default="config/config.yaml", help="config file (default: %(default)s)")
    count = commands.add_parser("count", help="count molecules at panel loci in one BAM/CRAM (default rules)")
    count.add_argument("alignments", help="indexed BAM or CRAM")
    count.add_argument("--panel", required=True, help="panel table (results/panel/loci.tsv format)")
    count.add_argument("--reference", default="", help="reference FASTA (needed for CRAM)")
    count.add_argument("--sample-id", default="sample")
    count.add_argument(
        "--dedup", default="auto", choices=section_schema("counting")["properties"]["dedup"]["enum"]
    )
    count.add_argument("--output", required=True, help="count table to write")
    count.add_argument("--threads", type=int, default=1, help="worker processes (output is identical)")
    add_batch = commands.add_parser(
        "add-batch",
        help="check a new batch's sample sheet against the config's existing batches before adding it",
    )
    add_batch.add_argument("sheet", help="the new batch's sample sheet (TSV)")
    add_batch.add_argument(
        "--config", default="config/config.yaml", help="config file (default: %(default)s)"
    )
    add_demo_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "check":
        return run_check(args.config)
    if args.command == "count":
        return run_count(args)
    if args.command == "add-batch":
        return run_add_batch(args.sheet, args.config)
    if args.command == "demo":
        return run_demo(args)
    return 2


def add_demo_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="write a simulated, STOP-HER2-sized study (BAMs, sheets, clinical data, config.yaml) to run on",
    )
    demo.add_argument("folder", help="where to write it (must be empty or absent)")
    demo.add_argument("--seed", type=int, default=None, help="random seed (default: the documented demo's)")
    demo.add_argument(
        "--patients",
        type=int,
        default=82,
        help="cohort size, split 52:30 stop:continue (default: %(default)s)",
    )
    demo.add_argument("--threads", type=int, default=2, help="worker processes (files are identical)")
    demo.add_argument("--overwrite", action="store_true", help="replace a folder an earlier demo wrote")


def run_demo(args: argparse.Namespace) -> int:
    """Write the demo study; the module is imported here, so other commands start without the simulator."""
    from mrdtrack.simulation import run_demo_command

    return run_demo_command(args.folder, args.seed, args.patients, args.threads, args.overwrite)


def run_count(args: argparse.Namespace) -> int:
    """Count one file outside the workflow (benchmarks, quick looks)."""
    with user_errors_as_messages():
        settings = CountSettings(dedup=args.dedup)
        panel = compact_panel(read_table("panel_loci", args.panel, required=["chrom", "pos", "ref", "alt"]))
        count_sample(
            args.sample_id, args.alignments, args.reference, panel, settings, threads=args.threads,
            counts_path=args.output,
        )  # fmt: skip
    return 0


def run_add_batch(sheet: str, config_path: str) -> int:
    """Check `sheet` as if it were added to the config's `samples`; say how to add it when it is clean."""
    config, problems = read_config(config_path)
    checked = Checked(problems)
    if not problems:
        checked = check_batch(sheet, config)
    if checked.problems:
        print(format_problems(checked.problems), file=sys.stderr)
    if not checked.errors:
        print(f"mrdtrack add-batch: {sheet} is ready. Add it under `samples:` in {config_path}:\n  - {sheet}\n"
              "then run snakemake again: only the new samples are counted.")  # fmt: skip
    print(checked.summary())
    return 1 if checked.errors else 0


def check_batch(sheet: str, config: dict[str, Any]) -> Checked:
    """Every check `check` runs, on the config with `sheet` added; the problems located in `sheet`.

    A sample_id the new sheet re-uses from an existing batch is reported with what differs (patient, date,
    file) instead of as a plain duplicate.
    """
    existing = sample_sheets(config)
    if Path(sheet).resolve() in {Path(s).resolve() for s in existing}:
        return Checked([Problem(sheet, "this sheet is already listed under `samples` in the config",
                                "nothing to add")])  # fmt: skip
    checked = check_run(config | {"samples": [*existing, sheet]}, alignments_of={sheet})
    old, _ = load_samples(existing)
    new, _ = load_samples([sheet])
    reused = changed_sample_problems(old, new)
    reused_rows = {p.row for p in reused}
    checked.problems = in_file_order(
        reused + [p for p in checked.problems if p.file == sheet and not _is_reused_id(p, reused_rows)],
        [sheet],
    )
    return checked


def _is_reused_id(problem: Problem, reused_rows: set[int | None]) -> bool:
    return (
        problem.column == "sample_id" and problem.row in reused_rows and "already appears" in problem.message
    )


def changed_sample_problems(old: pd.DataFrame, new: pd.DataFrame) -> list[Problem]:
    """A sample_id already used by another batch, naming what differs (patient, date, file)."""
    if old.empty or new.empty or "sample_id" not in new.columns:
        return []
    previous = old.drop_duplicates("sample_id").set_index("sample_id")
    problems = []
    for row in new.itertuples():
        if row.sample_id not in previous.index:
            continue
        before = previous.loc[row.sample_id]
        changed = [c for c in ("patient_id", "collection_date", "sample_type", "bam")
                   if before.get(c, "") != getattr(row, c, "")]  # fmt: skip
        what = f" with a different {', '.join(changed)}" if changed else ""
        problems.append(Problem(row.sheet, f"sample_id '{row.sample_id}' is already in batch {before['sheet']}"
                                f"{what}", "give the new sample its own sample_id, or correct the old batch",
                                row.sheet_row, "sample_id"))  # fmt: skip
    return problems


def run_check(config_path: str) -> int:
    """Print every problem found in the inputs named by the config, then what was checked; 0 when the workflow
    can run."""
    config, problems = read_config(config_path)
    checked = Checked(problems, [f"the config {config_path} (its problems stop the other checks)"])
    if not problems:
        checked = check_run(config)
    if checked.problems:
        print(format_problems(checked.problems), file=sys.stderr)
    if not checked.errors:
        print(f"mrdtrack check: inputs of {config_path} are ready to run.")
    print(checked.summary())
    return 1 if checked.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
