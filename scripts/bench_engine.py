#!/usr/bin/env python3
"""Benchmark the download engine on loopback: N files of M MiB, a few concurrency/process mixes.

Not a test.  It starts the test suite's index server on 127.0.0.1, serves generated files
(random bytes, so nothing compresses), and times :func:`pypidl.fetch.pool.run` into a fresh
directory for each setting.  Loopback measures the engine's own overhead (processes, threads,
hashing, writing), not a network.

    python scripts/bench_engine.py --files 64 --size-mib 8
    python scripts/bench_engine.py --setting 1x4 --setting 2x64 --setting 4x256
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pypidl.config import NetworkSettings  # noqa: E402
from pypidl.fetch import pool as engine  # noqa: E402
from pypidl.manifest import Entry  # noqa: E402
from tests.lib.server import IndexServer  # noqa: E402

DEFAULT_SETTINGS = ("1x8", "1x64", "2x64", "2x256", "4x256")


def make_files(directory: Path, count: int, size: int, projects: int) -> list[Path]:
    import random

    rng = random.Random(0)  # noqa: S311 - benchmark data
    paths = []
    for i in range(count):
        path = directory / f"bench{i % projects}-1.{i}-py3-none-any.whl"
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return paths


def parse_setting(text: str) -> tuple[int, int]:
    processes, _, concurrency = text.partition("x")
    return int(processes), int(concurrency)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=32, help="number of files (default 32)")
    parser.add_argument("--size-mib", type=float, default=4.0, help="size of each file (default 4)")
    parser.add_argument(
        "--projects", type=int, default=16, help="projects the files spread over (default 16)"
    )
    parser.add_argument(
        "--setting",
        action="append",
        metavar="PxC",
        help=f"processes x concurrency to time (repeatable; default {' '.join(DEFAULT_SETTINGS)})",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per setting; the best is kept")
    args = parser.parse_args(argv)
    settings = [parse_setting(s) for s in (args.setting or DEFAULT_SETTINGS)]
    size = int(args.size_mib * 1024 * 1024)

    work = Path(tempfile.mkdtemp(prefix="pypidl-bench-"))
    try:
        src = work / "src"
        src.mkdir()
        with IndexServer() as server:
            served = [
                server.add_file(p, metadata=False)
                for p in make_files(src, args.files, size, args.projects)
            ]
            entries = [
                Entry(
                    project=f.project,
                    version=f.version,
                    filename=f.filename,
                    urls=(f.url,),
                    sha256=f.sha256,
                    size=f.size,
                )
                for f in served
            ]
            total = sum(f.size for f in served)
            print(
                f"{args.files} files x {args.size_mib:g} MiB = {total / 2**20:.0f} MiB over {args.projects} projects"
            )
            print(f"{'processes':>9} {'streams':>8} {'seconds':>8} {'MiB/s':>8}  result")
            for processes, concurrency in settings:
                best = float("inf")
                outcome = ""
                for _ in range(args.rounds):
                    dest = work / "mirror"
                    shutil.rmtree(dest, ignore_errors=True)
                    options = engine.EngineOptions(
                        concurrency=concurrency,
                        processes=processes,
                        net=NetworkSettings(backoff=0.05),
                    )
                    started = time.perf_counter()
                    report = engine.run(entries, dest, options=options)
                    elapsed = time.perf_counter() - started
                    best = min(best, elapsed)
                    outcome = f"{len(report.downloaded)} downloaded, {len(report.failed)} failed"
                print(
                    f"{processes:>9} {concurrency:>8} {best:>8.2f} {total / 2**20 / best:>8.1f}  {outcome}"
                )
            # A re-run over the complete mirror: stat checks only.
            server.clear_requests()
            started = time.perf_counter()
            report = engine.run(entries, work / "mirror")
            print(
                f"re-run over the complete mirror: {time.perf_counter() - started:.2f}s, "
                f"{len(report.skipped)} skipped, {len(server.requests)} requests"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
