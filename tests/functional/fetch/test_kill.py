"""The engine as a whole process tree: Ctrl-C, kill -9, and flat memory on a large file.

A small driver script runs :func:`pypidl.fetch.pool.run` in a subprocess (its own session, so a
signal can reach the whole tree the way a terminal's Ctrl-C does) against the loopback server
of the test process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pypidl.config import NetworkSettings
from pypidl.fetch import pool as engine
from pypidl.hashing import file_sha256
from pypidl.manifest import Entry
from tests.lib.interrupts import blob, default_sigint, parts_with_data, stalling_files, wait_for
from tests.lib.mirror import entry_for
from tests.lib.server import IndexServer, ServedFile

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals to a process group are POSIX")

DRIVER = """
import json, resource, signal, sys
from pypidl.fetch import pool as engine
from pypidl.config import NetworkSettings
from pypidl.manifest import Entry

class Events:
    def on_start(self, files, size): pass
    def on_bytes(self, n): pass
    def on_file(self, result):
        print("file", result.entry.filename, result.status, flush=True)
    def on_log(self, level, message): pass

def main():
    def on_term(signum, frame):  # what the CLI does: SIGTERM stops a run like Ctrl-C
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    entries = [Entry.from_json(e, "spec")[0] for e in spec["entries"]]
    options = engine.EngineOptions(
        concurrency=spec["concurrency"], processes=spec["processes"], net=NetworkSettings(**spec["net"])
    )
    report = engine.run(entries, spec["root"], options=options, events=Events())
    print("report", json.dumps({
        "interrupted": report.interrupted,
        "statuses": sorted(r.status for r in report.results),
        "errors": sorted({r.error for r in report.results if r.error}),
        "children_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }), flush=True)
    return 130 if report.interrupted else (1 if report.failed else 0)

if __name__ == "__main__":
    sys.exit(main())
"""


def start_driver(
    tmp_path: Path,
    entries: list[Entry],
    root: Path,
    *,
    processes: int = 2,
    concurrency: int = 8,
    net: dict | None = None,
) -> subprocess.Popen[str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "entries": [e.to_json() for e in entries],
                "root": str(root),
                "processes": processes,
                "concurrency": concurrency,
                "net": net
                or {"backoff": 0.01, "retries": 3, "stall_timeout": 60, "read_timeout": 60},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return subprocess.Popen(
        [sys.executable, str(script), str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=default_sigint,  # the driver's Ctrl-C is Python's own KeyboardInterrupt
        cwd=tmp_path,
    )


def final_files(root: Path) -> list[Path]:
    packages = root / "packages"
    return (
        [p for p in packages.rglob("*") if p.is_file() and not p.name.startswith(".")]
        if packages.exists()
        else []
    )


def scenario(index_server, tmp_path: Path) -> tuple[IndexServer, list[ServedFile]]:
    """Four files that finish at once, four that stall after two chunks for a long time."""
    server = index_server()
    return server, stalling_files(server, tmp_path)


def rerun_completes(server: IndexServer, files: list[ServedFile], root: Path) -> None:
    server.clear_faults()
    server.clear_requests()
    entries = [entry_for(f) for f in files]
    report = engine.run(
        entries, root, options=engine.EngineOptions(net=NetworkSettings(backoff=0.01))
    )
    assert report.failed == []
    for f in files:
        assert file_sha256(root / "packages" / f.project / f.filename) == f.sha256
    assert list(root.rglob(".pypidl-*.part")) == []
    resumed = [r for r in server.requests if "Range" in r.headers]
    assert resumed  # the stalled files continued where they stopped
    server.clear_requests()
    assert all(r.status == "skipped" for r in engine.run(entries, root).results)
    assert server.requests == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_the_tree_keeps_parts_and_a_rerun_completes(index_server, tmp_path, signum):
    server, files = scenario(index_server, tmp_path)
    root = tmp_path / "mirror"
    proc = start_driver(tmp_path, [entry_for(f) for f in files], root)
    try:
        wait_for(lambda: len(parts_with_data(root)) == 4 and len(final_files(root)) == 4)
        os.killpg(proc.pid, signum)  # the whole tree, as a terminal's Ctrl-C or a service stop
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()  # reaps it and closes its pipes, also after a timeout
    assert proc.returncode == 130, err
    report = json.loads(out.split("report ", 1)[1])
    assert report["interrupted"] is True
    assert report["statuses"].count("downloaded") == 4
    assert "interrupted (partial download kept for resume)" in report["errors"]
    assert "interrupted" in report["statuses"]  # stopped, not failed
    assert "failed" not in report["statuses"]
    assert "Traceback" not in err
    assert len(parts_with_data(root)) == 4  # kept for resume
    by_name = {f.filename: f for f in files}
    for path in final_files(root):
        assert file_sha256(path) == by_name[path.name].sha256
    rerun_completes(server, files, root)


def test_kill_9_of_the_tree_then_a_rerun_completes(index_server, tmp_path):
    server, files = scenario(index_server, tmp_path)
    root = tmp_path / "mirror"
    proc = start_driver(tmp_path, [entry_for(f) for f in files], root)
    try:
        wait_for(lambda: len(parts_with_data(root)) == 4 and len(final_files(root)) >= 2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    by_name = {f.filename: f for f in files}
    for path in final_files(root):  # nothing unverified under a final name, even after kill -9
        assert file_sha256(path) == by_name[path.name].sha256
    rerun_completes(server, files, root)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units and semantics differ")
def test_memory_stays_flat_on_a_large_file(index_server, tmp_path):
    """A 64 MiB file must not raise the worker's peak memory by anything like 64 MiB."""
    server = index_server()
    small = server.add_file(blob(tmp_path, "small", 200_000), metadata=False)
    big = server.add_file(blob(tmp_path, "big", 64 * 1024 * 1024), metadata=False)

    def peak(served: ServedFile, where: str) -> int:
        proc = start_driver(
            tmp_path, [entry_for(served)], tmp_path / where, processes=1, concurrency=1
        )
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        report = json.loads(out.split("report ", 1)[1])
        assert report["statuses"] == ["downloaded"]
        return int(report["children_maxrss_kib"]) * 1024

    baseline = peak(small, "m1")
    large = peak(big, "m2")
    assert file_sha256(tmp_path / "m2" / "packages" / "big" / big.filename) == big.sha256
    assert large - baseline < 24 * 1024 * 1024, (baseline, large)
