#!/usr/bin/env python3
"""Benchmark planning on a loopback index with latency: ``pypidl plan`` beside ``uv pip compile
--universal``, on the same requirements and the same index, in one run.

Not a test.  It builds a generated corpus (``--projects`` projects, a few releases each, with
dependencies, markers, Requires-Python and a share of platform wheels), serves it with the test
suite's index server on 127.0.0.1, adds ``--latency-ms`` to every request, then times:

* ``pypidl plan`` for the default targets (42 unless ``--pypidl-arg`` narrows them), with a
  fresh metadata cache;
* ``uv pip compile --universal --python-version 3.8`` with a fresh cache (skipped when uv is not
  installed).

For each it prints the wall time, requests and bytes the index served, and for pypidl the plan's
own bytes (what a sync would then download) and the share of those the index served while
planning.

    python scripts/bench_plan.py
    python scripts/bench_plan.py --projects 100 --latency-ms 50
    python scripts/bench_plan.py --pypidl-arg=--pip-compile
    python scripts/bench_plan.py --osv 15000 --pypidl-arg=--exclude-newer=7d   # the checks
    python scripts/bench_plan.py --live requirements.txt     # a real index: uses the network
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lib.server import Delay, IndexServer  # noqa: E402
from tests.lib.wheels import make_sdist, make_wheel  # noqa: E402

#: wheel tags of the platform-specific projects: one per default platform family
PLATFORM_TAGS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_17_aarch64.manylinux2014_aarch64",
    "win_amd64",
    "win_arm64",
    "macosx_10_9_x86_64",
    "macosx_11_0_arm64",
)


@dataclass
class Corpus:
    directory: Path
    roots: list[str]
    files: int
    bytes: int
    #: file name -> Requires-Python, which the index shows on the page (as real indexes do)
    requires_python: dict[str, str]


def build_corpus(directory: Path, projects: int, roots: int, seed: int) -> Corpus:
    """Write the wheels and sdists of a deterministic, resolvable corpus into ``directory``.

    Project ``k`` depends on a few projects with a larger number (so the graph has no cycle and
    every project is reached from the roots); some dependencies carry markers, some newest
    releases need Python >= 3.10 (3.8 and 3.9 then take an older one), one project in ten ships
    abi3 wheels per platform plus an sdist.
    """
    rng = random.Random(seed)  # noqa: S311 - benchmark data
    names = [f"bench-{k:03d}" for k in range(projects)]
    parents: dict[int, list[int]] = {k: [] for k in range(projects)}
    for k in range(roots, projects):
        parents[k].append(rng.randrange(0, k))  # reached from the roots
    deps: dict[int, list[tuple[int, str]]] = {k: [] for k in range(projects)}
    for k in range(projects):
        for p in parents[k]:
            deps[p].append((k, ""))
    for k in range(projects - 1):
        for _ in range(rng.randrange(0, 3)):
            j = rng.randrange(k + 1, projects)
            marker = rng.choice(
                ["", "", "", '; python_version < "3.11"', '; sys_platform == "win32"']
            )
            deps[k].append((j, marker))
    files = 0
    total = 0
    shown: dict[str, str] = {}
    for k, name in enumerate(names):
        versions = ["1.0.0", "1.1.0", "2.0.0"][: rng.randrange(2, 4)]
        platform = k % 10 == 7
        # only a third release needs 3.10, so ">=1.1" always has a release for 3.8 and 3.9
        newest_needs_310 = k % 6 == 1 and len(versions) == 3
        for n, version in enumerate(versions):
            newest = n == len(versions) - 1
            requires_python = ">=3.10" if newest and newest_needs_310 else ">=3.8"
            requires = sorted(
                {
                    f"{names[j]}>={'1.0' if rng.random() < 0.8 else '1.1'}{marker}"
                    for j, marker in deps[k]
                }
            )
            size = int(2 ** rng.uniform(15, 20))  # 32 KiB .. 1 MiB, log-uniform
            payload = {f"{name.replace('-', '_')}/data.bin": rng.randbytes(size)}
            tags = [f"cp38-abi3-{t}" for t in PLATFORM_TAGS] if platform else ["py3-none-any"]
            for tag in tags:
                path = make_wheel(
                    directory,
                    name,
                    version,
                    tag=tag,
                    requires_dist=requires,
                    requires_python=requires_python,
                    extra_files=payload,
                )
                files += 1
                total += path.stat().st_size
                shown[path.name] = requires_python
            if platform:
                path = make_sdist(
                    directory,
                    name,
                    version,
                    requires_dist=requires,
                    requires_python=requires_python,
                )
                files += 1
                total += path.stat().st_size
                shown[path.name] = requires_python
    return Corpus(directory, names[:roots], files, total, shown)


def write_osv(path: Path, count: int, names: list[str], seed: int) -> None:
    """A synthetic OSV PyPI export of ``count`` advisories, about one in a hundred naming a
    corpus project's 1.0.0 (fixed in 1.1.0), the rest other projects: the size of the real
    export, so reading it costs what reading the real one would."""
    import zipfile

    rng = random.Random(seed)  # noqa: S311 - benchmark data
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for k in range(count):
            ours = rng.random() < 0.01
            name = rng.choice(names) if ours else f"elsewhere-{k}"
            doc = {
                "id": f"PYSEC-2099-{k}",
                "aliases": [f"CVE-2099-{k}", f"GHSA-{k:04x}-bench-xxxx"],
                "summary": "benchmark advisory " + "x" * rng.randrange(100, 2000),
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": name},
                        "ranges": [
                            {
                                "type": "ECOSYSTEM",
                                "events": [{"introduced": "0"}, {"fixed": "1.1.0"}],
                            }
                        ],
                        "versions": ["0.9", "1.0.0"],
                    }
                ],
            }
            archive.writestr(f"PYSEC-2099-{k}.json", json.dumps(doc))


class Counter:
    """Bytes and requests the index served, by wrapping the server's send step."""

    def __init__(self, server: IndexServer):
        self.lock = threading.Lock()
        self.bytes = 0
        self.requests = 0
        self.kinds: dict[str, int] = {}
        original = server._send

        def send(h: Any, r: Any, *, head: bool, fault: Any) -> None:
            original(h, r, head=head, fault=fault)
            path = h.path.split("?", 1)[0]
            if path.endswith(".metadata"):
                kind = "metadata"
            elif "/packages/" in path:
                kind = "range" if h.headers.get("Range") and r.status == 206 else "file"
            else:
                kind = "page"
            with self.lock:
                self.requests += 1
                sent = 0 if head else len(r.body)
                self.bytes += sent
                self.kinds[kind] = self.kinds.get(kind, 0) + sent

        server._send = send  # type: ignore[method-assign]

    def reset(self) -> None:
        with self.lock:
            self.bytes = 0
            self.requests = 0
            self.kinds = {}

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        with self.lock:
            return self.bytes, self.requests, dict(self.kinds)


