"""What every per-sample call job reads of the cohort, copied from the cohort steps' outputs.

Snakemake checks each input of a job against the inputs of the job producing it, so thousands of call_sample
jobs reading calibrate's outputs directly would each scan calibrate's three files per sample (a 5,000-sample
dry run spent most of its 25 minutes there); reading these copies, each scans this rule's five inputs.
"""

import shutil

from mrdtrack.tables import atomic_path

for source, target in zip(snakemake.input, snakemake.output, strict=True):
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
