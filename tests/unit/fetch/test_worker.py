"""A worker's threads: small files on the worker's own CPU, large ones anywhere; the thread pool
runs every index once, however far the gate opens."""

from __future__ import annotations

import os
import threading

import pytest

from pypidl.fetch import pool
from pypidl.fetch.worker import _SMALL_FILE, _HomeCpu, _run_threads

affinity = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and at least 2 CPUs",
)


def _in_thread(work):  # type: ignore[no-untyped-def]
    """Run ``work`` in a new thread (affinity is per thread: the test's own stays as it is)."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(work()))
    t.start()
    t.join()
    return out[0]


@affinity
def test_small_files_run_on_the_home_cpu_and_large_ones_anywhere() -> None:
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    home = _HomeCpu(len(cpus) - 1, cpus)

    def placements() -> list[set[int]]:
        seen = []
        for size in (20_000, _SMALL_FILE * 50, None, 2_000):
            home.enter(size)
            seen.append(set(os.sched_getaffinity(0)))
        return seen

    small, large, unknown, small_again = _in_thread(placements)
    assert small == {cpus[-1]}
    assert large == set(cpus)
    assert unknown == set(cpus)  # a file of unknown size may be large
    assert small_again == {cpus[-1]}


@affinity
def test_no_home_cpu_leaves_threads_where_they_are() -> None:
    before = set(os.sched_getaffinity(0))

    def place() -> set[int]:
        _HomeCpu(0, ()).enter(10)
        return set(os.sched_getaffinity(0))

    assert _in_thread(place) == before


@affinity
def test_cpus_are_shared_out_only_when_every_cpu_gets_a_worker() -> None:
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    assert pool._home_cpus(len(cpus)) == cpus
    assert pool._home_cpus(len(cpus) + 3) == cpus
    assert pool._home_cpus(len(cpus) - 1) == ()


def test_the_thread_pool_runs_every_index_once() -> None:
    done: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            done.append(i)

    order = list(range(500))
    _run_threads(work, order, threads=64)
    assert sorted(done) == order
