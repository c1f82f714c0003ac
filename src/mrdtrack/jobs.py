"""The samples of one per-sample workflow job, each with its own files.

A per-sample step runs as one job per sample or, with the config's `samples_per_job`, one job per run of samples
(workflow/rules/common.smk, `SampleJobs`). Either way the job's script gets its samples in order and, for each
named input or output, one path (one sample) or a list of paths in the same order; `per_sample` pairs them up
so the script reads the same in both layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace


def per_sample(samples: Sequence[str], **files: str | Sequence[str]) -> list[SimpleNamespace]:
    """One namespace per sample: `.sample` and, for each keyword, that sample's path.

    >>> [job.counts for job in per_sample(["S1", "S2"], counts=["S1.tsv", "S2.tsv"])]
    ['S1.tsv', 'S2.tsv']
    """
    samples = list(samples)
    paths = {name: [value] if isinstance(value, str) else list(value) for name, value in files.items()}
    for name, values in paths.items():
        if len(values) != len(samples):
            raise ValueError(f"{len(values)} '{name}' files for {len(samples)} samples")
    return [
        SimpleNamespace(sample=sample, **{name: values[i] for name, values in paths.items()})
        for i, sample in enumerate(samples)
    ]
