#!/usr/bin/env python3
"""Side by side on one loopback index: ``pypidl download``, aria2c on pypidl's export, pip.

Not a test.  It starts a small index on 127.0.0.1 (PEP 503 pages and files, keep-alive, with a
per-request latency and a total bandwidth knob), builds real wheels of the sizes a case asks for,
writes a pypidl manifest of them, and then, in the same run, for each case:

* ``pypidl download manifest.json`` into a fresh directory;
* ``aria2c`` on ``pypidl export --format aria2c`` of that manifest (the README's command line);
* ``pip download --no-deps`` of the same pins, for the record (``--pip`` picks the cases: it
  fetches one page and one file at a time, so 10,000 pins take minutes).

Cases: ``small`` (919 files of 20 KB, 20 ms per request), ``tiny`` (10,000 files of 2 KB),
``large`` (12 files of 100 MB, with this machine's write-and-hash speed for the same bytes
measured alongside), ``rerun`` (``pypidl download`` again over the complete ``tiny`` mirror: no
request may reach the index).  pypidl's modules are byte-compiled first, as an installed pypidl's
are (``PYTHONDONTWRITEBYTECODE`` would otherwise make every process compile them again).  Every
tool runs as a process tree of its own; the figures are wall time, files/s, MB/s and the peak
resident memory of the whole tree (sampled every 50 ms).

    python scripts/bench_engine.py                       # the four cases
    python scripts/bench_engine.py --case small --latency-ms 50 --bandwidth-mbps 200
    python scripts/bench_engine.py --case large --large-files 4 --large-mb 200

Every tool must leave every file verified: the script rehashes the results and says so.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import html
import json
import os
import random
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pypidl.manifest import Entry, Manifest, dump  # noqa: E402
from tests.lib.wheels import make_wheel  # noqa: E402

CASES = ("small", "tiny", "large", "rerun")
_CHUNK = 256 * 1024


# --------------------------------------------------------------------------- the loopback index


@dataclass
class _File:
    path: Path
    size: int
    sha256: str
    data: bytes | None  # small files are served from memory


class _Throttle:
    """A total bandwidth for every connection together (bytes per second; 0: unlimited)."""

    def __init__(self, rate: float):
        self.rate = rate
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, n: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + n / self.rate
            until = self._next
        delay = until - now
        if delay > 0:
            time.sleep(delay)


class LoopbackIndex(socketserver.ThreadingTCPServer):
    """A lean HTTP/1.1 index: ``/simple/<project>/`` pages and ``/files/<name>``.

    Lean on purpose: its CPU is spent on the same two cores as the clients', so it parses only
    the request line and the headers it needs and answers a small file with one ``send``.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, latency: float = 0.0, bandwidth: float = 0.0):
        self.latency = latency
        self.throttle = _Throttle(bandwidth)
        self.files: dict[str, _File] = {}
        self.pages: dict[str, bytes] = {}
        self.requests = 0
        self._count = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, path: Path, project: str) -> _File:
        data = path.read_bytes() if path.stat().st_size <= 1024 * 1024 else None
        sha = _sha256(path)
        f = _File(path, path.stat().st_size, sha, data)
        self.files[path.name] = f
        return f

    def build_pages(self, by_project: dict[str, list[str]]) -> None:
        for project, names in by_project.items():
            links = "".join(
                f'<a href="../../files/{html.escape(n)}#sha256={self.files[n].sha256}">'
                f"{html.escape(n)}</a><br>\n"
                for n in names
            )
            self.pages[project] = f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()

    def start(self) -> LoopbackIndex:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def counted(self) -> None:
        with self._count:
            self.requests += 1


