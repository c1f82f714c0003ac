"""The config file as a whole: every key known, every value in its schema's range, dates real, cohorts declared.

The workflow (before it reads a sheet) and `mrdtrack check` both run `config_problems`, so a misspelt key at any
level (`samples_per_jobs`, a section `countng:`) stops the run with the valid names instead of being ignored
while its default is used.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping, MutableMapping
from typing import Any

import jsonschema

from mrdtrack.inputs.problems import Problem
from mrdtrack.inputs.sheets import DEFAULT_COHORTS, load_schema, parse_date

# Config keys holding a date, as (section, key); None is the top level.
DATE_KEYS = ((None, "report_date"), ("report", "report_date"))


def config_problems(config: Any, path: str) -> list[Problem]:
    """Every problem of the config read from `path`, each naming its key and the fix.

    Parameters
    ----------
    config
        The parsed YAML (a mapping when valid).
    path
        The config file, to locate the problems.

    Returns
    -------
    list of Problem
        Unknown keys (with the valid names), values outside the schema, unreal dates and cohorts named by the
        survival settings but not declared under `cohorts`.
    """
    if not isinstance(config, Mapping):
        return [Problem(path, "the config is not a mapping of keys to values", "see config/README.md")]
    validator = jsonschema.Draft202012Validator(load_schema("config"))
    errors = sorted(validator.iter_errors(dict(config)), key=lambda error: [str(p) for p in error.path])
    problems = [problem for error in errors for problem in _schema_problems(error, path)]
    return problems + _date_problems(config, path) + _cohort_setting_problems(config, path)


def with_dates_as_text(config: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`config` with YAML dates (an unquoted `report_date: 2025-06-30`) turned back into the text they were."""
    for section, key in DATE_KEYS:
        values = config if section is None else config.get(section)
        if isinstance(values, MutableMapping) and isinstance(values.get(key), dt.date):
            values[key] = values[key].isoformat()
    return config


def _schema_problems(error: jsonschema.ValidationError, path: str) -> list[Problem]:
    where = ".".join(str(part) for part in error.path)
    if error.validator != "additionalProperties":
        return [Problem(path, f"{where or 'config'}: {error.message}", "see config/README.md")]
    known = sorted(error.schema.get("properties", {}))
    section = f"of {where}" if where else "at the top level"
    return [
        Problem(path, f"unknown key '{where + '.' if where else ''}{key}'{_did_you_mean(key, known)}; valid keys "
                f"{section}: {', '.join(known)}", "correct the key's spelling or remove it (config/README.md)")
        for key in sorted(set(error.instance) - set(known))
    ]  # fmt: skip


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _date_problems(config: Mapping[str, Any], path: str) -> list[Problem]:
    problems = []
    for section, key in DATE_KEYS:
        values = config if section is None else config.get(section)
        value = values.get(key) if isinstance(values, Mapping) else None
        if isinstance(value, str) and value and parse_date(value) is None:
            name = key if section is None else f"{section}.{key}"
            problems.append(Problem(path, f"{name}: '{value}' is not a real date",
                                    "write it as YYYY-MM-DD, or leave it empty for the latest sample or "
                                    "follow-up date"))  # fmt: skip
    return problems


def _cohort_setting_problems(config: Mapping[str, Any], path: str) -> list[Problem]:
    """survival.design_cohort and survival.prediction.cohort must name a declared cohort."""
    cohorts = config.get("cohorts") or list(DEFAULT_COHORTS)
    survival = config.get("survival") if isinstance(config.get("survival"), Mapping) else {}
    prediction = survival.get("prediction") if isinstance(survival.get("prediction"), Mapping) else {}
    named = [("survival.design_cohort", survival.get("design_cohort"), cohorts),
             ("survival.prediction.cohort", prediction.get("cohort"), ["all", *cohorts])]  # fmt: skip
    return [
        Problem(path, f"{key}: '{value}' is not one of the cohorts: {', '.join(allowed)}",
                "name a cohort listed under `cohorts` (case matters)")
        for key, value, allowed in named
        if isinstance(value, str) and value not in allowed
    ]  # fmt: skip
