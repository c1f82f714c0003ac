"""The `mrdtrack` command: check the inputs of a run without running it; count one file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pysam
import yaml

from mrdtrack import __version__
from mrdtrack.counting import AlignmentInputError, count_sample, open_alignments
from mrdtrack.logs import user_errors_as_messages
from mrdtrack.molecules import DEDUP_MODES, CountSettings
from mrdtrack.panel import PanelSettings, build_panel, contig_map
from mrdtrack.sheets import InputError, Problem, format_problems, load_inputs, load_schema
from mrdtrack.tables import read_tsv, write_tsv


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
    count.add_argument("--dedup", default="auto", choices=DEDUP_MODES)
    count.add_argument("--output", required=True, help="count table to write")
    args = parser.parse_args(argv)
    if args.command == "check":
        return run_check(args.config)
    if args.command == "count":
        return run_count(args)
    return 2


def run_count(args: argparse.Namespace) -> int:
    """Count one file outside the workflow (benchmarks, quick looks)."""
    with user_errors_as_messages():
        settings = CountSettings(dedup=args.dedup)
        result = count_sample(args.sample_id, args.alignments, args.reference, read_tsv(args.panel), settings)
        write_tsv(result.counts, args.output)
    return 0


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
    config, problems = read_config(config_path)
    if problems:
        return problems
    try:
        inputs = load_inputs(config)
    except InputError as error:
        return error.problems
    problems = list(inputs.warnings)
    try:
        panel = build_panel(inputs.patients, inputs.reference, PanelSettings.from_config(config.get("panel")))
    except InputError as error:
        return problems + error.problems
    for sample_id, path in inputs.samples["bam"].items():
        problems += alignment_header_problems(
            str(sample_id), path, inputs.reference, sorted(set(panel["chrom"]))
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


def alignment_header_problems(sample_id: str, path: str, reference: str, contigs: list[str]) -> list[Problem]:
    """Panel contigs must exist in the BAM/CRAM header with the reference's lengths (same genome build)."""
    try:
        alignments = open_alignments(path, reference)
    except AlignmentInputError as error:
        return [Problem(path, str(error), "re-create the file or fix the path", column=sample_id)]
    with alignments, pysam.FastaFile(reference) as fasta:
        names = contig_map(contigs, alignments.references)
        problems = []
        for contig in contigs:
            if contig not in names:
                problems.append(
                    Problem(
                        path,
                        f"sample {sample_id}: contig '{contig}' of the panel is not in the alignment header",
                        "align to the same reference as the panel",
                    )
                )
                continue
            bam_length = alignments.get_reference_length(names[contig])
            if bam_length != fasta.get_reference_length(contig):
                problems.append(
                    Problem(
                        path,
                        f"sample {sample_id}: contig '{names[contig]}' is {bam_length} bp in "
                        f"the alignment header but {fasta.get_reference_length(contig)} bp in the "
                        "reference",
                        "use the reference the reads were aligned to",
                        severity="warning",
                    )
                )
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