class _Handler(socketserver.BaseRequestHandler):
    server: LoopbackIndex

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            close = any(
                ln.lower().startswith("connection:") and "close" in ln.lower() for ln in lines[1:]
            )
            self.server.counted()
            if self.server.latency:
                time.sleep(self.server.latency)
            try:
                self._answer(sock, method, unquote(target.split("?")[0]))
            except OSError:
                return
            if close:
                return

    def _answer(self, sock: socket.socket, method: str, path: str) -> None:
        srv = self.server
        body: bytes | None = None
        f: _File | None = None
        ctype = "application/octet-stream"
        if path.startswith("/simple/"):
            page = srv.pages.get(path[len("/simple/") :].strip("/"))
            if page is not None:
                body, ctype = page, "text/html; charset=utf-8"
        elif path.startswith("/files/"):
            f = srv.files.get(path[len("/files/") :])
        if body is None and f is None:
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        size = len(body) if body is not None else f.size  # type: ignore[union-attr]
        etag = f'ETag: "{f.sha256}"\r\n' if f is not None else ""
        header = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {size}\r\n"
            f"{etag}Accept-Ranges: none\r\n\r\n"
        ).encode("latin-1")
        if method == "HEAD":
            sock.sendall(header)
            return
        if body is None and f is not None and f.data is not None:
            body = f.data
        if body is not None:
            srv.throttle.take(len(body))
            sock.sendall(header + body)
            return
        if f is None:  # pragma: no cover - a page always has a body
            return
        sock.sendall(header)
        with open(f.path, "rb") as fh:
            offset = 0
            while offset < f.size:
                n = min(_CHUNK, f.size - offset)
                srv.throttle.take(n)
                offset += sock.sendfile(fh, offset, n)


# --------------------------------------------------------------------------- measuring


class TreeMemory:
    """Peak resident memory of a process and all its descendants, sampled every ``interval``."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.pids_seen: set[int] = set()
        self._stop = threading.Event()
        self._foreign: set[int] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid in self._foreign:
                continue
            try:
                with open(f"/proc/{pid}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            parents[pid] = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree = {self.pid}
        grew = True
        while grew:
            grew = False
            for pid, ppid in parents.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        self._foreign |= {p for p in parents if p not in tree}
        return sorted(tree)

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    @staticmethod
    def _pss(pid: int) -> int:
        """Proportional set size: shared pages (the interpreter, libraries) divided among the
        processes sharing them, so a tree's sum counts each page once."""
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Pss:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = self._tree()
            self.pids_seen.update(tree)
            self.peak = max(self.peak, sum(self._rss(p) for p in tree))
            self.peak_pss = max(self.peak_pss, sum(self._pss(p) for p in tree))
            self._stop.wait(self.interval)

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join()
        return self.peak, self.peak_pss


#: seconds, (peak tree RSS, PSS), exit code, the tail of the output
RunResult = tuple[float, tuple[int, int], int, str]


