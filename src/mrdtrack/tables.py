"""Reading and writing the TSV tables passed between workflow steps.

Every output is written to a temporary file in the destination folder and then renamed into place, so a killed
job never leaves a half-written table that looks complete. The temporary file has a fixed hidden name
(`.NAME.tmp`): Snakemake lets only one job write an output at a time, so the next attempt after a killed one
overwrites and renames the remains instead of leaving them beside the results.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mrdtrack.logs import UserFacingError


class OutputError(UserFacingError):
    """An output that cannot be written: the disk or quota is full, or the folder is read-only."""


# What a person can do about each write failure that is not a bug.
_WRITE_FAILURES = {
    errno.ENOSPC: ("no space left on the device", "free disk space (or move the run to a larger disk)"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space within your quota (or move the run)"),
    errno.EROFS: ("the file system is read-only", "run from a folder you can write to"),
    errno.EACCES: ("permission denied", "run from a folder you can write to, or fix its permissions"),
}


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A full disk (or quota, a read-only folder) while writing is an OutputError naming the output and the space
    left, and no partial file is left behind.
    """
    target = Path(path)
    tmp_path = target.with_name(f".{target.name}.tmp")
    try:
        with _said_as_output_error(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp_path.unlink(missing_ok=True)
            yield tmp_path
            os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def _said_as_output_error(target: Path) -> Iterator[None]:
    """A write to `target` that fails for a reason a person can fix (_WRITE_FAILURES) as an OutputError."""
    try:
        yield
    except OSError as error:
        if error.errno not in _WRITE_FAILURES:
            raise
        raise OutputError(_write_failure(target, error.errno)) from None


def _write_failure(target: Path, code: int) -> str:
    reason, fix = _WRITE_FAILURES[code]
    folder = next((p for p in [target.parent, *target.parent.parents] if p.exists()), Path("."))
    free = shutil.disk_usage(folder).free
    return (
        f"cannot write '{target}': {reason} ({_size(free)} free on the file system of '{folder}'). "
        f"Fix: {fix}, then run the same command again; finished outputs are kept"
    )


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} bytes"


# Rows from which `write_tsv` formats a table by the compiled loop of `tsv_text` (smaller ones: pandas, with no
# compiled code to load).
COMPILED_TEXT_ROWS = 50_000
# The same for each block of a table written block by block (`tsv_writer`): a large table, whose writer has the
# compiled loop loaded after its first block.
COMPILED_BLOCK_ROWS = 4096


