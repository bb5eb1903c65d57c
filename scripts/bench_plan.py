#!/usr/bin/env python3
"""Benchmark planning on a loopback index shaped like the real one: ``pypidl plan`` beside
``uv pip compile --universal``, on the same requirements and the same index, in one run.

Not a test.  For each size in ``--sizes`` (default 100, 300 and 1,000 projects) it builds the
corpus of ``bench_corpus.py`` (projects with thousands of releases, compiled projects with
dozens of wheels per release, deep dependency chains), serves it on 127.0.0.1 with
``--latency-ms`` added to every answer, and runs:

* ``pypidl plan`` for the default targets (67 unless ``--pypidl-arg`` narrows them) with a
  fresh cache; then again, unchanged, with the cache the first run left (the second plan);
* ``uv pip compile --universal --python-version 3.8`` with a fresh cache (skipped when uv is not
  installed).

Each row gives wall time, CPU time (user + system), peak RSS and what the index sent (bytes,
requests); the second plan also how many of its requests were conditional and answered 304.
With ``--rounds N`` each figure is the median of N runs.

    python scripts/bench_plan.py
    python scripts/bench_plan.py --sizes 300 --rounds 3
    python scripts/bench_plan.py --sizes 300 --osv 15000 --pypidl-arg=--exclude-newer=7d  # checks
    python scripts/bench_plan.py --live requirements.txt     # a real index: uses the network
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_corpus import CorpusServer, build_corpus  # noqa: E402


@dataclass
class Run:
    """One run of one tool."""

    wall: float
    cpu: float
    rss_mib: float
    code: int
    stderr: str
    sent: dict[str, Any]


def clean_env(work: Path) -> dict[str, str]:
    # (PYTHONDONTWRITEBYTECODE too: an installed pypidl has its bytecode, compiling it on every
    # run would be counted as planning)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "PYPIDL_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env["PYPIDL_CACHE_DIR"] = str(work / "pypidl-cache")
    env["XDG_CACHE_HOME"] = str(work / "xdg-cache")
    return env


#: Runs a command and reports its resource use.  The tool is started from this small process,
#: not from the benchmark: Linux carries the peak RSS of the process that forked into the one it
#: execs, and the benchmark holds the whole corpus (this helper adds a floor of about 10 MiB).
_RUSAGE = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_pid, status, usage = os.wait4(proc.pid, 0)
print(json.dumps([usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
                  os.waitstatus_to_exitcode(status)]))
"""


def measure(cmd: list[str], env: dict[str, str], server: CorpusServer | None) -> Run:
    """Run ``cmd``; its wall and CPU time, peak RSS (from ``wait4``), and what the index sent."""
    if server is not None:
        server.stats.reset()
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _RUSAGE, *cmd],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    wall = time.perf_counter() - started
    cpu, rss_kib, code = json.loads(proc.stdout.strip().splitlines()[-1])
    sent = server.stats.snapshot() if server is not None else {}
    return Run(wall, cpu, rss_kib / 1024, code, proc.stderr, sent)


def pypidl_cmd(index_url: str | None, reqs: Path, manifest: Path, extra: list[str]) -> list[str]:
    return [
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


def uv_cmd(uv: str, index_url: str | None, reqs: Path, work: Path) -> list[str]:
    return [
        uv,
        "pip",
        "compile",
        "--universal",
        "--python-version",
        "3.8",
        "--no-config",
        "--cache-dir",
        str(work / "uv-cache"),
        *(["--index-url", index_url] if index_url else []),
        "--quiet",
        "-o",
        str(work / "uv.txt"),
        str(reqs),
    ]


def _plan_of(manifest: Path) -> dict[str, Any] | None:
    """A manifest without its creation time (what the plan chose), or None when missing."""
    if not manifest.exists():
        return None
    data: dict[str, Any] = json.loads(manifest.read_text())
    data.pop("created", None)
    return data


def find_uv() -> str | None:
    here = Path(sys.executable).parent / "uv"
    if here.exists():
        return str(here)
    return shutil.which("uv")


def _median(runs: list[Run]) -> Run:
    """The run with the median wall time, with each figure the median over ``runs``."""
    runs = sorted(runs, key=lambda r: r.wall)
    middle = runs[len(runs) // 2]
    return Run(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        statistics.median(r.rss_mib for r in runs),
        max(r.code for r in runs),
        middle.stderr,
        middle.sent,
    )


def _row(label: str, run: Run) -> str:
    sent = run.sent
    extra = ""
    if sent.get("conditional"):
        extra = f", {sent['conditional']} conditional, {sent['not_modified']} answered 304"
    return (
        f"  {label:<22} {run.wall:7.2f} s wall {run.cpu:7.2f} s CPU {run.rss_mib:6.0f} MiB RSS "
        f"{sent.get('bytes', 0) / 2**20:8.2f} MiB in {sent.get('requests', 0):5d} requests"
        f"{extra}  exit {run.code}"
    )


def write_osv(path: Path, count: int, names: list[str], seed: int) -> None:
    """A synthetic OSV PyPI export of ``count`` advisories, about one in a hundred naming one of
    the corpus's projects below 1.0 (every release "fixed" from there), the rest other projects:
    the size of the real export, so reading it costs what reading the real one would."""
    import random
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
                                "events": [{"introduced": "0"}, {"fixed": "1.0"}],
                            }
                        ],
                    }
                ],
            }
            archive.writestr(f"PYSEC-2099-{k}.json", json.dumps(doc))


