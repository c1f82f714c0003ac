"""The `report:` config section (config/README.md), validated once so a typo fails before any figure is built."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from mrdtrack.logs import UserFacingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportSettings:
    """The `report:` config section (config/README.md)."""

    title: str = "ctDNA MRD report"
    study_name: str = "mrdtrack MRD study"
    report_date: str = ""
    static_formats: tuple[str, ...] = ()
    # None: automatic, a decade below the smallest TF > 0 or LOD95 (Context.tf_floor)
    tf_floor: float | None = None
    swimmer_sort: str = "cohort"
    risk_table_step_months: float = 0.0
    max_table_rows: int = 50

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any] | None, config: Mapping[str, Any] | None = None
    ) -> ReportSettings:
        """Settings from the `report:` section, falling back to the top-level study_name / report_date."""
        section, config = dict(section or {}), dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            log.warning("ignoring unknown report setting(s): %s", ", ".join(unknown))
        values = {k: v for k, v in section.items() if k in known and v not in (None, "")}
        for key in ("study_name", "report_date"):
            if key not in values and config.get(key) not in (None, ""):
                values[key] = config[key]
        return cls._validated(values)

    @classmethod
    def _validated(cls, values: dict[str, Any]) -> ReportSettings:
        formats = values.get("static_formats", ())
        values["static_formats"] = tuple(str(f).lower().lstrip(".") for f in as_list(formats))
        for key in ("title", "study_name", "report_date"):  # YAML turns 2024-05-01 into a date
            if key in values:
                values[key] = str(values[key])
        try:
            settings = cls(**values)
            if settings.tf_floor is not None:
                settings = cls(**{**values, "tf_floor": float(settings.tf_floor)})
        except (TypeError, ValueError) as error:
            raise UserFacingError(f"report settings: {error}") from None
        if settings.tf_floor is not None and not 0 < settings.tf_floor < 1:
            raise UserFacingError(f"report.tf_floor must be in (0, 1), got {settings.tf_floor}")
        if settings.swimmer_sort not in ("cohort", "time"):
            raise UserFacingError(
                f"report.swimmer_sort must be 'cohort' or 'time', got {settings.swimmer_sort!r}"
            )
        unsupported = set(settings.static_formats) - {"png", "svg", "pdf", "jpeg", "webp"}
        if unsupported:
            raise UserFacingError(f"report.static_formats: unsupported {sorted(unsupported)}")
        return settings


def as_list(value: Any) -> list[Any]:
    """A config value that may be one item or a list, as a list (None and '' are empty)."""
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str | os.PathLike) else list(value)
