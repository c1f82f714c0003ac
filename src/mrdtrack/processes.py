"""Worker processes for the steps that split their work (counting's loci clusters, calling's scores).

Workers are forked: they inherit what the parent has loaded (a whole cohort) without pickling it, and no worker
re-imports the script that started it. Snakemake runs a rule's script as the main module, and a spawned or
forkserver worker (macOS's default; Linux's from Python 3.14) would run that script again. Where fork is not
the safe choice (anything but Linux) the work stays in one process; results never depend on the number of
workers.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def fork_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor | None:
    """A pool of `workers` forked processes, or None when one process must do (workers <= 1, or not Linux)."""
    if workers <= 1 or not sys.platform.startswith("linux"):
        return None
    context = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
