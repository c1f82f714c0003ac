"""The `mrdtrack` command: check a run's inputs or a new batch without running anything; count one file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pysam
import yaml

from mrdtrack import __version__
from mrdtrack.counting.molecules import CountSettings
from mrdtrack.counting.sample import AlignmentInputError, count_sample, open_alignments
from mrdtrack.inputs.panel import PanelSettings, build_panel, contig_map
from mrdtrack.inputs.sheets import (
    InputError,
    Problem,
    format_problems,
    in_file_order,
    load_inputs,
    load_samples,
    load_schema,
)
from mrdtrack.logs import user_errors_as_messages
from mrdtrack.settings import section_schema
from mrdtrack.tables import read_table, write_tsv


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mrdtrack", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mrdtrack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="validate the config, sheets, panels, reference and alignment headers (reads no alignments)",
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
        panel = read_table("panel_loci", args.panel, required=["chrom", "pos", "ref", "alt"])
        result = count_sample(
            args.sample_id, args.alignments, args.reference, panel, settings, threads=args.threads
        )
        write_tsv(result.counts, args.output)
    return 0


def run_add_batch(sheet: str, config_path: str) -> int:
    """Check `sheet` as if it were added to the config's `samples`; say how to add it when it is clean."""
    config, problems = read_config(config_path)
    if not problems:
        problems = batch_problems(sheet, config)
    if problems:
        print(format_problems(problems), file=sys.stderr)
    if any(p.severity == "error" for p in problems):
        return 1
    print(f"mrdtrack add-batch: {sheet} is ready. Add it under `samples:` in {config_path}:\n  - {sheet}\n"
          "then run snakemake again: only the new samples are counted.")  # fmt: skip
    return 0


def batch_problems(sheet: str, config: dict[str, Any]) -> list[Problem]:
    existing = [config["samples"]] if isinstance(config["samples"], str) else list(config["samples"])
    if Path(sheet).resolve() in {Path(s).resolve() for s in existing}:
        return [
            Problem(sheet, "this sheet is already listed under `samples` in the config", "nothing to add")
        ]
    old, _ = load_samples(existing)
    new, problems = load_samples([sheet])
    problems += changed_sample_problems(old, new)
    try:
        load_inputs(config | {"samples": [*existing, sheet]})
    except InputError as error:
        # Re-used sample_ids are reported above, with what changed; the sheet's own problems (a bad date)
        # were found by load_samples already and come again from load_inputs.
        problems += [
            p
            for p in error.problems
            if p.file == sheet and "already appears" not in p.message and p not in problems
        ]
    return in_file_order(problems, [sheet])


def changed_sample_problems(old: pd.DataFrame, new: pd.DataFrame) -> list[Problem]:
    """A sample_id already used by another batch, naming what differs (patient, date, file)."""
    if old.empty or new.empty:
        return []
    previous = old.set_index("sample_id")
    problems = []
    for row in new.itertuples():
        if row.sample_id not in previous.index:
            continue
        before = previous.loc[row.sample_id]
        changed = [
            c for c in ("patient_id", "collection_date", "sample_type", "bam") if before[c] != getattr(row, c)
        ]
        what = f" with a different {', '.join(changed)}" if changed else ""
        problems.append(Problem(row.sheet, f"sample_id '{row.sample_id}' is already in batch {before['sheet']}"
                                f"{what}", "give the new sample its own sample_id, or correct the old batch",
                                row.sheet_row, "sample_id"))  # fmt: skip
    return problems


def run_check(config_path: str) -> int:
    """Print every problem found in the inputs named by the config; 0 when the workflow can run."""
    problems = check_config(config_path)
    if problems:
        print(format_problems(problems), file=sys.stderr)
    errors = [p for p in problems if p.severity == "error"]
    if not errors:
        print(f"mrdtrack check: inputs of {config_path} are ready to run.")
    return 1 if errors else 0


def check_config(config_path: str) -> list[Problem]:
    """Every problem of the config's inputs, in file and row order (sheets in the order the config names them)."""
    config, problems = read_config(config_path)
    if problems:
        return problems
    return in_file_order(_input_problems(config), _input_files(config))


def _input_files(config: dict[str, Any]) -> list[str]:
    samples = [config["samples"]] if isinstance(config["samples"], str) else list(config["samples"])
    return [*samples, config["patients"], config["clinical"], config["reference"]]


def _input_problems(config: dict[str, Any]) -> list[Problem]:
    try:
        inputs = load_inputs(config)
    except InputError as error:
        return error.problems
    problems = list(inputs.warnings)
    try:
        panel = build_panel(inputs.patients, inputs.reference, PanelSettings.from_config(config.get("panel")))
    except InputError as error:
        return problems + error.problems
    for row in inputs.samples.itertuples(index=False):
        problems += alignment_header_problems(
            str(row.sample_id),
            row.bam,
            inputs.reference,
            sorted(set(panel["chrom"])),
            row.sheet,
            row.sheet_row,
        )
    return problems


def read_config(path: str) -> tuple[dict[str, Any], list[Problem]]:
    if not Path(path).is_file():
        return {}, [Problem(path, "config file not found", "pass --config with the path to your config.yaml")]
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        return {}, [Problem(path, f"not valid YAML ({error})", "fix the YAML syntax")]
    validator = jsonschema.Draft202012Validator(load_schema("config"))
    problems = [
        Problem(path, f"{'.'.join(str(p) for p in error.path) or 'config'}: {error.message}",
                "see config/README.md")
        for error in validator.iter_errors(config)
    ]  # fmt: skip
    return config, problems


def alignment_header_problems(
    sample_id: str, path: str, reference: str, contigs: list[str], sheet: str = "", line: int | None = None
) -> list[Problem]:
    """Panel contigs must exist in the BAM/CRAM header with the reference's lengths (same genome build).

    Problems are located at the sample's row (`sheet`:`line`:bam) when given, else at the alignment file.
    """

    def problem(message: str, fix: str, severity: str = "error") -> Problem:
        if sheet:
            return Problem(sheet, f"sample {sample_id}: {message}", fix, line, "bam", severity)
        return Problem(path, f"sample {sample_id}: {message}", fix, severity=severity)

    try:
        alignments = open_alignments(path, reference)
    except AlignmentInputError as error:
        return [problem(str(error), "re-create the file (and its index) or correct the path")]
    with alignments, pysam.FastaFile(reference) as fasta:
        names = contig_map(contigs, alignments.references)
        problems = []
        for contig in contigs:
            if contig not in names:
                problems.append(
                    problem(
                        f"contig '{contig}' of the panel is not in the header of '{path}'",
                        "align to the same reference as the panel",
                    )
                )
                continue
            bam_length = alignments.get_reference_length(names[contig])
            if bam_length != fasta.get_reference_length(contig):
                problems.append(
                    problem(
                        f"contig '{names[contig]}' is {bam_length} bp in the alignment header but "
                        f"{fasta.get_reference_length(contig)} bp in the reference ('{path}')",
                        "use the reference the reads were aligned to",
                        severity="warning",
                    )
                )
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
