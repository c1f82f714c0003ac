"""What `mrdtrack check` and `mrdtrack add-batch` verify before a run: every input, all problems at once.

The config (every key and value), the sheets (every row), the panel VCFs against the reference, and the header
of every sample's BAM/CRAM against the reference and the panel. `Checked.summary` says what was looked at, so
that "ready" is never said of something that was not opened.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mrdtrack.inputs.alignments import header_problems
from mrdtrack.inputs.config import config_problems, with_dates_as_text
from mrdtrack.inputs.panel import PanelSettings, build_panel
from mrdtrack.inputs.problems import InputError, Problem, in_file_order
from mrdtrack.inputs.sheets import DEFAULT_COHORTS, Inputs, collect_inputs, index_path, sample_sheets


@dataclass
class Checked:
    """The problems found, and what was checked (one phrase per input)."""

    problems: list[Problem] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def summary(self) -> str:
        return "\n".join(["Checked:", *(f"  - {phrase}" for phrase in self.inputs)])


def read_config(path: str) -> tuple[dict[str, Any], list[Problem]]:
    """The config at `path` and its problems (a missing file, bad YAML, unknown keys, values out of range)."""
    if not Path(path).is_file():
        return {}, [Problem(path, "config file not found", "pass --config with the path to your config.yaml")]
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        return {}, [Problem(path, f"not valid YAML ({error})", "fix the YAML syntax")]
    if isinstance(config, dict):
        with_dates_as_text(config)  # as the workflow reads it
    return config, config_problems(config, path)


def check_run(config: dict[str, Any], alignments_of: Collection[str] | None = None) -> Checked:
    """Check every input of a valid config; open the alignments of the sheets in `alignments_of` (None: all).

    Parameters
    ----------
    config
        A config without problems (`read_config`).
    alignments_of
        Sample sheets whose samples' BAM/CRAM headers are checked against the reference and the panel.

    Returns
    -------
    Checked
        Every problem, in file and row order (sheets in the order the config names them), and what was checked.
    """
    inputs, problems = collect_inputs(config)
    checked = Checked(inputs=_sheet_phrases(inputs, config))
    panel, panel_problems = _panel(inputs, config, problems)
    problems += panel_problems
    if panel is not None:
        rows = _readable_alignments(inputs.samples, problems, alignments_of)
        contigs = sorted(set(panel["chrom"]))
        for row in rows.itertuples(index=False):
            problems += header_problems(str(row.sample_id), row.bam, inputs.reference, contigs, row.sheet,
                                        int(row.sheet_row))  # fmt: skip
        checked.inputs += [
            f"{_count(_panel_patients(panel), 'panel VCF')} ({_count(len(panel), 'locus', 'loci')} on "
            f"{_count(len(contigs), 'contig')}) against the reference",
            f"{_count(len(rows), 'alignment header')} against the reference and the panel",
        ]
    checked.problems = in_file_order(problems, _input_files(config))
    return checked


def _panel_patients(panel: pd.DataFrame) -> int:
    return panel["patient_id"].nunique() if len(panel) else 0


def _panel(
    inputs: Inputs, config: dict[str, Any], problems: list[Problem]
) -> tuple[pd.DataFrame | None, list]:
    """The cohort panel when the patients sheet and the reference can be read, with the VCFs' problems."""
    blocking = {config["patients"], config["reference"]}
    if inputs.patients.empty or any(p.file in blocking and p.severity == "error" for p in problems):
        return None, []
    try:
        return build_panel(
            inputs.patients, inputs.reference, PanelSettings.from_config(config.get("panel"))
        ), []
    except InputError as error:
        return None, error.problems


def _readable_alignments(
    samples: pd.DataFrame, problems: list[Problem], alignments_of: Collection[str] | None
) -> pd.DataFrame:
    """Rows whose BAM/CRAM exists with an index and has no problem of its own yet (it is then opened)."""
    if samples.empty or "bam" not in samples.columns:
        return samples
    located = {(p.file, p.row) for p in problems if p.column == "bam" and p.severity == "error"}
    keep = [
        bool(bam) and os.path.isfile(bam) and index_path(bam) is not None and (sheet, int(row)) not in located
        and (alignments_of is None or sheet in alignments_of)
        for bam, sheet, row in zip(samples["bam"], samples["sheet"], samples["sheet_row"], strict=True)
    ]  # fmt: skip
    return samples[keep]


def _sheet_phrases(inputs: Inputs, config: dict[str, Any]) -> list[str]:
    samples, patients, clinical = inputs.samples, inputs.patients, inputs.clinical
    kinds = samples["sample_type"].value_counts() if "sample_type" in samples.columns else pd.Series()
    types = ", ".join(f"{kinds[kind]} {kind}" for kind in ("plasma", "normal", "control") if kind in kinds)
    cohorts = config.get("cohorts") or DEFAULT_COHORTS
    return [
        "the config (every key and value)",
        f"{_count(len(sample_sheets(config)), 'sample sheet')} ({_count(len(samples), 'sample')}"
        + (f": {types})" if types else ")"),
        f"the patients sheet ({_count(len(patients), 'patient')})",
        f"the clinical sheet ({_count(len(clinical), 'patient')}; cohorts {', '.join(cohorts)})",
    ]


def _count(number: int, singular: str, plural: str = "") -> str:
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"


def _input_files(config: dict[str, Any]) -> list[str]:
    return [*sample_sheets(config), config["patients"], config["clinical"], config["reference"]]
