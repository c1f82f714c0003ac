"""Stage 1, the inputs (workflow/rules/common.smk, background.smk rule panel): the sample, patient and clinical
sheets, checked against their schemas, and each patient's tumor-informed panel VCF read into loci.

The entry points are listed in `__all__`: `load_inputs` checks every sheet of a run at once, `load_samples` and
`load_table` read one kind of sheet, and `build_panel` reads every patient's panel VCF into one table with the
`panel:` settings (`PanelSettings`). What is wrong is a `Problem`; `InputError` carries all of them.
"""

from mrdtrack.inputs.alignments import AlignmentInputError
from mrdtrack.inputs.panel import PanelSettings, build_panel
from mrdtrack.inputs.problems import InputError, Problem
from mrdtrack.inputs.sheets import Inputs, load_inputs, load_samples, load_table

__all__ = [
    "AlignmentInputError", "InputError", "Inputs", "PanelSettings", "Problem", "build_panel", "load_inputs", "load_samples", "load_table",
]  # fmt: skip
