"""Stage 2, counting (workflow/rules/counting.smk): molecules (one per DNA fragment) at every panel locus of one
sample: the read model (`molecules`), the fast scanner (`bamscan`) and the per-sample tables (`sample`).

The entry points are listed in `__all__`: `count_sample` counts one BAM/CRAM with the `counting:` settings
(`CountSettings`, adjusted for a job of several samples by `settings_for_job`) and gives its tables
(`SampleCounts`); the errors are the ones a person can act on.
"""

from mrdtrack.counting.molecules import CountSettings, UmiSourceError
from mrdtrack.counting.sample import (
    PanelLocusError,
    SampleCounts,
    count_sample,
    settings_for_job,
)

__all__ = [
    "CountSettings", "PanelLocusError", "SampleCounts", "UmiSourceError", "count_sample",
    "settings_for_job",
]  # fmt: skip
