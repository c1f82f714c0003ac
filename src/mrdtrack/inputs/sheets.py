"""Loading and checking the input sheets (samples, patients, clinical) and the reference.

Every problem found is collected, with the file, line and column it is in and how to fix it, so that a lab person
sees the whole list at once instead of fixing one error per run. The JSON schemas in `schemas/` are the single
description of a valid row; they are also used by the workflow through snakemake's `validate()`.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from mrdtrack.inputs.alignments import shared_file_problems
from mrdtrack.inputs.problems import InputError, Problem

SCHEMA_DIR = Path(__file__).parents[1] / "schemas"
SAMPLE_TYPES = ("plasma", "normal", "control")
# The trial's cohorts (STOP-HER2: stop or continue anti-HER2 therapy), the default of the config's `cohorts`.
DEFAULT_COHORTS = ("stop", "continue")
DATE_COLUMNS = {
    "samples": ("collection_date",),
    "clinical": ("enrollment_date", "pfs_date", "os_date", "restart_date", "restart_progression_date"),
}
NUMERIC_COLUMNS = {
    "samples": ("plasma_ml", "cfdna_ng"),
    "clinical": ("pfs_event", "os_event", "restart_benefit"),
}
# Paths inside a sheet resolve relative to the sheet's folder.
PATH_COLUMNS = {"samples": ("bam",), "patients": ("panel_vcf",)}
INDEX_CANDIDATES = {
    ".bam": ("{path}.bai", "{stem}.bai", "{path}.csi", "{stem}.csi"),
    ".cram": ("{path}.crai", "{stem}.crai"),
}


@dataclass
class Inputs:
    """The validated inputs of one run.

    Parameters
    ----------
    samples : pandas.DataFrame
        Every sample sheet's rows, indexed by sample_id, with paths resolved.
    patients, clinical : pandas.DataFrame
        The patients and clinical sheets' rows, with paths resolved.
    reference : str
        The reference FASTA.
    warnings : list of Problem
        Problems that do not stop the run.
    """

    samples: pd.DataFrame
    patients: pd.DataFrame
    clinical: pd.DataFrame
    reference: str
    warnings: list[Problem] = field(default_factory=list)


@cache
def load_schema(name: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / f"{name}.schema.yaml") as handle:
        return yaml.safe_load(handle)


def read_sheet(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, list[Problem]]:
    """Read a TSV as text, each row indexed by its line number in the file; problems say why it cannot be read.

    Blank lines (also lines of empty cells) and lines starting with '#' are skipped but counted, so that a
    problem's row is the line a text editor or spreadsheet shows. BOM and Windows line endings are accepted.
    `frame.attrs["header_line"]` is the header's line number.
    """
    name = str(path)
    if not os.path.isfile(name):
        return pd.DataFrame(), [Problem(name, "file not found", "check the path in config/config.yaml")]
    try:
        text = Path(name).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        return pd.DataFrame(), [_unreadable(name, f"not UTF-8 text: {error.reason} at byte {error.start}")]
    lines = [(n, line) for n, line in enumerate(re.split(r"\r\n|\r|\n", text), 1) if _holds_cells(line)]
    if not lines:
        return pd.DataFrame(), [
            Problem(name, "the sheet is empty", "write a header line, then one row per line")
        ]
    (header_line, header), rows = lines[0], lines[1:]
    problems = _separator_problems(name, header_line, header)
    if problems:
        return pd.DataFrame(), problems
    width = header.count("\t") + 1
    problems = [_too_many_cells(name, n, line, width) for n, line in rows if line.count("\t") >= width]
    rows = [(n, line) for n, line in rows if line.count("\t") < width]
    try:
        frame = pd.read_csv(io.StringIO("\n".join([header] + [line for _, line in rows])), sep="\t", dtype=str,
                            keep_default_na=False)  # fmt: skip
    except pd.errors.ParserError as error:  # quotes that do not close
        return pd.DataFrame(), [_unreadable(name, str(error).splitlines()[0])]
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.fillna("").apply(lambda column: column.str.strip())
    if len(frame) == len(rows):  # else a quoted cell spans lines: row numbers count data rows
        frame.index = pd.Index([n for n, _ in rows], dtype=int)
    else:
        frame.index = pd.RangeIndex(header_line + 1, header_line + 1 + len(frame))
    frame.attrs["header_line"] = header_line
    if frame.empty and not problems:
        problems = [Problem(name, "the sheet has a header but no rows", "add at least one row")]
    return frame, problems


def _holds_cells(line: str) -> bool:
    content = line.strip()
    return bool(content) and not content.startswith("#")


def _unreadable(name: str, reason: str) -> Problem:
    return Problem(
        name,
        f"cannot read as a tab-separated table ({reason})",
        "save the sheet as UTF-8 text with tab-separated columns",
    )


def _separator_problems(name: str, line: int, header: str) -> list[Problem]:
    """A header without tabs but with commas or semicolons: the sheet was saved as CSV."""
    if "\t" in header:
        return []
    separator = max(",;", key=header.count)
    if not header.count(separator):
        return []
    what = {",": "commas", ";": "semicolons"}[separator]
    return [
        Problem(
            name,
            f"the header line has no tab but {header.count(separator)} {what}: the sheet looks like CSV, and "
            "mrdtrack's sheets are tab-separated",
            "save it as tab-separated text (in Excel: Save As, 'Text (Tab delimited)') and name that file in "
            "the config",
            row=line,
        )
    ]


def _too_many_cells(name: str, line: int, text: str, width: int) -> Problem:
    return Problem(
        name,
        f"the row has {text.count(chr(9)) + 1} cells but the header names {width} columns",
        "remove the extra tab(s), or name the extra column in the header",
        row=line,
    )


def validate_rows(frame: pd.DataFrame, kind: str, path: str) -> list[Problem]:
    """Check every row against the schema of `kind`, reporting every violation (not only the first)."""
    schema = load_schema(kind)
    required = schema.get("required", [])
    missing_columns = [c for c in required if c not in frame.columns]
    header_line = frame.attrs.get("header_line", 1)
    problems = [
        Problem(path, f"required column '{c}' is missing from the header", f"add a '{c}' column",
                row=header_line, column=c)
        for c in missing_columns
    ]  # fmt: skip
    validator = jsonschema.Draft202012Validator(schema)
    for line, record in zip(frame.index, sheet_records(frame, kind), strict=True):
        empty = [c for c in required if c not in missing_columns and record.get(c, "") == ""]
        problems += [
            Problem(path, f"'{c}' is empty", _error_fix(c, schema), row=int(line), column=c) for c in empty
        ]
        for error in validator.iter_errors(record):
            column = str(error.path[0]) if error.path else None
            if error.validator == "required" or column in empty:
                continue  # each empty required cell is named above, by its own column
            problems.append(
                Problem(path, _error_message(error, column), _error_fix(column, schema), int(line), column)
            )
    return problems


def sheet_records(frame: pd.DataFrame, kind: str) -> list[dict[str, Any]]:
    """Rows as schema records: empty cells are absent, numeric columns are numbers when they parse."""
    numeric = NUMERIC_COLUMNS.get(kind, ())
    records = []
    for row in frame.to_dict("records"):
        record: dict[str, Any] = {}
        for key, value in row.items():
            if value == "" and key != "patient_id":
                continue
            record[key] = _as_number(value) if key in numeric else value
        records.append(record)
    return records


def _as_number(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number


def _error_message(error: jsonschema.ValidationError, column: str | None) -> str:
    value = error.instance
    if error.validator == "pattern":
        return f"'{value}' is not allowed here ({_pattern_words(column)})"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"'{value}' is not one of: {allowed}"
    if error.validator == "type":
        return f"'{value}' is not a number"
    return f"'{value}': {error.message}"


def _pattern_words(column: str | None) -> str:
    if column and column.endswith("_date"):
        return "dates are written YYYY-MM-DD"
    return "use letters, digits, '.', '_' or '-' only, starting with a letter or digit"


def _error_fix(column: str | None, schema: dict[str, Any]) -> str:
    description = schema.get("properties", {}).get(column or "", {}).get("description", "")
    return f"{column} is {description}" if description else ""


def _date_problems(frame: pd.DataFrame, kind: str, path: str) -> list[Problem]:
    problems = []
    for column in DATE_COLUMNS.get(kind, ()):
        if column not in frame.columns:
            continue
        for index, value in frame[column].items():
            if value and len(value) == 10 and parse_date(value) is None:
                problems.append(
                    Problem(
                        path,
                        f"'{value}' is not a real calendar date",
                        "write a valid YYYY-MM-DD",
                        row=int(index),
                        column=column,
                    )
                )
    return problems


def parse_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def resolve_paths(frame: pd.DataFrame, kind: str, sheet: str) -> pd.DataFrame:
    """Make the sheet's file paths relative to the working directory (they are written relative to the sheet)."""
    folder = os.path.dirname(sheet)
    frame = frame.copy()
    for column in PATH_COLUMNS.get(kind, ()):
        if column in frame.columns:
            frame[column] = [
                value if not value or os.path.isabs(value) else os.path.normpath(os.path.join(folder, value))
                for value in frame[column]
            ]
    return frame


