"""The value each producing step used for a setting: the config's, else that step's own default.

This is the report's only look into the producers' code (their settings classes, imported by name), kept in one
place so it can be replaced by the producers writing the values they used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

# Where each config section's defaults live, so the methods state the value in force even when not configured.
SETTINGS_CLASSES = {
    "counting": ("mrdtrack.counting.molecules", "CountSettings"),
    "background": ("mrdtrack.calling.background", "BackgroundSettings"),
    "calling": ("mrdtrack.calling.caller", "CallSettings"),
    "clinical_join": ("mrdtrack.outcomes.clinical", "ClinicalSettings"),
    "survival": ("mrdtrack.outcomes.survival", "SurvivalSettings"),
}


def setting(config: Mapping[str, Any], section: str, key: str) -> Any:
    """The value a step used: the config's, else that step's default (None when neither is known)."""
    configured = config.get(section)
    if isinstance(configured, Mapping) and configured.get(key) is not None:
        return configured[key]
    try:
        module, name = SETTINGS_CLASSES[section]
        return getattr(getattr(importlib.import_module(module), name)(), key)
    except Exception:  # a producer renamed or not importable: the methods then say "not recorded"
        return None