def write_tsv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write `frame` as a tab-separated table (no index), atomically, every float at full precision.

    A float is written as the shortest text that reads back to the same double (Python's repr), so a figure
    read from a table equals the one computed; a whole number is written without `.0`, as an integer is;
    NaN is an empty field. repr is exact and platform-independent, so reruns give byte-identical tables.
    """
    exact = _with_exact_floats(frame)
    # Large tables of integers and plain text (a genome-wide sample's flank table: a million rows) are formatted
    # by a compiled loop, into the same bytes.
    text = _compiled_text(exact) if len(exact) >= COMPILED_TEXT_ROWS else None
    with atomic_path(path) as tmp:
        if text is None:
            exact.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
        else:
            tmp.write_bytes(text)


@contextmanager
def tsv_writer(
    path: str | os.PathLike[str], columns: Iterable[str]
) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Write one table block by block, so that a large one (a genome-wide panel's count table) is never held
    whole: yields a function that appends a block's rows, formatted as `write_tsv` formats them (the header
    once; `columns` alone when no block comes). Atomic as `write_tsv`: the table appears when the last block
    is in, and not at all if writing stops on an error."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        written = False

        def write(frame: pd.DataFrame) -> None:
            nonlocal written
            with _said_as_output_error(
                Path(path)
            ):  # here: a caller may take an OSError for one of its input's
                text = _tsv_bytes(frame, COMPILED_BLOCK_ROWS)
                handle.write(text[text.index(b"\n") + 1 :] if written else text)
            written = True

        yield write
        if not written:
            handle.write(_tsv_bytes(pd.DataFrame(columns=list(columns)), COMPILED_TEXT_ROWS))


def _tsv_bytes(frame: pd.DataFrame, compiled_from: int) -> bytes:
    """What `write_tsv` writes for `frame`, by the compiled loop from `compiled_from` rows."""
    exact = _with_exact_floats(frame)
    text = _compiled_text(exact) if len(exact) >= compiled_from else None
    return text if text is not None else exact.to_csv(sep="\t", index=False, lineterminator="\n").encode()


def _compiled_text(frame: pd.DataFrame) -> bytes | None:
    from mrdtrack.tsv_text import tsv_bytes  # numba: only for the large tables that use it

    return tsv_bytes(frame)


def _with_exact_floats(frame: pd.DataFrame) -> pd.DataFrame:
    floats = [i for i, dtype in enumerate(frame.dtypes) if pd.api.types.is_float_dtype(dtype)]
    if not floats:
        return frame
    exact = frame.copy()
    for position in floats:  # by position: a table may repeat a column name
        values = frame.iloc[:, position].astype(float).to_numpy()
        exact.isetitem(position, [exact_text(value) for value in values])
    return exact


def exact_text(value: float) -> str:
    """The shortest text that reads back to `value` exactly ('' for NaN, `3` rather than `3.0`)."""
    if value != value:
        return ""
    text = repr(float(value))
    return text.removesuffix(".0")


def read_tsv(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """Read a table written by `write_tsv`: only empty fields are missing (a context `NAN` stays text).

    Floats are parsed with correct rounding (`round_trip`): pandas' default parser is off by one unit in the
    last place for about a third of 17-digit numbers, which would undo the exact writing.
    """
    options = {"sep": "\t", "keep_default_na": False, "na_values": [""], "float_precision": "round_trip"}
    return pd.read_csv(path, **(options | kwargs))


def write_json(data: Any, path: str | os.PathLike[str]) -> None:
    """Write `data` as indented, key-sorted JSON, atomically; NaN becomes null."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


# ----------------------------------------------------------------------------------------------------------
# Table contracts: the columns and types of every table under results/ (docs/tables.md says what each means)
# ----------------------------------------------------------------------------------------------------------
# Types: text (read as str, always: sample "007" and contig "17" stay text), date (ISO YYYY-MM-DD text),
# int, float, bool (True/False). Numbers are parsed by pandas; an int column with empty fields reads as float.
TYPES = ("text", "date", "int", "float", "bool")
_READ_AS_TEXT = ("text", "date")

_CALL = (
    "sample_id:text patient_id:text collection_date:date batch:text mrd_status:text tumor_fraction:float "
    "tf_ci_low:float tf_ci_high:float p_value:float threshold:float lod95:float n_loci_used:int "
    "n_loci_panel:int mutant_molecules:int total_molecules:int mtm_per_ml:float flags:text status_reason:text "
    "lr_statistic:float p_value_method:text expected_background_molecules:float n_loci_outlier:int "
    "background_scale:float length_weighted:bool mutant_fragments:int mutant_loci:int threshold_source:text "
    "n_null_scores:int tf_dispersion:float own_null_panels:int empirical_p_value:float threshold_reason:text "
    "background_source:text"
)
_CLINICAL = (
    "cohort:text enrollment_date:date pfs_event:int pfs_date:date os_event:int os_date:date restart_date:date "
    "restart_benefit:float restart_best_response:text restart_progression_date:date"
)
# The clinical sheet's optional columns: a table that carries the sheet's columns may lack them.
OPTIONAL_CLINICAL_COLUMNS = (
    "restart_date",
    "restart_benefit",
    "restart_best_response",
    "restart_progression_date",
)
_KM_SUMMARY = (
    "analysis:text cohort:text group:text n:int events:int timepoint_months:float survival:float "
    "ci_low_log:float ci_high_log:float ci_low_loglog:float ci_high_loglog:float at_risk:int median:float "
    "median_ci_low_log:float median_ci_high_log:float median_ci_low_loglog:float median_ci_high_loglog:float "
    "note:text survival_std_err:float"
)
_KM_CURVES = (
    "analysis:text cohort:text group:text time:float survival:float ci_low:float ci_high:float at_risk:int "
    "events:int censored:int"
)


@dataclass(frozen=True)
class TableContract:
    """One results table: where it lives, its columns in order with their types, and whether more may follow
    (a clinical sheet's covariates travel through the clinical tables)."""

    name: str
    path: str
    columns: dict[str, str]
    covariates: bool = False

    def dtypes(self) -> dict[str, type]:
        return {column: str for column, kind in self.columns.items() if kind in _READ_AS_TEXT}

    def text_columns(self) -> list[str]:
        return [column for column, kind in self.columns.items() if kind == "text"]

    def never_empty_numbers(self) -> bool:
        """Only text and integer columns, none beyond them: no field is ever missing (counts are whole)."""
        return not self.covariates and set(self.columns.values()) <= {"text", "int"}


def _contract(name: str, path: str, columns: str, covariates: bool = False) -> TableContract:
    parsed = dict(column.split(":") for column in columns.split())
    assert set(parsed.values()) <= set(TYPES), parsed
    return TableContract(name, path, parsed, covariates)


CONTRACTS = {contract.name: contract for contract in [
    _contract("panel_loci", "results/panel/loci.tsv", "patient_id:text chrom:text pos:int ref:text alt:text "
              "context:text weight:float variant_type:text gene:text chip_suspect:bool weight_source:text"),
    _contract("samples", "results/sheets/samples.tsv", "sample_id:text patient_id:text sample_type:text "
              "collection_date:date bam:text batch:text plasma_ml:float cfdna_ng:float sheet:text sheet_row:int"),
    _contract("clinical_sheet", "results/sheets/clinical.tsv", f"patient_id:text {_CLINICAL}", covariates=True),
    _contract("counts", "results/counts/{sample}.tsv", "sample_id:text chrom:text pos:int ref:text alt:text "
              "panel_patients:text context:text ref_molecules:int alt_molecules:int other_molecules:int "
              "discordant_molecules:int alt_f1r2:int alt_f2r1:int ref_f1r2:int ref_f2r1:int reads:int "
              "mean_family_size:float alt_lengths:text"),
    _contract("flanks", "results/counts/{sample}.flanks.tsv", "chrom:text pos:int ref:text context:text "
              "a_molecules:int c_molecules:int g_molecules:int t_molecules:int a_f1r2:int c_f1r2:int g_f1r2:int "
              "t_f1r2:int discordant_molecules:int a_lengths:text c_lengths:text g_lengths:text t_lengths:text"),
    _contract("fraglen", "results/counts/{sample}.fraglen.tsv", "allele:text length:int molecules:int"),
    _contract("fragments", "results/counts/{sample}.fragments.tsv",
              "chrom:text loci:text alleles:text length:int fragments:int"),
    _contract("context_rates", "results/background/context_rates.tsv", "substitution:text context:text "
              "orientation:text alt_molecules:int total_molecules:int rate:float"),
    _contract("locus_rates", "results/background/locus_rates.tsv", "chrom:text pos:int ref:text alt:text "
              "context:text substitution:text alt_molecules:int total_molecules:int n_samples:int "
              "n_samples_with_alt:int context_rate:float rate:float excluded:bool reason:text "
              "pyrimidine_context:text prior_molecules:float noise_p_value:float rate_f1r2:float rate_f2r1:float"),
    _contract("excluded", "results/background/excluded_loci.tsv",
              "chrom:text pos:int ref:text alt:text patient_id:text reason:text"),
    _contract("null_scores", "results/mrd/null_scores.tsv", "sample_id:text sample_type:text "
              "sample_patient_id:text panel_patient_id:text n_loci_used:int mutant_molecules:int "
              "total_molecules:int tumor_fraction:float lr_statistic:float p_value:float p_value_method:text "
              "calibration:text contamination_candidate:bool mutant_fragments:int mutant_loci:int supported:bool"),
    _contract("sample_rates", "results/mrd/sample_rates.tsv", "sample_id:text level:text substitution:text "
              "context:text orientation:text alt_molecules:int total_molecules:int expected_molecules:float "
              "prior_strength:float factor:float"),
    _contract("length_state", "results/mrd/length_state.tsv", "length:int cohort_ref:int tumor_excess:float"),
    _contract("length_model", "results/mrd/length_model.tsv", "length:int normal_density:float "
              "tumor_density:float ratio:float tumor_molecules:float"),
    _contract("calls", "results/mrd/calls.tsv", _CALL),
    _contract("loci", "results/mrd/loci.tsv", "sample_id:text patient_id:text chrom:text pos:int ref:text "
              "alt:text context:text weight:float ref_molecules:int alt_molecules:int background_rate:float "
              "used:bool reason:text gene:text chip_suspect:bool"),
    _contract("joined", "results/clinical/joined.tsv", f"{_CALL} {_CLINICAL} pfs_months:float os_months:float "
              "days_from_enrollment:int months_from_enrollment:float log10_tf:float join_note:text",
              covariates=True),
    _contract("patients", "results/clinical/patients.tsv", f"patient_id:text {_CLINICAL} pfs_months:float "
              "os_months:float baseline_sample_id:text baseline_date:date baseline_days_from_enrollment:float "
              "baseline_status:text baseline_mrd_positive:float baseline_tf:float baseline_log10_tf:float "
              "baseline_lod95:float baseline_note:text n_samples:int n_samples_used:int statuses:text "
              "converted_date:date first_positive_date:date lead_time_months:float "
              "tf_log10_slope_per_month:float last_status_before_progression:text", covariates=True),
    _contract("counting_process", "results/clinical/counting_process.tsv", "patient_id:text cohort:text "
              "start:float stop:float event:int mrd_status:text mrd_positive:float log10_tf:float sample_id:text",
              covariates=True),
    _contract("cox", "results/survival/cox.tsv", "model:text cohort:text term:text n:int events:int coef:float "
              "se:float hr:float hr_ci_low:float hr_ci_high:float p_wald:float p_lr:float concordance:float "
              "ph_chisq:float ph_p:float note:text loglik_null:float loglik:float model_df:int "
              "model_lr_chisq:float model_lr_p:float model_wald_chisq:float model_wald_p:float "
              "model_score_chisq:float model_score_p:float method:text concordance_se:float"),
    _contract("design", "results/survival/design.tsv", "design:text selected:bool p0:float p1:float "
              "target_alpha:float target_power:float r1:int n1:int r:int n:int en0:float pet0:float alpha:float "
              "power:float cohort:text n_patients:int n_evaluable:int n_success:int n_not_evaluable:int "
              "stage1_evaluable:int stage1_success:int decision:text decision_other_handling:text"),
    _contract("endpoints", "results/survival/endpoints.tsv", "cohort:text endpoint:text timepoint_months:float "
              "n:int events:int at_risk:float estimate:float ci_low:float ci_high:float method:text note:text"),
    _contract("km_curves", "results/survival/km_curves.tsv", _KM_CURVES),
    _contract("km_summary", "results/survival/km_summary.tsv", _KM_SUMMARY),
    _contract("landmark_data", "results/survival/landmark_data.tsv", "landmark_months:float patient_id:text "
              "cohort:text pfs_months:float pfs_event:int time_from_landmark:float status:text sample_id:text "
              "sample_offset_days:float closest_status:text closest_sample_id:text closest_offset_days:float"),
    _contract("landmark_km_curves", "results/survival/landmark_km_curves.tsv",
              f"landmark_months:float status_rule:text {_KM_CURVES}"),
    _contract("landmark_km_summary", "results/survival/landmark_km_summary.tsv",
              f"landmark_months:float status_rule:text {_KM_SUMMARY}"),
    _contract("os_km_curves", "results/survival/os_km_curves.tsv", _KM_CURVES),
    _contract("os_km_summary", "results/survival/os_km_summary.tsv", _KM_SUMMARY),
    _contract("rmst", "results/survival/rmst.tsv", "cohort:text tau_months:float n_positive:int n_negative:int "
              "events_positive:int events_negative:int rmst_positive:float rmst_positive_se:float "
              "rmst_positive_ci_low:float rmst_positive_ci_high:float rmst_negative:float rmst_negative_se:float "
              "rmst_negative_ci_low:float rmst_negative_ci_high:float difference:float difference_se:float "
              "difference_ci_low:float difference_ci_high:float difference_p:float ratio:float "
              "ratio_ci_low:float ratio_ci_high:float ratio_p:float note:text"),
    _contract("safe_to_stop", "results/survival/safe_to_stop.tsv", "cohort:text timepoint:text "
              "mrd_status:text n:int evaluable:int progressed_1y:int not_evaluable:int km_pfs_1y:float "
              "km_ci_low:float km_ci_high:float rate_pfs_1y:float rate_ci_low:float rate_ci_high:float"),
    _contract("safe_to_stop_accuracy", "results/survival/safe_to_stop_accuracy.tsv", "cohort:text "
              "timepoint:text true_positive:int false_positive:int true_negative:int false_negative:int "
              "not_evaluable:int sensitivity:float sensitivity_ci_low:float sensitivity_ci_high:float "
              "specificity:float specificity_ci_low:float specificity_ci_high:float ppv:float ppv_ci_low:float "
              "ppv_ci_high:float npv:float npv_ci_low:float npv_ci_high:float"),
    _contract("restart", "results/survival/restart.tsv", "cohort:text n_progressed:int n_restarted:int "
              "evaluable:int clinical_benefit:int not_evaluable:int benefit_rate:float benefit_ci_low:float "
              "benefit_ci_high:float complete_response:int partial_response:int stable_disease:int "
              "progressive_disease:int response_not_evaluable:int response_missing:int time_on_therapy_n:int "
              "time_on_therapy_events:int time_on_therapy_median:float time_on_therapy_ci_low:float "
              "time_on_therapy_ci_high:float note:text"),
    _contract("prediction", "results/survival/prediction.tsv", "model:text features:text n:int n_events:int "
              "n_not_evaluable:int n_without_baseline_status:int n_splits:int n_repeats:int auc:float "
              "auc_ci_low:float auc_ci_high:float auc_repeat_min:float auc_repeat_max:float brier:float note:text"),
]}  # fmt: skip


def columns_of(name: str) -> list[str]:
    """The columns of results table `name`, in order: what its producer writes."""
    return list(CONTRACTS[name].columns)


class TableError(UserFacingError):
    """A table that is not what its contract says: the file and what is wrong, for a person to act on."""


def read_table(
    name: str, path: str | os.PathLike[str], required: Iterable[str] | None = None
) -> pd.DataFrame:
    """Read results table `name` (a key of CONTRACTS) with its contract's types: text columns as text, an
    empty text field as "" (dates stay missing when empty).

    `required`: the columns this reader needs (default: all of the contract's); a missing one is a TableError
    naming the file. Columns beyond the contract are kept (a clinical sheet's covariates).
    """
    contract = CONTRACTS[name]
    if contract.never_empty_numbers():
        frame = _read_text_and_counts(contract, path)
    else:
        frame = read_tsv(path, dtype=contract.dtypes())
        frame = frame.fillna({column: "" for column in contract.text_columns() if column in frame})
    missing = [
        column for column in (contract.columns if required is None else required) if column not in frame
    ]
    if missing:
        raise TableError(
            f"{path}: not a {name} table ({contract.path}): missing column(s) {', '.join(missing)}; "
            "was it written by another mrdtrack version? Re-run the step that writes it"
        )
    return frame


def _read_text_and_counts(contract: TableContract, path: str | os.PathLike[str]) -> pd.DataFrame:
    """A table of text and integer columns only (a flank table: a row per covered position, about a million at a
    genome-wide panel), read without looking for missing fields, which takes pandas longer than the parse itself:
    an empty text field is "" as it is, and a count column that is not all whole numbers (an empty field) is an
    error."""
    frame = pd.read_csv(path, sep="\t", na_filter=False, dtype=contract.dtypes())
    counts = [column for column, kind in contract.columns.items() if kind == "int" and column in frame]
    broken = [column for column in counts if not pd.api.types.is_integer_dtype(frame[column])]
    if broken and len(frame):
        raise TableError(
            f"{path}: not a {contract.name} table ({contract.path}): column(s) {', '.join(broken)} hold "
            "something other than whole numbers (an empty field?); re-run the step that writes it"
        )
    return frame


def read_tables(name: str, paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Several tables of one kind (one per sample) read as `read_table` does, stacked in path order.

    A per-sample table without a sample_id column (`{sample}.fraglen.tsv`) gains one, first, from its file name.
    """
    contract = CONTRACTS[name]
    frames = [_with_sample_id(contract, read_table(name, path), path) for path in paths]
    if not frames:
        return _with_sample_id(contract, empty_table(name), None)
    return pd.concat(frames, ignore_index=True)


def _with_sample_id(
    contract: TableContract, frame: pd.DataFrame, path: str | os.PathLike[str] | None
) -> pd.DataFrame:
    if "sample_id" in contract.columns or "{sample}" not in contract.path:
        return frame
    suffix = contract.path.split("{sample}", 1)[1]
    sample_id = "" if path is None else Path(path).name.removesuffix(suffix)
    frame = frame.copy()
    frame.insert(0, "sample_id", pd.Series(sample_id, index=frame.index, dtype=object))
    return frame


def empty_table(name: str) -> pd.DataFrame:
    """A table of kind `name` with its columns and no rows."""
    return pd.DataFrame({column: pd.Series(dtype=object if kind in _READ_AS_TEXT else float)
                         for column, kind in CONTRACTS[name].columns.items()})  # fmt: skip