def sample_sheets(config: dict[str, Any]) -> list[str]:
    """The config's sample sheets (`samples` is one path or a list)."""
    return [config["samples"]] if isinstance(config["samples"], str) else list(config["samples"])


def load_samples(sheets: str | Sequence[str]) -> tuple[pd.DataFrame, list[Problem]]:
    """Read, schema-check and concatenate the sample sheets (one per batch).

    Parameters
    ----------
    sheets : str or sequence of str
        One sample sheet or several.

    Returns
    -------
    pandas.DataFrame
        Their rows, paths resolved, with the `sheet` and `sheet_row` each came from.
    list of Problem
        What is wrong in them.
    """
    paths = [sheets] if isinstance(sheets, str) else list(sheets)
    frames, problems = [], []
    for path in paths:
        frame, read_problems = read_sheet(path)
        problems += read_problems
        if frame.empty:
            continue
        problems += validate_rows(frame, "samples", path) + _date_problems(frame, "samples", path)
        frame = resolve_paths(frame, "samples", path)
        frame["sheet"] = path
        frame["sheet_row"] = frame.index
        if "batch" not in frame.columns:
            frame["batch"] = ""
        frame.loc[frame["batch"] == "", "batch"] = path
        frames.append(frame)
    # Sheets may differ in their optional columns: a column one sheet lacks is empty in its rows.
    samples = pd.concat(frames, ignore_index=True).fillna("") if frames else pd.DataFrame()
    return samples, problems


