"""Reading a run's results into one `Context`: every table (empty when missing, with the reason), the settings
and the patient / sample frames every section derives from.

The producers' tables are read by column name, and a missing or unreadable one becomes an empty table and a
recorded problem, because a report that crashes on a cohort with no events tells the investigator nothing.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mrdtrack.report.recorded import read_recorded
from mrdtrack.report.settings import ReportSettings, as_list
from mrdtrack.report.style import COHORT_COLORS
from mrdtrack.tables import CONTRACTS, read_tsv
from mrdtrack.vocabulary import DAYS_PER_MONTH

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
ALL = "all"
# calls.tsv: distinct mutant fragments at the used loci, and the loci with one (a positive needs enough of both)
MUTANT_EVIDENCE = ("mutant_fragments", "mutant_loci")

TABLE_NAMES = (
    "calls", "loci", "context_rates", "locus_rates", "excluded", "samples", "patients", "joined", "km_curves",
    "km_summary", "cox", "endpoints", "design", "landmark_km_curves", "landmark_km_summary", "prediction",
    "safe_to_stop", "safe_to_stop_accuracy",
)  # fmt: skip
# Tables an older survival step did not write: when not given, the sections that need them say "not computed"
# and the header does not count them as missing inputs.
OPTIONAL_TABLES = ("safe_to_stop", "safe_to_stop_accuracy")


@dataclass
class ReportInputs:
    """Paths of the tables the report reads; any may be missing (the section then says so).

    Parameters
    ----------
    calls, loci : str or os.PathLike, optional
        results/mrd/calls.tsv and loci.tsv.
    context_rates, locus_rates, excluded : str or os.PathLike, optional
        results/background/context_rates.tsv, locus_rates.tsv and excluded_loci.tsv.
    samples : str or os.PathLike, optional
        The validated sample sheet, results/sheets/samples.tsv.
    patients, joined : str or os.PathLike, optional
        results/clinical/patients.tsv and joined.tsv.
    km_curves, km_summary, cox, endpoints, design, summary : str or os.PathLike, optional
        The tables and summary.json of results/survival/.
    landmark_km_curves, landmark_km_summary, prediction : str or os.PathLike, optional
        The landmark Kaplan-Meier tables and the cross-validated prediction of results/survival/.
    safe_to_stop, safe_to_stop_accuracy : str or os.PathLike, optional
        1-year PFS by MRD status, and the accuracy of MRD-positivity for progression within 1 year
        (results/survival/safe_to_stop.tsv and safe_to_stop_accuracy.tsv), the report's first screen.
    fraglen, qc : sequence of str or os.PathLike
        Every sample's results/counts/{sample}.fraglen.tsv and {sample}.qc.json.
    settings : sequence of str or os.PathLike
        The settings.json each step wrote beside its outputs (the methods quote them).
    """

    calls: PathLike | None = None
    loci: PathLike | None = None
    context_rates: PathLike | None = None
    locus_rates: PathLike | None = None
    excluded: PathLike | None = None
    samples: PathLike | None = None
    patients: PathLike | None = None
    joined: PathLike | None = None
    km_curves: PathLike | None = None
    km_summary: PathLike | None = None
    cox: PathLike | None = None
    endpoints: PathLike | None = None
    design: PathLike | None = None
    summary: PathLike | None = None
    landmark_km_curves: PathLike | None = None
    landmark_km_summary: PathLike | None = None
    prediction: PathLike | None = None
    safe_to_stop: PathLike | None = None
    safe_to_stop_accuracy: PathLike | None = None
    fraglen: Sequence[PathLike] = ()
    qc: Sequence[PathLike] = ()
    settings: Sequence[PathLike] = ()  # the settings.json each step wrote beside its outputs

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ReportInputs:
        """Inputs from a name -> path(s) mapping such as `dict(snakemake.input.items())`.

        Parameters
        ----------
        mapping : mapping of str to path or list of paths
            Paths by input name; names that are not fields are ignored.

        Returns
        -------
        ReportInputs
            The inputs, lists of paths as tuples.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in mapping:
                continue
            paths = [str(p) for p in as_list(mapping[f.name])]
            values[f.name] = (
                tuple(paths) if f.name in ("fraglen", "qc", "settings") else (paths[0] if paths else None)
            )
        return cls(**values)


@dataclass
class Tables:
    """Every input table as read (empty when missing), with why any could not be read."""

    frames: dict[str, pd.DataFrame]
    fraglen: pd.DataFrame
    qc: pd.DataFrame
    summary: dict[str, Any]
    problems: dict[str, str]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # recorded by each step

    def __getattr__(self, name: str) -> pd.DataFrame:
        frames = self.__dict__.get("frames", {})
        if name in frames:
            return frames[name]
        raise AttributeError(name)