@dataclass
class Timing:
    tool: str
    seconds: float
    files: int
    nbytes: int
    rss: tuple[int, int]
    ok: str
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def run_tree(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> RunResult:
    """Run ``cmd``; returns (seconds, (peak tree RSS, PSS), exit code, tail of its output)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    mem = TreeMemory(proc.pid)
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - started
    peak = mem.stop()
    return elapsed, peak, proc.returncode, out.decode("utf-8", "replace")[-2000:]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_dir(directory: Path, expected: dict[str, str]) -> str:
    """``"ok"`` when every expected file is there with its sha256, else what is wrong."""
    found = {p.name: p for p in directory.rglob("*") if p.is_file() and p.name in expected}
    missing = len(expected) - len(found)
    bad = sum(1 for name, p in found.items() if _sha256(p) != expected[name])
    if missing or bad:
        return f"{missing} missing, {bad} wrong"
    return "ok"


def _write_and_hash(job: tuple[list[str], str]) -> int:
    sources, dest = job
    total = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    for src in sources:
        h = hashlib.sha256()
        out = Path(dest) / Path(src).name
        with open(src, "rb", buffering=0) as fin, open(out, "wb", buffering=0) as fout:
            while n := fin.readinto(buf):
                h.update(view[:n])
                fout.write(view[:n])
                total += n
            os.fsync(fout.fileno())
    return total


def write_and_hash_speed(paths: list[Path], dest: Path, workers: int) -> float:
    """Seconds this machine takes to hash and write (and fsync) ``paths`` with ``workers``
    processes: the ceiling for any downloader of the same bytes."""
    dest.mkdir(parents=True, exist_ok=True)
    jobs = [([str(p) for p in paths[i::workers]], str(dest)) for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_and_hash, [([], str(dest))] * workers))  # start-up not timed
        started = time.perf_counter()
        list(pool.map(_write_and_hash, jobs))
        return time.perf_counter() - started


def _socket_and_hash(job: tuple[int, list[str], str]) -> int:
    """GET each file over one plain socket per file, hash and write the body, fsync."""
    port, names, dest = job
    total = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    for name in names:
        h = hashlib.sha256()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            request = f"GET /files/{name} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
            sock.sendall(request.encode("ascii"))
            head: bytes | None = b""
            with open(Path(dest) / name, "wb", buffering=0) as out:
                while True:
                    n = sock.recv_into(buf)
                    if not n:
                        break
                    body = view[:n]
                    if head is not None:
                        head += bytes(body)
                        end = head.find(b"\r\n\r\n")
                        if end < 0:
                            continue
                        body = memoryview(head[end + 4 :])
                        head = None
                    h.update(body)
                    out.write(body)
                    total += len(body)
                os.fsync(out.fileno())
    return total


def socket_speed(port: int, names: list[str], dest: Path, workers: int) -> float:
    """Seconds ``workers`` processes take to fetch ``names`` from the loopback index through
    plain sockets (no HTTP library, no retries, no checks), hashing and writing as they go."""
    dest.mkdir(parents=True, exist_ok=True)
    jobs = [(port, names[i::workers], str(dest)) for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_socket_and_hash, [(port, [], str(dest))] * workers))  # start-up not timed
        started = time.perf_counter()
        list(pool.map(_socket_and_hash, jobs))
        return time.perf_counter() - started


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    files: int
    size: int
    latency: float
    projects: int


def build_case(case: Case, work: Path, server: LoopbackIndex) -> tuple[Path, dict[str, str]]:
    """Wheels for ``case`` served by ``server``, and a manifest of them."""
    src = work / f"src-{case.name}"
    rng = random.Random(case.name)  # noqa: S311 - benchmark data
    entries = []
    by_project: dict[str, list[str]] = {}
    for i in range(case.files):
        project = f"{case.name}{i % case.projects}"
        payload = max(0, case.size - 1100)
        extra = {f"{project}/data.bin": rng.randbytes(payload)} if payload else None
        path = make_wheel(src, project, f"1.{i}", extra_files=extra)
        f = server.add(path, project)
        by_project.setdefault(project, []).append(path.name)
        entries.append(
            Entry(
                project=project,
                version=f"1.{i}",
                filename=path.name,
                urls=(f"{server.url}/files/{path.name}",),
                sha256=f.sha256,
                size=f.size,
            )
        )
    server.build_pages(by_project)
    manifest = Manifest(entries=tuple(entries), index_urls=(f"{server.url}/simple/",))
    path = work / f"{case.name}.json"
    dump(manifest, path)
    return path, {e.filename: e.sha256 for e in entries}


def clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy") and not k.startswith(("PIP_", "UV_"))
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["NO_PROXY"] = "127.0.0.1"
    return env


def pypidl_cmd(manifest: Path, dest: Path, server: LoopbackIndex, quiet: bool) -> list[str]:
    cmd = [sys.executable, "-m", "pypidl", "download", str(manifest), "--download-dir", str(dest)]
    cmd += ["--index-url", f"{server.url}/simple/"]
    return cmd + (["-q"] if quiet else [])


def run_pypidl(manifest: Path, dest: Path, server: LoopbackIndex, quiet: bool) -> RunResult:
    return run_tree(pypidl_cmd(manifest, dest, server, quiet), env=clean_env(), cwd=ROOT)


def run_aria2c(manifest: Path, dest: Path, work: Path, jobs: int) -> RunResult:
    export = work / f"{manifest.stem}.aria2"
    subprocess.run(
        [sys.executable, "-m", "pypidl", "export", str(manifest), "--format", "aria2c",
         "--download-dir", str(dest), "-o", str(export), "-q"],
        check=True, env=clean_env(), cwd=ROOT,
    )  # fmt: skip
    cmd = [
        "aria2c", f"--input-file={export}", "--check-integrity=true", "--continue=true",
        "--allow-overwrite=false", "--auto-file-renaming=false", "--uri-selector=inorder",
        f"--max-concurrent-downloads={jobs}", "--console-log-level=warn",
        "--summary-interval=0", "--download-result=hide",
    ]  # fmt: skip
    return run_tree(cmd, env=clean_env())


def run_pip(manifest_path: Path, dest: Path, server: LoopbackIndex, work: Path) -> RunResult:
    """``pip download --no-deps`` of every pin; pip takes one version of a project per call,
    so the pins go in rounds (the n-th version of every project in round n)."""
    data = json.loads(manifest_path.read_text())
    rounds: list[list[str]] = []
    seen: dict[str, int] = {}
    for f in data["files"]:
        n = seen[f["project"]] = seen.get(f["project"], -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(f"{f['project']}=={f['version']}\n")
    secs = 0.0
    code = 0
    peak = (0, 0)
    out = ""
    for n, pins in enumerate(rounds):
        path = work / f"{manifest_path.stem}-pins{n}.txt"
        path.write_text("".join(pins))
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "-q", "--only-binary=:all:",
            "--index-url", f"{server.url}/simple/", "-d", str(dest), "-r", str(path),
        ]  # fmt: skip
        s, rss, c, o = run_tree(cmd, env=clean_env())
        secs, code, out = secs + s, code or c, out if code else o
        peak = (max(peak[0], rss[0]), max(peak[1], rss[1]))
    return secs, peak, code, out


def rates(t: Timing) -> str:
    fps = t.files / t.seconds if t.seconds else 0.0
    mbs = t.nbytes / 1e6 / t.seconds if t.seconds else 0.0
    return f"{t.seconds:8.2f} {fps:9.0f} {mbs:8.1f} {t.rss[0] / 2**20:8.0f} {t.rss[1] / 2**20:8.0f}"


def report(title: str, timings: list[Timing]) -> None:
    print(f"\n== {title}")
    print(
        f"{'tool':<22} {'seconds':>8} {'files/s':>9} {'MB/s':>8} {'RSS MiB':>8} {'PSS MiB':>8}"
        "  result"
    )
    for t in timings:
        print(f"{t.tool:<22} {rates(t)}  {t.ok}{(' ' + t.note) if t.note else ''}")
    base = next((t for t in timings if t.tool.startswith("pypidl")), None)
    if base is None:
        return
    for t in timings:
        if t is base or not t.seconds:
            continue
        if t.tool.startswith(("write+hash", "socket+hash")):
            print(f"pypidl's speed / {t.tool}'s: {t.seconds / base.seconds:.0%}")
        else:
            print(f"ratio pypidl / {t.tool}: {base.seconds / t.seconds:.2f}")


def create_cost(directory: Path, n: int = 40) -> float:
    """Microseconds this file system takes to create a file in ``directory`` (and its packages
    subdirectory): on some virtual disks it varies fifty-fold from one directory to the next,
    and every tool here creates one file per download."""
    probe = directory / "packages" / ".create-probe"
    probe.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for i in range(n):
        os.close(os.open(probe / str(i), os.O_WRONLY | os.O_CREAT, 0o644))
    elapsed = time.perf_counter() - started
    shutil.rmtree(probe)
    return elapsed / n * 1e6


def settle() -> None:
    """Write back what earlier steps left dirty (the wheels just built, the last tool's files):
    otherwise the next tool's fsyncs pay for them."""
    os.sync()


def _rounds(
    args: argparse.Namespace,
    tools: list[tuple[str, Callable[[Path], RunResult]]],
    work: Path,
    case: Case,
    expected: dict[str, str],
    total: int,
) -> list[Timing]:
    """Each tool ``args.repeat`` times, taking turns (a slow moment of the machine falls on both),
    into a fresh directory each time; the median run is reported, with the range."""
    runs: dict[str, list[tuple[float, tuple[int, int], str, float]]] = {n: [] for n, _ in tools}
    for _ in range(args.repeat):
        for name, run in tools:
            dest = work / f"{name.split()[0]}-{case.name}"
            shutil.rmtree(dest, ignore_errors=True)
            creating = create_cost(dest)
            settle()
            secs, rss, code, out = run(dest)
            ok = check_dir(dest, expected)
            if code:
                ok += f" (exit {code}: {out[-300:]!r})"
            runs[name].append((secs, rss, ok, creating))
    timings = []
    for name, _ in tools:
        done = sorted(runs[name], key=lambda r: r[0])
        secs = done[len(done) // 2][0]
        peak = (max(r[1][0] for r in done), max(r[1][1] for r in done))
        bad = next((r[2] for r in done if r[2] != "ok"), "ok")
        spread = f"median of {len(done)}: {done[0][0]:.2f}-{done[-1][0]:.2f}; " if done[1:] else ""
        creates = "/".join(f"{r[3]:.0f}" for r in runs[name])
        note = f"({spread}file create {creates} us)"
        timings.append(Timing(name, secs, case.files, total, peak, bad, note))
    return timings


def one_case(
    case: Case, args: argparse.Namespace, work: Path, pip: bool
) -> tuple[list[Timing], Path | None, LoopbackIndex]:
    server = LoopbackIndex(latency=case.latency, bandwidth=args.bandwidth_mbps * 1e6 / 8).start()
    manifest, expected = build_case(case, work, server)
    total = sum(f.size for f in server.files.values())
    print(
        f"\n{case.name}: {case.files} files of {case.size / 1e3:g} KB ({total / 1e6:.1f} MB) over "
        f"{case.projects} projects, {case.latency * 1e3:g} ms per request, bandwidth "
        f"{f'{args.bandwidth_mbps:g} Mbit/s' if args.bandwidth_mbps else 'unlimited'}",
        flush=True,
    )
    tools: list[tuple[str, Callable[[Path], RunResult]]] = [
        ("pypidl download", lambda dest: run_pypidl(manifest, dest, server, args.quiet)),
        (
            f"aria2c -j {args.aria2c_jobs}",
            lambda dest: run_aria2c(manifest, dest, work, args.aria2c_jobs),
        ),
    ]
    timings = _rounds(args, tools, work, case, expected, total)
    shutil.rmtree(work / f"aria2c-{case.name}", ignore_errors=True)
    if pip:
        pdest = work / f"pip-{case.name}"
        settle()
        secs, rss, code, out = run_pip(manifest, pdest, server, work)
        ok = check_dir(pdest, expected) + ("" if code == 0 else f" (exit {code}: {out[-300:]!r})")
        timings.append(
            Timing("pip download --no-deps", secs, case.files, total, rss, ok, "(serial rounds)")
        )
        shutil.rmtree(pdest, ignore_errors=True)
    if case.name == "large":
        # The machine's ceilings for the same bytes, with as many processes as pypidl used
        # (and one): read from the page cache, hash, write, fsync, no network; and the same
        # again from this loopback server through a plain socket, no HTTP library, no checks:
        # what the network path itself costs on this machine.
        paths = [f.path for f in server.files.values()]
        names = sorted(server.files)
        for workers in sorted({1, min(os.cpu_count() or 1, len(paths))}):
            settle()
            secs = write_and_hash_speed(paths, work / "write-and-hash", workers)
            shutil.rmtree(work / "write-and-hash", ignore_errors=True)
            timings.append(
                Timing(
                    f"write+hash ({workers} proc)", secs, case.files, total, (0, 0), "ok",
                    "(no network)",
                )
            )  # fmt: skip
            settle()
            secs = socket_speed(server.port, names, work / "socket", workers)
            ok = check_dir(work / "socket", expected)
            shutil.rmtree(work / "socket", ignore_errors=True)
            timings.append(
                Timing(
                    f"socket+hash ({workers} proc)", secs, case.files, total, (0, 0), ok,
                    "(plain socket, same server)",
                )
            )  # fmt: skip
    return timings, manifest, server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", action="append", choices=CASES, help="repeatable; default all")
    parser.add_argument("--small-files", type=int, default=919)
    parser.add_argument("--small-kb", type=float, default=20)
    parser.add_argument("--latency-ms", type=float, default=20, help="per request in 'small'")
    parser.add_argument("--tiny-files", type=int, default=10_000)
    parser.add_argument("--tiny-kb", type=float, default=2)
    parser.add_argument("--large-files", type=int, default=12)
    parser.add_argument("--large-mb", type=float, default=100)
    parser.add_argument(
        "--bandwidth-mbps", type=float, default=0, help="total for the index (0: unlimited)"
    )
    parser.add_argument("--aria2c-jobs", type=int, default=64, help="aria2c -j (default 64)")
    parser.add_argument(
        "--pip",
        action="append",
        choices=(*CASES, "none"),
        help="cases to time pip on (default small, large)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each tool per case, taking turns (median)"
    )
    parser.add_argument("--quiet", action="store_true", help="run pypidl with -q")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if shutil.which("aria2c") is None:
        parser.error("aria2c is not installed")
    chosen = args.case or list(CASES)
    pip_cases = set(args.pip or ("small", "large"))
    # as an installed pypidl is: without it, every process of every run compiles the sources
    compileall.compile_dir(str(ROOT / "pypidl"), quiet=1)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the start")
    work = Path(tempfile.mkdtemp(prefix="pypidl-bench-"))
    try:
        if "small" in chosen:
            case = Case(
                "small", args.small_files, int(args.small_kb * 1000), args.latency_ms / 1e3, 60
            )
            timings, _, server = one_case(case, args, work, "small" in pip_cases)
            server.stop()
            report("many small files with latency", timings)
        if "tiny" in chosen or "rerun" in chosen:
            case = Case("tiny", args.tiny_files, int(args.tiny_kb * 1000), 0.0, 200)
            timings, manifest, server = one_case(case, args, work, "tiny" in pip_cases)
            if "tiny" in chosen:
                report("10,000 tiny files", timings)
            if "rerun" in chosen and manifest is not None:
                before = server.requests
                dest = work / "pypidl-tiny"
                secs, rss, code, _out = run_pypidl(manifest, dest, server, args.quiet)
                asked = server.requests - before
                ok = "ok" if code == 0 and asked == 0 else f"exit {code}, {asked} request(s)"
                report(
                    "re-run over the complete tiny mirror",
                    [Timing("pypidl download", secs, case.files, 0, rss, ok, f"{asked} requests")],
                )
            server.stop()
            shutil.rmtree(work / "pypidl-tiny", ignore_errors=True)
        if "large" in chosen:
            case = Case("large", args.large_files, int(args.large_mb * 1e6), 0.0, args.large_files)
            timings, _, server = one_case(case, args, work, "large" in pip_cases)
            server.stop()
            report("a few large files", timings)
            shutil.rmtree(work / "pypidl-large", ignore_errors=True)
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