def load_table(path: str, kind: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Read and schema-check the patients or clinical sheet.

    Parameters
    ----------
    path : str
        The sheet.
    kind : str
        `patients` or `clinical`: the schema it is checked against.

    Returns
    -------
    pandas.DataFrame
        Its rows, paths resolved, with the `sheet` and `sheet_row` each came from.
    list of Problem
        What is wrong in it.
    """
    frame, problems = read_sheet(path)
    if frame.empty:
        return frame, problems
    problems += validate_rows(frame, kind, path) + _date_problems(frame, kind, path)
    frame = resolve_paths(frame, kind, path)
    frame["sheet"] = path
    frame["sheet_row"] = frame.index
    return frame.reset_index(drop=True), problems


def _where(frame: pd.DataFrame, index: Any) -> tuple[str, int]:
    return str(frame.at[index, "sheet"]), int(frame.at[index, "sheet_row"])


def duplicate_problems(frame: pd.DataFrame, column: str, what: str) -> list[Problem]:
    if frame.empty or column not in frame.columns:
        return []
    problems = []
    first_seen: dict[str, tuple[str, int]] = {}
    for index, value in frame[column].items():
        if not value:
            continue
        file, row = _where(frame, index)
        if value in first_seen:
            first_file, first_row = first_seen[value]
            problems.append(
                Problem(
                    file,
                    f"{what} '{value}' already appears at {first_file}:{first_row}",
                    f"give every {what} a unique name",
                    row=row,
                    column=column,
                )
            )
        else:
            first_seen[value] = (file, row)
    return problems


def sample_problems(samples: pd.DataFrame, patients: pd.DataFrame, clinical: pd.DataFrame) -> list[Problem]:
    """Semantic checks of the sample sheets against the patients and clinical sheets."""
    if samples.empty or "sample_type" not in samples.columns:
        return []
    problems = duplicate_problems(samples, "sample_id", "sample_id")
    known = set(patients["patient_id"]) if "patient_id" in patients.columns else set()
    panels = _patients_with_panel(patients)
    in_clinical = set(clinical["patient_id"]) if "patient_id" in clinical.columns else set()
    for index, row in samples.iterrows():
        file, line = _where(samples, index)
        problems += _patient_problems(row, file, line, known, panels, in_clinical)
        problems += _alignment_file_problems(row.get("bam", ""), file, line)
    return problems + shared_file_problems(samples)


def _patients_with_panel(patients: pd.DataFrame) -> set[str]:
    if patients.empty or "panel_vcf" not in patients.columns:
        return set()
    return {p for p, vcf in zip(patients["patient_id"], patients["panel_vcf"], strict=True) if vcf}


def _patient_problems(
    row: pd.Series, file: str, line: int, known: set[str], panels: set[str], in_clinical: set[str]
) -> list[Problem]:
    patient, kind = row.get("patient_id", ""), row.get("sample_type", "")
    if kind == "control":
        if patient:
            return [
                Problem(
                    file,
                    f"control samples are healthy donors but this one names patient '{patient}'",
                    "leave patient_id empty for controls, or use sample_type plasma",
                    line,
                    "patient_id",
                )
            ]
        return []
    if kind not in ("plasma", "normal"):
        return []
    if not patient:
        return [
            Problem(file, f"a {kind} sample needs a patient_id", "fill in the patient", line, "patient_id")
        ]
    if patient not in known:
        return [
            Problem(
                file,
                f"patient '{patient}' is not in the patients sheet",
                "add the patient (with its panel_vcf) to the patients sheet, or correct the id",
                line,
                "patient_id",
            )
        ]
    problems = []
    if kind == "plasma" and patient not in panels:
        problems.append(
            Problem(
                file,
                f"plasma sample of patient '{patient}', who has no panel_vcf",
                "give the patient's tumor panel VCF in the patients sheet",
                line,
                "patient_id",
            )
        )
    if kind == "plasma" and in_clinical and patient not in in_clinical:
        problems.append(
            Problem(
                file,
                f"patient '{patient}' has no row in the clinical sheet; their samples are "
                "called but left out of the survival analysis",
                "add the patient's clinical row",
                line,
                "patient_id",
                severity="warning",
            )
        )
    return problems


def index_path(alignment: str) -> str | None:
    """The index file of a BAM/CRAM, or None when there is none."""
    stem, suffix = os.path.splitext(alignment)
    for pattern in INDEX_CANDIDATES.get(suffix.lower(), ()):
        candidate = pattern.format(path=alignment, stem=stem)
        if os.path.isfile(candidate):
            return candidate
    return None


def _alignment_file_problems(path: str, file: str, line: int) -> list[Problem]:
    if not path:
        return []
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in INDEX_CANDIDATES:
        return [
            Problem(
                file, f"'{path}' is neither a .bam nor a .cram file", "give the BAM or CRAM path", line, "bam"
            )
        ]
    if not os.path.isfile(path):
        return [
            Problem(
                file,
                f"file '{path}' does not exist (paths are relative to the sheet's folder)",
                "correct the path or copy the file there",
                line,
                "bam",
            )
        ]
    index = index_path(path)
    if index is None:
        return [Problem(file, f"'{path}' has no index", f"run: samtools index {path}", line, "bam")]
    if os.path.getmtime(index) < os.path.getmtime(path) - 1:
        return [
            Problem(
                file,
                f"index '{index}' is older than '{path}' and may be stale (a stale index makes counting "
                "fail with 'truncated or corrupt')",
                f"re-run: samtools index {path}",
                line,
                "bam",
                severity="warning",
            )
        ]
    return []


def patient_problems(patients: pd.DataFrame) -> list[Problem]:
    problems = duplicate_problems(patients, "patient_id", "patient_id")
    if patients.empty or "panel_vcf" not in patients.columns:
        return problems
    for index, vcf in patients["panel_vcf"].items():
        if vcf and not os.path.isfile(vcf):
            file, line = _where(patients, index)
            problems.append(
                Problem(
                    file,
                    f"panel VCF '{vcf}' does not exist (paths are relative to the sheet's folder)",
                    "correct the path",
                    line,
                    "panel_vcf",
                )
            )
    return problems


def clinical_problems(
    clinical: pd.DataFrame,
    patients: pd.DataFrame,
    covariates: Sequence[str],
    cohorts: Sequence[str] = DEFAULT_COHORTS,
) -> list[Problem]:
    """Duplicate patients, undeclared cohorts, impossible dates and non-numeric covariates in the clinical sheet."""
    problems = duplicate_problems(clinical, "patient_id", "patient_id")
    if clinical.empty:
        return problems
    known = set(patients["patient_id"]) if "patient_id" in patients.columns else set()
    for index, row in clinical.iterrows():
        file, line = _where(clinical, index)
        if known and row.get("patient_id") and row["patient_id"] not in known:
            problems.append(
                Problem(
                    file,
                    f"patient '{row['patient_id']}' is not in the patients sheet",
                    "add the patient to the patients sheet or correct the id",
                    line,
                    "patient_id",
                    severity="warning",
                )
            )
        problems += _cohort_problems(row, file, line, cohorts) + _clinical_date_order(row, file, line)
    for covariate in covariates:
        problems += _covariate_problems(clinical, covariate)
    return problems


def _cohort_problems(row: pd.Series, file: str, line: int, cohorts: Sequence[str]) -> list[Problem]:
    """A cohort not declared in the config (a typo such as `stpo` or `Stop` would make a cohort of its own)."""
    cohort = row.get("cohort", "")
    if not cohort or cohort in cohorts:
        return []
    return [
        Problem(
            file,
            f"cohort '{cohort}' is not one of the config's cohorts: {', '.join(cohorts)}",
            "correct the spelling (case matters), or add the cohort to `cohorts` in the config",
            line,
            "cohort",
        )
    ]


def _clinical_date_order(row: pd.Series, file: str, line: int) -> list[Problem]:
    dates = {column: parse_date(row.get(column, "")) for column in DATE_COLUMNS["clinical"]}
    problems = []
    for earlier, later, what in (
        ("enrollment_date", "pfs_date", "progression/follow-up date {later} is before enrollment {earlier}"),
        ("enrollment_date", "os_date", "death/follow-up date {later} is before enrollment {earlier}"),
        ("enrollment_date", "restart_date", "therapy restart date {later} is before enrollment {earlier}"),
        (
            "enrollment_date",
            "restart_progression_date",
            "progression-after-restart date {later} is before enrollment {earlier}",
        ),
        (
            "pfs_date",
            "os_date",
            "death/follow-up date {later} is before the progression/follow-up date {earlier}",
        ),
    ):
        if dates[earlier] and dates[later] and dates[later] < dates[earlier]:
            fix = (
                "check both dates; follow-up starts at enrollment"
                if earlier == "enrollment_date"
                else "check both dates; overall survival is followed at least as long as progression-free "
                "survival (at progression or death, os_date is that date or later)"
            )
            message = what.format(earlier=dates[earlier], later=dates[later])
            problems.append(Problem(file, message, fix, line, later))
    return problems


def _covariate_problems(clinical: pd.DataFrame, covariate: str) -> list[Problem]:
    if covariate not in clinical.columns:
        file = str(clinical["sheet"].iloc[0])
        return [
            Problem(
                file,
                f"covariate '{covariate}' (config survival.covariates) is not a column",
                "add the column or remove it from survival.covariates",
                clinical.attrs.get("header_line", 1),
                covariate,
            )
        ]
    problems = []
    for index, value in clinical[covariate].items():
        if value and isinstance(_as_number(value), str):
            file, line = _where(clinical, index)
            problems.append(
                Problem(
                    file,
                    f"covariate value '{value}' is not a number",
                    "code covariates as numbers (e.g. 0/1 for yes/no); leave empty when unknown",
                    line,
                    covariate,
                )
            )
    return problems


def reference_problems(reference: str) -> list[Problem]:
    if not os.path.isfile(reference):
        return [Problem(reference, "reference FASTA not found", "check `reference` in config/config.yaml")]
    problems = []
    if not os.path.isfile(reference + ".fai"):
        problems.append(Problem(reference, "reference has no .fai index", f"run: samtools faidx {reference}"))
    if reference.endswith(".gz") and not os.path.isfile(reference + ".gzi"):
        problems.append(
            Problem(
                reference,
                "bgzipped reference has no .gzi index (or is plain gzip)",
                f"recompress with bgzip and run: samtools faidx {reference}",
            )
        )
    return problems


def load_inputs(config: dict[str, Any]) -> Inputs:
    """Read and check every input named in the config, all problems at once.

    Parameters
    ----------
    config : dict
        The run configuration (`samples`, `patients`, `clinical`, `reference`, `cohorts`,
        `survival.covariates`).

    Returns
    -------
    Inputs
        The checked sheets and any warnings.

    Raises
    ------
    InputError
        Listing every problem, when any is an error.
    """
    inputs, problems = collect_inputs(config)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InputError(problems)
    inputs.samples = _typed_samples(inputs.samples)
    inputs.warnings = [p for p in problems if p not in errors]
    return inputs


def collect_inputs(config: dict[str, Any]) -> tuple[Inputs, list[Problem]]:
    """Every input named in the config as read (sheets as text), and every problem found in them."""
    samples, problems = load_samples(config["samples"])
    patients, patient_read_problems = load_table(config["patients"], "patients")
    clinical, clinical_read_problems = load_table(config["clinical"], "clinical")
    covariates = (config.get("survival") or {}).get("covariates", [])
    cohorts = config.get("cohorts") or DEFAULT_COHORTS
    problems += patient_read_problems + clinical_read_problems
    problems += patient_problems(patients)
    problems += sample_problems(samples, patients, clinical)
    problems += clinical_problems(clinical, patients, covariates, cohorts)
    problems += reference_problems(config["reference"])
    return Inputs(samples, patients, clinical, config["reference"]), problems


def _typed_samples(samples: pd.DataFrame) -> pd.DataFrame:
    samples = samples.copy()
    for column in ("plasma_ml", "cfdna_ng"):
        if column not in samples.columns:
            samples[column] = ""
        samples[column] = pd.to_numeric(samples[column].replace("", None), errors="coerce")
    return samples.set_index("sample_id", drop=False)