def load_tables(inputs: ReportInputs) -> Tables:
    """Read every input; a missing or unreadable one becomes an empty table and a recorded problem."""
    problems: dict[str, str] = {}
    frames = {name: _read_table(getattr(inputs, name), name, problems) for name in TABLE_NAMES}
    summary = _read_json(inputs.summary, "summary", problems)
    settings = read_recorded(inputs.settings, inputs.qc)
    return Tables(frames, _read_fraglen(inputs.fraglen), _read_qc(inputs.qc), summary, problems, settings)


def _read_table(path: PathLike | None, name: str, problems: dict[str, str]) -> pd.DataFrame:
    if path is None:
        if name not in OPTIONAL_TABLES:
            problems[name] = "not given"
        return pd.DataFrame()
    file = Path(path)
    if not file.is_file() or file.stat().st_size == 0:
        problems[name] = f"{file.name} is {'empty' if file.is_file() else 'missing'}"
        return pd.DataFrame()
    try:
        return read_tsv(file, dtype=CONTRACTS[name].dtypes())  # ids and contigs as text
    except (ValueError, UnicodeDecodeError, OSError) as error:  # pandas' parser errors are ValueErrors
        problems[name] = f"{file.name} could not be read ({error})"
        log.warning("report: %s", problems[name])
        return pd.DataFrame()


def _read_json(path: PathLike | None, name: str, problems: dict[str, str]) -> dict[str, Any]:
    if path is None or not Path(path).is_file():
        problems[name] = "not given" if path is None else f"{Path(path).name} is missing"
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, OSError) as error:
        problems[name] = f"{Path(path).name} could not be read ({error})"
        return {}
    return data if isinstance(data, dict) else {}


def _sample_name(path: PathLike, suffix: str) -> str:
    name = Path(path).name
    return name[: -len(suffix)] if name.endswith(suffix) else name


def _read_fraglen(paths: Sequence[PathLike]) -> pd.DataFrame:
    parts = []
    for path in paths:
        frame = _read_table(path, "fraglen", {})
        if {"allele", "length", "molecules"} <= set(frame.columns):
            parts.append(frame.assign(sample_id=_sample_name(path, ".fraglen.tsv")))
    if not parts:
        return pd.DataFrame(columns=["sample_id", "allele", "length", "molecules"])
    return pd.concat(parts, ignore_index=True)


def _read_qc(paths: Sequence[PathLike]) -> pd.DataFrame:
    rows = []
    for path in paths:
        data = _read_json(path, "qc", {})
        flat = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
        if flat:
            rows.append({"sample_id": _sample_name(path, ".qc.json"), **flat})
    return pd.DataFrame(rows)


def numeric_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A numeric column, or all-missing when the producer did not write it."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def text_column(frame: pd.DataFrame, column: str, default: str = "") -> pd.Series:
    """A text column with missing cells as `default`, or all `default` when the producer did not write it."""
    if column not in frame.columns:
        return pd.Series(default, index=frame.index, dtype=object)
    return frame[column].astype(object).where(frame[column].notna(), default).astype(str)


def months_between(later: pd.Series, earlier: pd.Series) -> pd.Series:
    """Months (days / 30.4375) from `earlier` to `later` dates; missing or unparsable dates give NaN."""
    days = pd.to_datetime(later, errors="coerce") - pd.to_datetime(earlier, errors="coerce")
    return days.dt.days / DAYS_PER_MONTH


def normalize_status(value: Any) -> str:
    """positive / negative / indeterminate, or 'no call' when the status is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no call"
    text = str(value).strip().lower()
    return text if text else "no call"


def normalize_cohort(value: Any) -> str:
    """A cohort name, with the producers' spellings of the pooled cohort ('', pooled, overall) as 'all'."""
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()
    return ALL if text.lower() in ("", "all", "pooled", "overall") else text


def patient_frame(tables: Tables) -> pd.DataFrame:
    """One row per patient with months to progression, death and restart (computed from dates if needed)."""
    frame = tables.patients
    if "patient_id" not in frame.columns:
        frame = tables.joined if "patient_id" in tables.joined.columns else tables.calls
        frame = (
            frame[["patient_id"]] if "patient_id" in frame.columns else pd.DataFrame(columns=["patient_id"])
        )
    frame = frame.dropna(subset=["patient_id"]).drop_duplicates("patient_id").reset_index(drop=True)
    out = frame.copy()
    out["cohort"] = text_column(frame, "cohort", "unknown").replace("", "unknown")
    for prefix in ("pfs", "os", "restart"):
        months = numeric_column(frame, f"{prefix}_months")
        if f"{prefix}_date" in frame.columns and "enrollment_date" in frame.columns:
            months = months.fillna(months_between(frame[f"{prefix}_date"], frame["enrollment_date"]))
        out[f"{prefix}_months"] = months
    out["pfs_event"] = numeric_column(frame, "pfs_event")
    out["os_event"] = numeric_column(frame, "os_event")
    out["baseline_status"] = text_column(frame, "baseline_status").map(normalize_status)
    return out


