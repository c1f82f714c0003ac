"""Work is split over forked processes only where fork is safe, and always gives what one process gives."""

from __future__ import annotations

import os

import pytest

from mrdtrack import processes
from mrdtrack.processes import in_parallel


def pid_and_square(offset: int, item: int) -> tuple[int, int]:
    return os.getpid(), offset + item * item


def test_forked_workers_give_the_results_in_order_and_share_what_they_were_given():
    results = in_parallel(pid_and_square, list(range(40)), 1000, workers=3)
    assert [value for _, value in results] == [1000 + i * i for i in range(40)]
    if processes.fork_pool(2) is not None:  # Linux
        assert os.getpid() not in {pid for pid, _ in results}


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_where_fork_is_not_safe_one_process_does_the_work(monkeypatch, platform):
    monkeypatch.setattr(processes.sys, "platform", platform)
    assert processes.fork_pool(4) is None
    results = in_parallel(pid_and_square, [1, 2, 3], 0, workers=4)
    assert results == [(os.getpid(), 1), (os.getpid(), 4), (os.getpid(), 9)]


def test_one_worker_never_starts_a_process():
    assert processes.fork_pool(1) is None
