"""A corpus shaped like the real index's pages, and a loopback server for it (for bench_plan.py).

Not a test.  Real project pages are large because of their history, not because of what a plan
takes: a few projects list thousands of releases (as botocore does), compiled projects list
dozens of wheels per release (CPython 3.8 to 3.14 on manylinux, musllinux, macOS and Windows,
with real tag floors), and most projects have tens to hundreds of releases.  Planning reads the
newest few releases of each.  So every file of the history is listed on the pages (with sha256,
size, Requires-Python, upload time and a PEP 658 metadata digest, as the real pages have), each
release's metadata is served (PEP 658 sidecars), and only the sdists of the newest releases,
which a plan may keep and read, exist as bytes.

The server answers like a real index: PEP 691 JSON or PEP 503 HTML by ``Accept``, gzip when
asked, ``ETag`` and ``_last-serial`` on pages, ``304`` to ``If-None-Match``, byte ranges on
files, and ``--latency-ms`` added to every answer.  It counts requests and bytes sent.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import http.server
import json
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from tests.lib.wheels import make_sdist

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PYTHONS = ("38", "39", "310", "311", "312", "313", "314")
#: wheel platforms of a compiled project, with the floors real projects use
PLATFORMS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_17_aarch64.manylinux2014_aarch64",
    "musllinux_1_1_x86_64",
    "musllinux_1_1_aarch64",
    "macosx_10_9_x86_64",
    "macosx_11_0_arm64",
    "win32",
    "win_amd64",
    "win_arm64",
)
#: releases whose sdist exists as bytes (older ones are listed only)
LIVE_RELEASES = 3


@dataclass
class Release:
    version: str
    requires_python: str
    filenames: list[str]
    metadata: bytes


@dataclass
class Project:
    name: str
    releases: list[Release] = field(default_factory=list)
    serial: int = 1


@dataclass
class Corpus:
    projects: dict[str, Project]
    roots: list[str]
    #: file name -> its bytes (the sdists of the newest releases)
    blobs: dict[str, bytes]
    #: file name -> (release, project) for the listed-only files
    owner: dict[str, tuple[Release, Project]]

    @property
    def files(self) -> int:
        return sum(len(r.filenames) for p in self.projects.values() for r in p.releases)


def _version(i: int) -> str:
    return f"{1 + i // 100}.{(i // 10) % 10}.{i % 10}"


def _metadata(name: str, version: str, requires_python: str, requires: list[str]) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Requires-Python: {requires_python}",
    ]
    lines += [f"Requires-Dist: {r}" for r in requires]
    return ("\n".join(lines) + "\n\n").encode()


def build_corpus(projects: int, roots: int, seed: int) -> Corpus:
    """A deterministic, resolvable corpus of ``projects`` projects, ``roots`` of them required.

    One project in a hundred has 1,500 to 3,000 releases (a wheel and an sdist each); one in
    eight is compiled: 20 to 40 releases of 50 to 65 wheels (7 CPythons x 9 platforms, abi3 for
    some, win_arm64 from 3.11, no 3.8 in the newest two) and an sdist; the others have 5 to 120
    releases.  Project ``k`` depends on projects with larger numbers (often ``k + 1``: chains
    tens of projects deep), some under markers; the newest release of one project in six needs
    Python 3.10 (older interpreters take the release before).
    """
    rng = random.Random(seed)  # noqa: S311 - benchmark data
    names = [f"bench-{k:04d}" for k in range(projects)]
    deps: dict[int, set[tuple[int, str]]] = {k: set() for k in range(projects)}
    for k in range(roots, projects):
        parent = k - 1 if rng.random() < 0.5 else rng.randrange(0, k)  # deep chains and fan-out
        deps[parent].add((k, ""))
    markers = [
        "",
        "",
        "",
        '; python_version < "3.11"',
        '; sys_platform == "win32"',
        '; platform_machine == "aarch64"',
    ]
    for k in range(projects - 1):
        for _ in range(rng.randrange(0, 3)):
            deps[k].add((rng.randrange(k + 1, projects), rng.choice(markers)))
    blobs: dict[str, bytes] = {}
    owner: dict[str, tuple[Release, Project]] = {}
    out: dict[str, Project] = {}
    with tempfile.TemporaryDirectory(prefix="pypidl-bench-corpus-") as tmp:
        for k, name in enumerate(names):
            project = Project(name, serial=1000 + k)
            requires = sorted(f"{names[j]}>=1.0{m}" for j, m in deps[k])
            compiled = k % 8 == 3
            if k % 100 == 1:
                count = rng.randrange(1500, 3000)
            elif compiled:
                count = rng.randrange(20, 40)
            else:
                count = rng.randrange(5, 120)
            abi3 = compiled and k % 3 == 0
            needs_310 = k % 6 == 1
            module = name.replace("-", "_")
            for i in range(count):
                version = _version(i)
                age = count - 1 - i  # 0: the newest
                if needs_310 and age == 0:
                    requires_python = ">=3.10"
                elif compiled and age < 2:
                    requires_python = ">=3.9"
                else:
                    requires_python = ">=3.8"
                files = [f"{module}-{version}.tar.gz"]
                if not compiled:
                    files.append(f"{module}-{version}-py3-none-any.whl")
                elif abi3:
                    files += [f"{module}-{version}-cp38-abi3-{p}.whl" for p in PLATFORMS]
                else:
                    floor = 1 if age < 2 else 0
                    for py in PYTHONS[floor:]:
                        for plat in PLATFORMS:
                            if plat == "win_arm64" and int(py) < 311:
                                continue
                            files.append(f"{module}-{version}-cp{py}-cp{py}-{plat}.whl")
                release = Release(
                    version,
                    requires_python,
                    files,
                    _metadata(name, version, requires_python, requires),
                )
                project.releases.append(release)
                if age < LIVE_RELEASES:
                    path = make_sdist(
                        tmp, name, version, requires_dist=requires, requires_python=requires_python
                    )
                    blobs[path.name] = path.read_bytes()
                    path.unlink()
                for f in files:
                    owner[f] = (release, project)
            out[project.name] = project
    return Corpus(out, names[:roots], blobs, owner)


class Stats:
    """Requests and bytes the server sent (bodies), by kind."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.requests = 0
            self.bytes = 0
            self.not_modified = 0
            self.conditional = 0
            self.kinds: dict[str, int] = {}

    def add(self, kind: str, sent: int, *, conditional: bool, status: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += sent
            self.kinds[kind] = self.kinds.get(kind, 0) + sent
            self.conditional += conditional
            self.not_modified += status == 304

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "bytes": self.bytes,
                "conditional": self.conditional,
                "not_modified": self.not_modified,
                "kinds": dict(self.kinds),
            }