def sample_frame(tables: Tables, patients: pd.DataFrame) -> pd.DataFrame:
    """One row per plasma sample with its call, cohort and months from enrollment."""
    base = tables.calls if "sample_id" in tables.calls.columns else tables.joined
    if "sample_id" not in base.columns or "patient_id" not in base.columns:
        return pd.DataFrame(columns=["sample_id", "patient_id", "cohort", "months", "status"])
    out = base.dropna(subset=["sample_id"]).drop_duplicates("sample_id").reset_index(drop=True)
    out["months"] = _sample_months(out, tables.joined, patients)
    out["status"] = text_column(out, "mrd_status").map(normalize_status)
    cohorts = dict(zip(patients["patient_id"], patients["cohort"], strict=True))
    out["cohort"] = out["patient_id"].map(cohorts).fillna("unknown")
    for column in ("tumor_fraction", "tf_ci_low", "tf_ci_high", "lod95", "p_value"):
        out[column] = numeric_column(out, column)
    for (
        column
    ) in MUTANT_EVIDENCE:  # newer calls only: left out, not made up, when the caller did not write them
        if column in out.columns:
            out[column] = numeric_column(out, column)
    return out


def _sample_months(samples: pd.DataFrame, joined: pd.DataFrame, patients: pd.DataFrame) -> pd.Series:
    months = numeric_column(samples, "months_from_enrollment")
    if {"sample_id", "months_from_enrollment"} <= set(joined.columns):
        known = dict(
            zip(
                joined["sample_id"],
                pd.to_numeric(joined["months_from_enrollment"], errors="coerce"),
                strict=True,
            )
        )
        months = months.fillna(samples["sample_id"].map(known))
    if "collection_date" in samples.columns and "enrollment_date" in patients.columns:
        enrolled = samples["patient_id"].map(
            dict(zip(patients["patient_id"], patients["enrollment_date"], strict=True))
        )
        months = months.fillna(months_between(samples["collection_date"], enrolled))
    return months


def sample_table(samples: pd.DataFrame) -> pd.DataFrame:
    """The per-sample columns the sample downloads share."""
    columns = [
        "patient_id",
        "cohort",
        "sample_id",
        "collection_date",
        "months",
        "status",
        "tumor_fraction",
        "tf_ci_low",
        "tf_ci_high",
        "lod95",
        "p_value",
        *MUTANT_EVIDENCE,
    ]
    return samples[[c for c in columns if c in samples.columns]]


def survival_notes(summary: Mapping[str, Any]) -> list[str]:
    """The survival step's notes (summary.json `notes`), as a list of sentences."""
    notes = summary.get("notes") or []
    return [str(n) for n in notes] if isinstance(notes, list) else [str(notes)]


@dataclass
class Context:
    """What every section builder sees: the tables, the settings and the derived patient / sample frames."""

    tables: Tables
    settings: ReportSettings
    config: Mapping[str, Any]
    patients: pd.DataFrame
    samples: pd.DataFrame

    @classmethod
    def build(cls, tables: Tables, settings: ReportSettings, config: Mapping[str, Any]) -> Context:
        patients = patient_frame(tables)
        return cls(tables, settings, config, patients, sample_frame(tables, patients))

    def tf_floor(self) -> float:
        """The log-axis plotting floor for a tumor fraction of 0 of a sample without a LOD95: report.tf_floor,
        else a power of ten at least a decade below the smallest positive tumor fraction or LOD95 (1e-6 when
        there is none)."""
        if self.settings.tf_floor is not None:
            return self.settings.tf_floor
        values = pd.concat(
            [numeric_column(self.samples, "tumor_fraction"), numeric_column(self.samples, "lod95")]
        ).dropna()
        values = values[values > 0]
        if values.empty:
            return 1e-6
        return float(10 ** max(math.floor(math.log10(float(values.min())) - 1), -9))

    def cohorts(self) -> list[str]:
        names = set(self.patients["cohort"]) if "cohort" in self.patients.columns else set()
        if "cohort" in self.tables.km_curves.columns:
            names |= {normalize_cohort(c) for c in self.tables.km_curves["cohort"]}
        return sorted(names - {ALL, "unknown"})

    def cohort_color(self, cohort: str) -> str:
        names = self.cohorts()
        return COHORT_COLORS[names.index(cohort) % len(COHORT_COLORS)] if cohort in names else "#BBBBBB"

    def unavailable(self, table: str, columns: Sequence[str]) -> str:
        """Why `table` cannot be drawn ('' when it can): empty, unreadable or lacking `columns`."""
        frame = self.tables.frames.get(table, pd.DataFrame())
        if frame.empty:
            problem = self.tables.problems.get(table)
            return f"no rows in the {table} table" + (f" ({problem})" if problem else "")
        lacking = [c for c in columns if c not in frame.columns]
        return f"the {table} table lacks column(s) {', '.join(lacking)}" if lacking else ""
