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
from collections.abc import Callable, Sequence
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


_SHARED: Any = None  # what a worker process's tasks share (a whole cohort), set once when the worker starts


def in_parallel(
    task: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any, workers: int
) -> list[Any]:
    """[task(shared, item) for item in items], spread over `workers` forked processes, which inherit `shared`
    instead of receiving a pickled copy. Results come in the order of `items`."""
    pool = fork_pool(min(workers, len(items)), _share, (shared,))
    if pool is None:
        return [task(shared, item) for item in items]
    # Chunks small enough to balance uneven tasks, large enough to cut the messages between processes.
    chunk = max(1, len(items) // (workers * 16))
    with pool:
        return list(pool.map(_run_shared, [task] * len(items), items, chunksize=chunk))


def _share(shared: Any) -> None:
    global _SHARED
    _SHARED = shared


def _run_shared(task: Callable[[Any, Any], Any], item: Any) -> Any:
    return task(_SHARED, item)