class CorpusServer:
    """The corpus on ``http://127.0.0.1:<port>/simple/``, ``latency`` seconds per answer."""

    def __init__(self, corpus: Corpus, latency: float) -> None:
        self.corpus = corpus
        self.latency = latency
        self.stats = Stats()
        self._pages: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.simple_url = self.url + "/simple/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> CorpusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)

    def _render(self, project: Project, ctype: str) -> bytes:
        key = (project.name, ctype)
        with self._lock:
            found = self._pages.get(key)
        if found is not None:
            return found
        entries = []
        for release in project.releases:
            meta_sha = hashlib.sha256(release.metadata).hexdigest()
            for f in release.filenames:
                blob = self.corpus.blobs.get(f)
                sha = hashlib.sha256(blob if blob is not None else f.encode()).hexdigest()
                wheel = f.endswith(".whl")
                entries.append(
                    {
                        "filename": f,
                        "url": f"{self.url}/files/{quote(f)}",
                        "hashes": {"sha256": sha},
                        "requires-python": release.requires_python,
                        "yanked": False,
                        "size": len(blob) if blob is not None else 100_000 + len(f) * 997,
                        "upload-time": "2024-05-01T12:00:00.000000Z",
                        **(
                            {
                                "core-metadata": {"sha256": meta_sha},
                                "data-dist-info-metadata": {"sha256": meta_sha},
                            }
                            if wheel
                            else {}
                        ),
                    }
                )
        if ctype == JSON_TYPE:
            body = json.dumps(
                {
                    "meta": {"api-version": "1.1", "_last-serial": project.serial},
                    "name": project.name,
                    "versions": [r.version for r in project.releases],
                    "files": entries,
                }
            ).encode()
        else:
            anchors = []
            for e in entries:
                extra = f' data-requires-python="{html.escape(e["requires-python"])}"'
                if "core-metadata" in e:
                    extra += f' data-core-metadata="sha256={e["core-metadata"]["sha256"]}"'
                anchors.append(
                    f'<a href="{e["url"]}#sha256={e["hashes"]["sha256"]}"{extra}>{e["filename"]}</a><br>'
                )
            body = (
                "<!DOCTYPE html><html><head>"
                '<meta name="pypi:repository-version" content="1.1">'
                f"<title>Links for {project.name}</title></head><body>"
                + "\n".join(anchors)
                + "</body></html>"
            ).encode()
        body = gzip.compress(body, compresslevel=6, mtime=0)
        with self._lock:
            self._pages[key] = body
        return body

    def handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(self.latency)
        path = unquote(h.path.split("?", 1)[0])
        conditional = "If-None-Match" in h.headers or "If-Modified-Since" in h.headers
        headers: list[tuple[str, str]] = []
        body = b""
        status = 404
        kind = "other"
        if path.startswith("/simple/") and path.endswith("/"):
            kind = "page"
            project = self.corpus.projects.get(path[len("/simple/") : -1])
            if project is not None:
                ctype = JSON_TYPE if JSON_TYPE in h.headers.get("Accept", "") else "text/html"
                compressed = self._render(project, ctype)
                etag = '"' + hashlib.sha256(compressed).hexdigest()[:32] + '"'
                headers += [("Content-Type", ctype), ("ETag", etag), ("Vary", "Accept")]
                if etag in h.headers.get("If-None-Match", ""):
                    status = 304
                else:
                    status = 200
                    if "gzip" in h.headers.get("Accept-Encoding", ""):
                        body = compressed
                        headers.append(("Content-Encoding", "gzip"))
                    else:
                        body = gzip.decompress(compressed)
        elif path.startswith("/files/"):
            name = path[len("/files/") :]
            if name.endswith(".metadata"):
                kind = "metadata"
                found = self.corpus.owner.get(name[: -len(".metadata")])
                if found is not None:
                    status, body = 200, found[0].metadata
            elif name in self.corpus.blobs:
                kind = "file"
                status, body = 200, self.corpus.blobs[name]
                headers.append(("Accept-Ranges", "bytes"))
                wanted = h.headers.get("Range", "")
                if wanted.startswith("bytes="):
                    status, body, span = _range(wanted[len("bytes=") :], body)
                    headers.append(("Content-Range", span))
        self.stats.add(kind, len(body), conditional=conditional, status=status)
        h.send_response(status)
        for key, value in headers:
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


def _range(spec: str, data: bytes) -> tuple[int, bytes, str]:
    first, _, last = spec.partition("-")
    size = len(data)
    if not first:
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(size - 1, int(last) if last else size - 1)
    if start > end:
        return 416, b"", f"bytes */{size}"
    return 206, data[start : end + 1], f"bytes {start}-{end}/{size}"
