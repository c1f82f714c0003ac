"""The `report:` config section (config/README.md), validated once so a typo fails before any figure is built."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from mrdtrack.settings import StepSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportSettings(StepSettings):
    """The `report:` config section; config/README.md documents each key.

    Parameters
    ----------
    title, study_name, report_date : str
        The page title, the study named under it and the date in its header.
    static_formats : tuple of str
        Image formats written beside each figure's HTML (png, svg, pdf, jpeg, webp).
    tf_floor : float or None
        Where the trajectories draw a tumor fraction of 0 of a sample without a LOD95 (a sample below its LOD95
        is drawn at it); None: a decade below the data.
    swimmer_sort : str
        The swimmer plot's first lane order, `cohort` or `time`.
    risk_table_step_months : float
        Spacing of the number-at-risk columns; 0: automatic.
    max_table_rows : int
        Rows shown in inline tables.
    """

    SECTION: ClassVar[str] = "report"

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
        """Settings from the `report:` section, falling back to the top-level study_name / report_date.

        Parameters
        ----------
        section : mapping or None
            The `report:` section of the config.
        config : mapping or None
            The whole config, for the top-level `study_name` and `report_date`.

        Returns
        -------
        ReportSettings
            The checked settings.

        Raises
        ------
        ConfigError
            On an unknown key or a value outside the schema.
        """
        values = {key: value for key, value in dict(section or {}).items() if value not in (None, "")}
        for key in ("study_name", "report_date"):
            if key not in values and (config or {}).get(key) not in (None, ""):
                values[key] = config[key]
        for key in ("title", "study_name", "report_date"):  # YAML turns 2024-05-01 into a date
            if key in values:
                values[key] = str(values[key])
        if "static_formats" in values:  # '.PNG' and 'png' alike
            values["static_formats"] = [str(f).lower().lstrip(".") for f in as_list(values["static_formats"])]
        return super().from_config(values)


def as_list(value: Any) -> list[Any]:
    """A config value that may be one item or a list, as a list (None and '' are empty)."""
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str | os.PathLike) else list(value)