def bench_size(projects: int, args: argparse.Namespace, uv: str | None) -> dict[str, Any]:
    """The three runs at one corpus size; their medians, printed and returned."""
    started = time.perf_counter()
    corpus = build_corpus(projects, max(1, projects // 10), args.seed)
    print(
        f"corpus: {projects} projects, {corpus.files:,} files listed, {len(corpus.roots)} "
        f"requirements (built in {time.perf_counter() - started:.1f} s); "
        f"{args.latency_ms:g} ms per request"
    )
    work = Path(tempfile.mkdtemp(prefix="pypidl-bench-plan-"))
    extra = list(args.pypidl_arg)
    try:
        reqs = work / "requirements.txt"
        reqs.write_text("".join(f"{name}\n" for name in corpus.roots))
        if args.osv:
            osv = work / "osv.zip"
            write_osv(osv, args.osv, [f"bench-{k:04d}" for k in range(projects)], args.seed)
            extra += ["--advisories", str(osv)]
            print(f"advisories: {args.osv:,} in {osv.stat().st_size / 2**20:.1f} MiB (zip)")
        env = clean_env(work)
        firsts, seconds, uvs = [], [], []
        with CorpusServer(corpus, args.latency_ms / 1000) as server:
            for _ in range(args.rounds):
                shutil.rmtree(work / "pypidl-cache", ignore_errors=True)
                shutil.rmtree(work / "xdg-cache", ignore_errors=True)
                first, second = work / "first.json", work / "second.json"
                cmd = pypidl_cmd(server.simple_url, reqs, first, extra)
                firsts.append(measure(cmd, env, server))
                cmd = pypidl_cmd(server.simple_url, reqs, second, extra)
                seconds.append(measure(cmd, env, server))
                same = _plan_of(first) == _plan_of(second)
                if uv is not None:
                    shutil.rmtree(work / "uv-cache", ignore_errors=True)
                    uvs.append(measure(uv_cmd(uv, server.simple_url, reqs, work), env, server))
        result: dict[str, Any] = {"projects": projects, "files": corpus.files}
        for label, runs in (("pypidl plan", firsts), ("pypidl plan, again", seconds), ("uv", uvs)):
            if not runs:
                continue
            run = _median(runs)
            print(_row(label, run))
            if run.code != 0:
                print(run.stderr[-3000:], file=sys.stderr)
            result[label] = run.__dict__ | {"stderr": None}
        manifest = json.loads(first.read_text()) if first.exists() else {}
        entries = manifest.get("files", [])
        print(
            f"  plan: {len(entries)} files of {len(manifest.get('projects', {}))} projects; "
            f"the second plan's manifest is {'the same' if same else 'DIFFERENT'}"
        )
        if uvs:
            p, u = _median(firsts), _median(uvs)
            print(f"  pypidl / uv: wall {p.wall / u.wall:.2f}, CPU {p.cpu / u.cpu:.2f}")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="100,300,1000",
        help="projects per corpus, comma-separated (default 100,300,1000)",
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
    parser.add_argument("--rounds", type=int, default=1, help="runs of each; medians are shown")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
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
    uv = None if args.no_uv else find_uv()
    # bytecode for what planning imports, as an installed pypidl has it
    warm = "import pypidl.cli.pipeline, pypidl.plan.planner, pypidl.plan.replan"
    subprocess.run([sys.executable, "-c", warm], env=clean_env(ROOT), check=True, cwd=ROOT)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} at the start")
    results = [bench_size(int(n), args, uv) for n in args.sizes.split(",")]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    ok = all(r.get(k, {}).get("code", 0) == 0 for r in results for k in ("pypidl plan", "uv"))
    return 0 if ok else 1


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
    """Both tools on a real index: times, CPU, memory, and what each pulled over the network
    (the first pypidl plan with a fresh cache, then the second with the cache it left)."""
    work = Path(tempfile.mkdtemp(prefix="pypidl-bench-plan-"))
    try:
        env = clean_env(work)
        runs: list[tuple[str, Run, str]] = []
        for label in ("pypidl plan", "pypidl plan, again"):
            before = received_bytes()
            cmd = pypidl_cmd(index_url, reqs.resolve(), work / "manifest.json", ["-v", *extra])
            run = measure(cmd, env, None)
            runs.append((label, run, _mib(before, received_bytes())))
        uv = None if no_uv else find_uv()
        if uv is not None:
            before = received_bytes()
            run = measure(uv_cmd(uv, index_url, reqs.resolve(), work), env, None)
            runs.append(("uv", run, _mib(before, received_bytes())))
        for label, run, rx in runs:
            print(
                f"  {label:<22} {run.wall:7.2f} s wall {run.cpu:7.2f} s CPU "
                f"{run.rss_mib:6.0f} MiB RSS  {rx}  exit {run.code}"
            )
            if run.code != 0:
                print(run.stderr[-3000:], file=sys.stderr)
        return 0 if all(run.code == 0 for _label, run, _rx in runs) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
