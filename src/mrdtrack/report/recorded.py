"""The settings each producing step recorded next to its outputs (mrdtrack.settings.write_settings).

The methods quote these, the values in force when each table was made, never the producers' defaults: a report
rebuilt after a config change still describes the results it shows. Counting records its settings per sample
(in each qc.json); samples counted with different settings (batches counted months apart) are said to vary.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from mrdtrack.settings import read_settings

PathLike = str | os.PathLike[str]


def read_recorded(settings: Sequence[PathLike], qc: Sequence[PathLike]) -> dict[str, dict[str, Any]]:
    """{section: {key: value}} from the steps' settings files and the per-sample counting records."""
    recorded = read_settings(*[path for path in settings if os.path.exists(path)])
    counting = [_counting_record(path) for path in qc]
    counting = [record for record in counting if record]
    if counting:
        recorded["counting"] = {key: _one_value(counting, key) for key in counting[0]}
    return recorded


def _counting_record(path: PathLike) -> dict[str, Any]:
    try:
        with open(path) as handle:
            return json.load(handle).get("settings", {}).get("counting", {})
    except (OSError, ValueError, AttributeError):
        return {}


def _one_value(records: list[dict[str, Any]], key: str) -> Any:
    values = Counter(json.dumps(record.get(key)) for record in records)
    if len(values) == 1:
        return records[0].get(key)
    return "varies by sample: " + ", ".join(f"{json.loads(v)} ({n})" for v, n in values.most_common())


def setting(recorded: Mapping[str, Mapping[str, Any]], section: str, key: str) -> Any:
    """The value a step recorded for `section.key` (None when that step recorded nothing)."""
    values: Any = recorded
    for name in f"{section}.{key}".split("."):
        if not isinstance(values, Mapping) or name not in values:
            return None
        values = values[name]
    return values
