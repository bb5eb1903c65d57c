"""The planner's cap on glibc's malloc arenas, seen in a real process's allocator."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from pypidl import _malloc

glibc_only = pytest.mark.skipif(not _malloc._glibc(), reason="glibc's malloc only")

#: eight threads allocating at once, then glibc's own account of its arenas on stderr
_PROBE = textwrap.dedent(
    """
    import ctypes, sys, threading
    from pypidl._malloc import limit_arenas
    if sys.argv[1] == "limit":
        print("took", limit_arenas(), file=sys.stderr)
    both = threading.Barrier(8)
    def work():
        both.wait()
        held = [bytearray(4096) for _ in range(2000)]
        both.wait()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.stderr.flush()
    ctypes.CDLL(None).malloc_stats()
    """
)


def _child(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a new interpreter (its own allocator), without the user's arena setting
    unless ``env`` gives one."""
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def _arenas(mode: str, **env: str) -> tuple[int, str]:
    done = _child(_PROBE, mode, **env)
    lines = done.stderr.splitlines()
    return sum(line.startswith("Arena ") for line in lines), done.stderr


@glibc_only
def test_threads_share_at_most_the_set_arenas() -> None:
    arenas, err = _arenas("limit")
    assert "took True" in err
    assert 1 <= arenas <= _malloc.ARENAS, err
    # without the cap the same threads get arenas of their own (up to eight per core)
    unlimited, err = _arenas("none")
    assert unlimited > _malloc.ARENAS, err


@glibc_only
def test_the_users_own_setting_is_left_alone() -> None:
    arenas, err = _arenas("limit", MALLOC_ARENA_MAX="4")
    assert "took False" in err
    assert arenas > _malloc.ARENAS, err


def test_elsewhere_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(_malloc, "_glibc", lambda: False)
    assert _malloc.limit_arenas.__wrapped__() is False


#: 60 MiB in 4 KiB blocks (below glibc's mmap threshold: on its heap), all but one in fifty
#: freed while the last one keeps the heap's top in use; then the resident size before and
#: after give_back, in KiB
_HOLES = textwrap.dedent(
    """
    import sys
    from pypidl._malloc import give_back
    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4
    blocks = [bytes(4096) for _ in range(15_000)]
    kept = blocks[::50] + blocks[-1:]
    del blocks
    before = rss()
    gave = give_back()
    print(before, rss(), gave)
    """
)


@glibc_only
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_give_back_returns_the_holes_a_plan_leaves() -> None:
    done = _child(_HOLES)
    before, after, gave = done.stdout.split()
    assert gave == "True"
    assert int(before) - int(after) > 30 * 1024, done.stdout  # most of the 60 MiB freed