def clean_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PYPIDL_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env["PYPIDL_CACHE_DIR"] = str(work / "pypidl-cache")
    env["XDG_CACHE_HOME"] = str(work / "xdg-cache")
    return env


def run_pypidl(
    index_url: str | None, reqs: Path, work: Path, extra: list[str]
) -> tuple[float, int, dict[str, Any]]:
    shutil.rmtree(work / "pypidl-cache", ignore_errors=True)
    shutil.rmtree(work / "xdg-cache", ignore_errors=True)
    manifest = work / "manifest.json"
    cmd = [
        sys.executable,
        "-m",
        "pypidl",
        "plan",
        "-r",
        str(reqs),
        "-o",
        str(manifest),
        *(["--index-url", index_url] if index_url else []),
        *extra,
    ]
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, env=clean_env(work), capture_output=True, text=True, check=False, cwd=ROOT
    )
    elapsed = time.perf_counter() - started
    data: dict[str, Any] = {}
    if manifest.exists():
        data = json.loads(manifest.read_text())
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
    else:
        for line in proc.stderr.splitlines():
            if "metadata" in line.lower() or "version" in line.lower():
                print("    pypidl: " + line.split("| ")[-1])
    return elapsed, proc.returncode, data


def run_uv(uv: str, index_url: str | None, reqs: Path, work: Path) -> tuple[float, int]:
    cache = work / "uv-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [
        uv,
        "pip",
        "compile",
        "--universal",
        "--python-version",
        "3.8",
        "--no-config",
        "--cache-dir",
        str(cache),
        *(["--index-url", index_url] if index_url else []),
        "--quiet",
        "-o",
        str(work / "uv.txt"),
        str(reqs),
    ]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=clean_env(work), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
    return elapsed, proc.returncode


