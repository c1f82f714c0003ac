"""One way to build every config section's settings, and the record of the settings a step used.

Each section of config/config.yaml (counting, background, calling, clinical_join, survival, report) is a frozen
dataclass deriving from `StepSettings`, built with `from_config`:

- an unknown key is an error naming the section, the key and the valid keys (most often a typo);
- every value is checked against that section of schemas/config.schema.yaml, the one place for ranges and
  enums, and every problem is listed at once;
- lists become tuples, nested sections their own settings, so a settings object is hashable and immutable.

Rules between keys that a schema cannot say (survival.p0 < p1) are each class's `check_combination`.

A step writes the settings it used next to its outputs (`write_settings`, a JSON file {section: {key: value}}),
and whoever reads those outputs (the report, a later step) reads that file (`read_settings`), never the
producer's defaults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Self

from mrdtrack.logs import UserFacingError
from mrdtrack.tables import write_json

CONFIG_SCHEMA = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(UserFacingError, ValueError):
    """A config section with unknown keys or values outside the schema (a user error, and a bad value)."""


@dataclasses.dataclass(frozen=True)
class StepSettings:
    """Base of every section's settings; `SECTION` is its dotted path in the config ('survival.prediction')."""

    SECTION: ClassVar[str] = ""

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> Self:
        """Settings from a config section (None or {}: all defaults); a wrong key or value is a ConfigError."""
        values = _yaml_exponents(cls, _as_mapping(cls.SECTION, section))
        problems = _unknown_keys(cls, values, f"{cls.SECTION}.") or schema_problems(cls.SECTION, values)
        if problems:
            raise ConfigError(_message(cls.SECTION, problems))
        settings = cls.from_recorded(values)
        combination = settings.check_combination()
        if combination:
            raise ConfigError(_message(cls.SECTION, combination))
        return settings

    @classmethod
    def from_recorded(cls, values: Mapping[str, Any]) -> Self:
        """Settings from values already checked (a step's recorded settings): only their types are restored."""
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for field in dataclasses.fields(cls):
            if field.name not in values:
                continue
            value, hint = values[field.name], hints[field.name]
            if isinstance(hint, type) and issubclass(hint, StepSettings):
                value = hint.from_recorded(value or {})
            elif typing.get_origin(hint) is tuple and value is not None:
                value = tuple(value) if isinstance(value, list | tuple) else (value,)
            kwargs[field.name] = value
        return cls(**kwargs)

    def check_combination(self) -> list[str]:
        """Problems between keys (each class with such rules overrides this); [] when none."""
        return []

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (tuples as lists, nested settings as mappings)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _as_mapping(section: str, values: Any) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section '{section}' must be a mapping of keys to values, not {values!r}")
    return dict(values)


def _yaml_exponents(cls: type[StepSettings], values: dict[str, Any]) -> dict[str, Any]:
    """YAML 1.1 (PyYAML, Snakemake) reads `1e-6` as text: a number setting takes it as the number it means."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if isinstance(value, str) and "float" in str(hints.get(key, "")):
            with contextlib.suppress(ValueError):  # not a number: the schema check names it
                values[key] = float(value)
    return values


def _unknown_keys(cls: type[StepSettings], values: Mapping[str, Any], prefix: str = "") -> list[str]:
    known = sorted(field.name for field in dataclasses.fields(cls))
    problems = [
        f"unknown key '{prefix}{key}'; valid keys of {prefix.rstrip('.')}: {', '.join(known)}"
        for key in sorted(set(values) - set(known))
    ]
    hints = typing.get_type_hints(cls)
    for key in known:  # nested sections (survival.prediction) name their own keys
        hint = hints[key]
        if isinstance(hint, type) and issubclass(hint, StepSettings) and isinstance(values.get(key), Mapping):
            problems += _unknown_keys(hint, values[key], f"{prefix}{key}.")
    return problems


def _message(section: str, problems: list[str]) -> str:
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return f"config section '{section}' ({len(problems)} problem(s); config/README.md documents each key):\n{lines}"


def schema_problems(section: str, values: Mapping[str, Any]) -> list[str]:
    """Every way `values` breaks the schema of config section `section` ('key: reason'), in key order."""
    import jsonschema  # only a step that is handed a config section pays for it

    validator = jsonschema.Draft202012Validator(section_schema(section))
    errors = sorted(validator.iter_errors(dict(values)), key=lambda error: [str(p) for p in error.path])
    return [f"{'.'.join([section, *map(str, error.path)])}: {error.message}" for error in errors]


@cache
def section_schema(section: str) -> dict[str, Any]:
    """The schema of one config section ('survival.prediction' walks into nested sections)."""
    schema = config_schema()
    for name in section.split("."):
        schema = schema["properties"][name]
    return schema


@cache
def config_schema() -> dict[str, Any]:
    import yaml

    with open(CONFIG_SCHEMA) as handle:
        return yaml.safe_load(handle)


def settings_record(*settings: StepSettings) -> dict[str, dict[str, Any]]:
    """{section: {key: value}} of these settings, as a step records them."""
    return {item.SECTION: item.to_dict() for item in settings}


def write_settings(path: str | os.PathLike[str], *settings: StepSettings) -> None:
    """Record the settings a step used, as {section: {key: value}}, atomically."""
    write_json(settings_record(*settings), path)


def read_settings(*paths: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The sections recorded by `write_settings` in these files, merged (a later file wins for a section)."""
    recorded: dict[str, dict[str, Any]] = {}
    for path in paths:
        with open(path) as handle:
            recorded.update(json.load(handle))
    return recorded
