#!/usr/bin/env python3
"""What the build closure costs and adds: ``pypidl plan`` on loopback, with and without it.

Not a test.  It starts the test suite's index server on 127.0.0.1 serving an sdist built with
flit_core (padded to ``--padding-mib`` so an early stop shows), a ``setup.py``-only sdist like
``docopt==0.6.2``, and the real backends (setuptools, wheel, packaging, flit_core) re-packed
from this environment; then plans both sdists for the default 42 targets twice, with
``--no-build-deps`` and without, and prints the plan's own lines about the build closure.

    python scripts/bench_build_closure.py
    python scripts/bench_build_closure.py --padding-mib 20 --python-version 3.12
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pypidl.cli import main  # noqa: E402
from tests.lib.backends import make_flit_sdist, make_legacy_sdist, repack_installed  # noqa: E402
from tests.lib.server import IndexServer  # noqa: E402


def run_plan(
    srv: IndexServer, tmp: Path, extra: list[str]
) -> tuple[int, float, str, dict[str, Any]]:
    reqs = tmp / "requirements.txt"
    reqs.write_text("flitpkg==1.0\nlegacypkg==0.6.2\n", encoding="utf-8")
    out = tmp / "manifest.json"
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(
            ["plan", "-r", str(reqs), "--index-url", srv.simple_url, "--manifest", str(out),
             *extra]
        )  # fmt: skip
    return rc, time.perf_counter() - start, err.getvalue(), json.loads(out.read_text())


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--padding-mib", type=float, default=3.0)
    parser.add_argument("--python-version", action="append", default=[])
    args = parser.parse_args(argv)
    extra = [f"--python-version={v}" for v in args.python_version]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        os.environ["PYPIDL_CACHE_DIR"] = str(tmp / "cache")  # no answer from an earlier run
        os.environ["PIP_CONFIG_FILE"] = os.devnull
        dists = tmp / "dists"
        for project in ("setuptools", "wheel", "packaging", "flit_core"):
            repack_installed(project, dists)
        padding = int(args.padding_mib * 2**20)
        flit = make_flit_sdist(dists, "flitpkg", "1.0", padding=padding)
        make_legacy_sdist(dists, "legacypkg", "0.6.2")
        print(f"flitpkg sdist: {flit.stat().st_size / 2**20:.1f} MiB")
        with IndexServer() as srv:
            srv.add_dir(dists)
            for label, flags in (("--no-build-deps", ["--no-build-deps"]), ("default", [])):
                rc, seconds, log, manifest = run_plan(srv, tmp, [*extra, *flags])
                files = manifest["files"]
                build = [f for f in files if f["why"] == ["build"]]
                print(
                    f"{label}: exit {rc}, {seconds:.1f} s, {len(files)} file(s); "
                    f"build only: {sorted({f['project'] for f in build})}, "
                    f"{sum(f['size'] or 0 for f in build) / 2**20:.1f} MiB"
                )
                for line in log.splitlines():
                    if "Build requirements:" in line or "build closure added" in line:
                        print("   ", line.split("| INFO | ", 1)[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main_())