def find_uv() -> str | None:
    here = Path(sys.executable).parent / "uv"
    if here.exists():
        return str(here)
    return shutil.which("uv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--projects", type=int, default=300, help="projects (default 300)")
    parser.add_argument(
        "--roots", type=int, default=30, help="projects named in the requirements (default 30)"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="added to every request (default 20)"
    )
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--pypidl-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for 'pypidl plan' (repeatable; e.g. --pypidl-arg=--pip-compile)",
    )
    parser.add_argument(
        "--osv",
        type=int,
        default=0,
        metavar="N",
        help="also check the plan against a synthetic OSV export of N advisories (--advisories)",
    )
    parser.add_argument("--no-uv", action="store_true", help="time pypidl only")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each; the best is kept")
    parser.add_argument(
        "--live",
        metavar="REQUIREMENTS",
        help="no generated corpus: plan REQUIREMENTS against a real index (pip's default, or "
        "--index-url); opt-in, it uses the network",
    )
    parser.add_argument("--index-url", help="with --live: the index both tools read")
    args = parser.parse_args(argv)
    if args.live:
        return live(Path(args.live), args.index_url, args.pypidl_arg, no_uv=args.no_uv)

    work = Path(tempfile.mkdtemp(prefix="pypidl-bench-plan-"))
    try:
        started = time.perf_counter()
        corpus = build_corpus(work / "dists", args.projects, args.roots, args.seed)
        reqs = work / "requirements.txt"
        reqs.write_text("".join(f"{name}\n" for name in corpus.roots))
        if args.osv:
            osv = work / "osv.zip"
            write_osv(osv, args.osv, [f"bench-{k:03d}" for k in range(args.projects)], args.seed)
            args.pypidl_arg += ["--advisories", str(osv)]
            print(f"advisories: {args.osv} in {osv.stat().st_size / 2**20:.1f} MiB (zip)")
        print(
            f"corpus: {args.projects} projects, {corpus.files} files, "
            f"{corpus.bytes / 2**20:.0f} MiB, {len(corpus.roots)} requirements "
            f"(built in {time.perf_counter() - started:.1f} s); {args.latency_ms:g} ms per request"
        )
        with IndexServer() as server:
            for path in sorted(corpus.directory.iterdir()):
                server.add_file(path, requires_python=corpus.requires_python.get(path.name))
            counter = Counter(server)
            server.fail_always("*", Delay(args.latency_ms / 1000))

            best: tuple[float, int, dict[str, Any], tuple[int, int, dict[str, int]]] | None = None
            for _ in range(args.rounds):
                counter.reset()
                elapsed, code, data = run_pypidl(server.simple_url, reqs, work, args.pypidl_arg)
                if best is None or elapsed < best[0]:
                    best = (elapsed, code, data, counter.snapshot())
            assert best is not None  # noqa: S101 - rounds >= 1
            p_time, p_code, manifest, (p_bytes, p_requests, p_kinds) = best
            entries = manifest.get("files", manifest.get("entries", []))
            plan_bytes = sum(int(e.get("size") or 0) for e in entries)
            projects = len(manifest.get("projects", {}))
            print(
                f"pypidl plan: {p_time:6.2f} s  exit {p_code}  {p_requests} requests, "
                f"{p_bytes / 2**10:,.0f} KiB served "
                f"({', '.join(f'{k} {v / 2**10:,.0f} KiB' for k, v in sorted(p_kinds.items()))})"
            )
            share = p_bytes / plan_bytes if plan_bytes else float("nan")
            print(
                f"             plan: {len(entries)} files, {projects} projects, "
                f"{plan_bytes / 2**20:,.1f} MiB; served while planning = {share:.2%} of that"
            )

            uv = None if args.no_uv else find_uv()
            if uv is None:
                print("uv: not run")
                return 0 if p_code == 0 else 1
            u_best: tuple[float, int, tuple[int, int, dict[str, int]]] | None = None
            for _ in range(args.rounds):
                counter.reset()
                elapsed, code = run_uv(uv, server.simple_url, reqs, work)
                if u_best is None or elapsed < u_best[0]:
                    u_best = (elapsed, code, counter.snapshot())
            assert u_best is not None  # noqa: S101 - rounds >= 1
            u_time, u_code, (u_bytes, u_requests, _kinds) = u_best
            print(
                f"uv universal: {u_time:6.2f} s  exit {u_code}  {u_requests} requests, "
                f"{u_bytes / 2**10:,.0f} KiB served"
            )
            print(f"ratio pypidl / uv: {p_time / u_time:.2f}")
            return 0 if p_code == 0 and u_code == 0 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def received_bytes() -> int | None:
    """Bytes this machine received on its non-loopback interfaces so far (Linux), else None.

    The live benchmark reads it before and after each tool: with nothing else using the network
    at the time, the difference is what that tool pulled from the index.
    """
    base = Path("/sys/class/net")
    if not base.is_dir():
        return None
    total = 0
    for iface in base.iterdir():
        if iface.name == "lo":
            continue
        with contextlib.suppress(OSError, ValueError):
            total += int((iface / "statistics" / "rx_bytes").read_text())
    return total


def _mib(before: int | None, after: int | None) -> str:
    if before is None or after is None:
        return "n/a"
    return f"{(after - before) / 2**20:,.1f} MiB received"


def live(reqs: Path, index_url: str | None, extra: list[str], *, no_uv: bool) -> int:
    """Both tools on a real index: times, their ratio, and what each pulled over the network."""
    work = Path(tempfile.mkdtemp(prefix="pypidl-bench-plan-"))
    try:
        before = received_bytes()
        p_time, p_code, manifest = run_pypidl(index_url, reqs.resolve(), work, ["-v", *extra])
        p_rx = _mib(before, received_bytes())
        entries = manifest.get("files", [])
        plan_bytes = sum(int(e.get("size") or 0) for e in entries)
        print(
            f"pypidl plan: {p_time:6.2f} s  exit {p_code}  {len(entries)} files, "
            f"{plan_bytes / 2**20:,.1f} MiB planned; {p_rx} while planning"
        )
        uv = None if no_uv else find_uv()
        if uv is None:
            return 0 if p_code == 0 else 1
        before = received_bytes()
        u_time, u_code = run_uv(uv, index_url, reqs.resolve(), work)
        print(f"uv universal: {u_time:6.2f} s  exit {u_code}; {_mib(before, received_bytes())}")
        print(f"ratio pypidl / uv: {p_time / u_time:.2f}")
        return 0 if p_code == 0 and u_code == 0 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
