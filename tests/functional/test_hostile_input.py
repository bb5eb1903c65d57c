"""Hostile input through the real command line (issue 20, items 6 to 9 and 11 to 14).

A hostile sdist on the index, malformed or endless input files, absurd shard counts, garbage
requests to ``serve``, a rewritten cache entry, a symlink out of the mirror: each used to end in a
traceback (or in no end at all).  Each test here fails again if its protection is removed.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pypidl._fs import read_checked, write_checked
from pypidl.cli import main
from pypidl.manifest import Entry, Manifest, dump
from scripts.bench_lock_read import write_pylock
from tests.functional.test_reliability import TARGET, assert_clean_failure, pypidl
from tests.lib.interrupts import default_sigint
from tests.lib.mirror import add_to_mirror
from tests.lib.server import IndexServer
from tests.lib.wheels import make_sdist, make_wheel

POSIX = os.name == "posix"
#: address space for a child that must not read without limit (a leak dies of MemoryError)
MEMORY_CAP = 1024 * 1024 * 1024


def _capped() -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def capped(*args: str, **kwargs: Any) -> Any:
    """``pypidl`` in a child whose memory is capped at :data:`MEMORY_CAP`."""
    return pypidl(*args, preexec_fn=_capped, **kwargs)


def one_line(result: Any, code: int, *needles: str) -> None:
    """Exit ``code``, no traceback, and one ERROR line (and its hint) that names every needle."""
    assert_clean_failure(result, code)
    errors = [
        line
        for line in result.stderr.splitlines()
        if "| ERROR |" in line and "| ERROR | hint:" not in line
    ]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], result.stderr


# --------------------------------------------------------------------------- 9: shards


def _two_project_manifest(path: Path) -> Path:
    entries = tuple(
        Entry(
            project=name,
            version="1.0",
            filename=f"{name}-1.0-py3-none-any.whl",
            urls=(f"http://127.0.0.1:9/files/{name}-1.0-py3-none-any.whl",),
            sha256=f"{n}" * 64,
            size=size,
        )
        for n, (name, size) in enumerate((("big", 2000), ("small", 1000)), start=1)
    )
    dump(Manifest(entries=entries), path)
    return path


@pytest.mark.skipif(not POSIX, reason="RLIMIT_AS is POSIX")
@pytest.mark.parametrize(
    ("shard", "env", "expected"),
    [
        ("1/100000000000", {}, ["big"]),
        ("2/100000000000", {}, ["small"]),
        ("99999999999/100000000000", {}, []),
        ("auto", {"JOB_COMPLETION_INDEX": "1", "JOB_COMPLETIONS": "100000000000"}, ["small"]),
    ],
)
def test_a_huge_shard_count_allocates_nothing_per_shard(
    tmp_path: Path, shard: str, env: dict[str, str], expected: list[str]
) -> None:
    manifest = _two_project_manifest(tmp_path / "m.json")
    out = tmp_path / "urls.txt"
    result = capped(
        "export", str(manifest), "-f", "urls", "--shard", shard, "-o", str(out),
        env={**os.environ, **env}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line.rsplit("/", 1)[1].split("-")[0] for line in out.read_text().split()] == expected


@pytest.mark.parametrize(
    ("shard", "env"),
    [
        ("1/" + "9" * 5000, {}),
        ("auto", {"JOB_COMPLETION_INDEX": "0", "JOB_COMPLETIONS": "9" * 5000}),
    ],
)
def test_a_5000_digit_shard_count_is_bad_input(
    tmp_path: Path, shard: str, env: dict[str, str]
) -> None:
    manifest = _two_project_manifest(tmp_path / "m.json")
    result = pypidl(
        "export", str(manifest), "-f", "urls", "--shard", shard, env={**os.environ, **env}
    )
    one_line(result, 2, "shard")


# --------------------------------------------------------------------------- 8: bad input


def test_a_5000_digit_version_in_a_requirement_is_bad_input(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\nbeta==1." + "1" * 5000 + "\n", encoding="utf-8")
    result = pypidl("plan", str(reqs), "-i", "http://127.0.0.1:9/simple/", *TARGET)
    one_line(result, 2, f"{reqs}:2")


@pytest.mark.parametrize("url", ["http://[::1/simple/", "http://[::1]:99999/simple/", "http:///x/"])
def test_a_malformed_index_url_is_bad_input(tmp_path: Path, url: str) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\n", encoding="utf-8")
    result = pypidl("plan", str(reqs), "-i", url, *TARGET, "-o", str(tmp_path / "m.json"))
    one_line(result, 2, url)
    # the same URL inside the requirements file: the file and the line are named
    reqs.write_text(f"--index-url {url}\nalpha\n", encoding="utf-8")
    result = pypidl("plan", str(reqs), *TARGET, "-o", str(tmp_path / "m.json"))
    one_line(result, 2, url)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("flag", ["--lock", "-r", "--targets-file", None])
def test_an_endless_input_file_is_refused_with_bounded_memory(
    tmp_path: Path, flag: str | None
) -> None:
    args = [flag, "/dev/zero"] if flag else ["/dev/zero"]
    if flag == "--targets-file":
        reqs = tmp_path / "requirements.txt"
        reqs.write_text("alpha\n", encoding="utf-8")
        args.append(str(reqs))
    else:
        args += TARGET
    result = capped("plan", *args, "-i", "http://127.0.0.1:9/simple/", timeout=60)
    one_line(result, 2, "/dev/zero")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_manifest_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    result = capped("download", "/dev/zero", "--download-dir", str(tmp_path / "mirror"), timeout=60)
    one_line(result, 2, "/dev/zero")


def test_file_index_urls_are_refused_up_front(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\n", encoding="utf-8")
    (tmp_path / "simple").mkdir()
    url = (tmp_path / "simple").as_uri() + "/"
    result = pypidl("plan", str(reqs), "-i", url, *TARGET, "-o", str(tmp_path / "m.json"))
    one_line(result, 2, "file://", "http(s) only")
    assert "hint: serve the directory (pypidl serve DIR)" in result.stderr
    assert not (tmp_path / "m.json").exists()


# --------------------------------------------------------------------------- 6: hostile sdists

#: what a hostile sdist's pyproject.toml holds, by project
HOSTILE_PYPROJECTS = {
    "deep": b"[build-system]\nrequires = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "inline": b"[build-system]\nx = " + b"{a=" * 3000 + b"1" + b"}" * 3000 + b"\n",
    "bigint": b"[build-system]\nx = " + b"1" * 5000 + b"\n",
}


def hostile_sdist(directory: Path, name: str, pyproject: bytes) -> Path:
    """``<name>-1.0.tar.gz`` with a PKG-INFO and this ``pyproject.toml``."""
    base = f"{name}-1.0"
    members = {
        f"{base}/PKG-INFO": f"Metadata-Version: 2.2\nName: {name}\nVersion: 1.0\n".encode(),
        f"{base}/pyproject.toml": pyproject,
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for arcname, data in members.items():
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = directory / f"{base}.tar.gz"
    out.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return out


def test_a_hostile_sdist_fails_its_project_alone(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "alpha", "1.0"))
    for name, pyproject in HOSTILE_PYPROJECTS.items():
        server.add_file(hostile_sdist(wheel_dir, name, pyproject))
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\n" + "\n".join(HOSTILE_PYPROJECTS) + "\n", encoding="utf-8")
    manifest = tmp_path / "m.json"
    plan = pypidl("plan", str(reqs), "-i", server.simple_url, *TARGET, "-o", str(manifest))
    assert_clean_failure(plan, 1)
    for name in HOSTILE_PYPROJECTS:
        assert f"{name}-1.0.tar.gz cannot be built: pyproject.toml: not usable TOML" in plan.stderr
    assert "alpha-1.0-py3-none-any.whl" in manifest.read_text(encoding="utf-8")

    mirror = tmp_path / "mirror"
    sync = pypidl("sync", str(reqs), "-i", server.simple_url, *TARGET,
                  "--download-dir", str(mirror), "--build-index")  # fmt: skip
    assert_clean_failure(sync, 1)
    assert (mirror / "packages" / "alpha" / "alpha-1.0-py3-none-any.whl").is_file()
    assert (mirror / "simple" / "alpha" / "index.html").is_file()

    check = pypidl("check", str(mirror), "-r", str(reqs), *TARGET)
    assert_clean_failure(check, 1)
    for name in HOSTILE_PYPROJECTS:
        assert f"{name}-1.0.tar.gz cannot be built" in check.stdout + check.stderr


# --------------------------------------------------------------------------- 13: the caches


def test_a_build_system_cache_entry_that_is_hostile_is_a_miss(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    server = index_server()
    entries = {
        "nested": b"[" * 100_000 + b"]" * 100_000,
        "badreq": json.dumps({"format": 2, "requires": ["not a requirement!"]}).encode(),
        "longver": json.dumps({"format": 2, "requires": ["x==1." + "1" * 5000]}).encode(),
    }
    cache = Path(os.environ["PYPIDL_CACHE_DIR"]) / "build-system"
    for name, planted in entries.items():
        served = server.add_file(make_sdist(wheel_dir, name, "1.0"))
        write_checked(cache / served.sha256[:2] / f"{served.sha256}.json", planted)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("\n".join(entries) + "\n", encoding="utf-8")
    result = pypidl("plan", str(reqs), "-i", server.simple_url, *TARGET, "-o", str(tmp_path / "m"))
    assert_clean_failure(result, 0)
    assert "Build requirements: 3 sdist(s) read" in result.stderr
    assert "0 from the cache" in result.stderr


def test_a_rewritten_metadata_cache_entry_is_not_trusted(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    server = index_server()
    alpha = server.add_file(make_wheel(wheel_dir, "alpha", "1.0", requires_dist=["beta"]))
    server.add_file(make_wheel(wheel_dir, "beta", "1.0"))
    server.add_file(make_wheel(wheel_dir, "gamma", "1.0"))
    assert alpha.metadata_sha256 is not None  # the page publishes it
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\n", encoding="utf-8")
    manifest = tmp_path / "m.json"
    args = ("plan", str(reqs), "-i", server.simple_url, *TARGET, "-o", str(manifest))
    assert pypidl(*args).returncode == 0
    entry = Path(os.environ["PYPIDL_CACHE_DIR"]) / "metadata" / alpha.sha256[:2]
    entry /= f"{alpha.sha256}.metadata"
    assert read_checked(entry) is not None
    # rewritten with its own hash matching: a dependency silently changed
    forged = (alpha.metadata or b"").replace(b"Requires-Dist: beta", b"Requires-Dist: gamma")
    assert forged != alpha.metadata
    write_checked(entry, forged)
    result = pypidl(*args, "--refresh")  # resolve again: the kept plan would not read metadata
    assert_clean_failure(result, 0)
    planned = {e["project"] for e in json.loads(manifest.read_text(encoding="utf-8"))["files"]}
    assert planned == {"alpha", "beta"}
    assert read_checked(entry) == alpha.metadata  # the entry is written again, right


# --------------------------------------------------------------------------- 7: malformed locks

_LONG = "1" * 5000
_PYLOCK = "lock-version = '1.0'\ncreated-by = 'x'\n"
_PYPKG = _PYLOCK + "[[packages]]\nname = 'a'\nversion = '1.0'\n"
_UV = "version = 1\n"
_UVPKG = (
    _UV
    + "[[package]]\nname = 'a'\nversion = '1.0'\nsource = { registry = 'http://127.0.0.1:9/simple' }\n"
)
_POETRY = "[metadata]\ncontent-hash = 'x'\nlock-version = '2.0'\n"
_POETRYPKG = "[[package]]\nname = 'a'\nversion = '1.0'\n"
_PIPFILE = '{"_meta": {"pipfile-spec": 6}, "default": {"a": %s}}'

#: (lock name, content, what the one error line says): wrong types, 5,000-digit numbers
MALFORMED_LOCKS = [
    ("pylock.toml", _PYLOCK + "packages = 'abc'\n", "'packages' is not an array"),
    ("pylock.toml", _PYPKG + "wheels = 5\n", "'wheels' is not an array"),
    ("pylock.toml", _PYLOCK + "dependency-groups = 5\npackages = []\n", "is not an array"),
    ("pylock.toml", _PYLOCK + "extras = 5\npackages = []\n", "'extras' is not an array"),
    ("pylock.toml", _PYLOCK + f"[[packages]]\nname = 'a'\nversion = '1.{_LONG}'\n", "version"),
    ("pylock.toml", _PYPKG + f"wheels = [{{name = 'a-1.0-py3-none-any.whl', size = {_LONG}}}]\n",
     "a number too long"),
    ("uv.lock", _UVPKG + "wheels = 5\n", "'wheels' is not an array"),
    ("uv.lock", _UVPKG + "dependencies = 5\n", "'dependencies' is not an array"),
    ("uv.lock", _UVPKG + "optional-dependencies = ['x']\n", "'optional-dependencies' is not a table"),
    ("uv.lock", _UVPKG + "[package.optional-dependencies]\nx = 5\n", "is not an array"),
    ("uv.lock", "manifest = 'x'\n" + _UVPKG, "'manifest' is not a table"),
    ("uv.lock", _UVPKG + "dependencies = [{ name = 'a', extra = 5 }]\n", "'extra' is not an array"),
    ("uv.lock", _UV + f"[[package]]\nname = 'a'\nversion = '{_LONG}.0'\n", "version"),
    ("poetry.lock", "package = 5\n" + _POETRY, "'package' is not an array"),
    ("poetry.lock", _POETRY + _POETRYPKG + "files = 5\n", "'files' is not an array"),
    ("Pipfile.lock", '{"_meta": ["x"], "default": {}}', "'_meta' is not an object"),
    ("Pipfile.lock", '{"_meta": {"pipfile-spec": 6, "sources": 5}}', "'sources' is not an array"),
    ("Pipfile.lock", _PIPFILE % '{"version": "==1.0", "hashes": 5}', "'hashes' is not an array"),
    ("Pipfile.lock", _PIPFILE % f'{{"version": "==1.{_LONG}"}}', "version"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "says"),
    MALFORMED_LOCKS,
    ids=[f"{n}-{i}" for i, (n, *_) in enumerate(MALFORMED_LOCKS)],
)
def test_a_malformed_lock_is_one_line_naming_it(
    tmp_path: Path, name: str, text: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / name
    lock.write_text(text, encoding="utf-8")
    code = main(["plan", "--lock", str(lock), "-i", "http://127.0.0.1:9/simple/", *TARGET,
                 "-o", str(tmp_path / "m.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "| ERROR |" in line]
    assert len(errors) == 1, err
    assert str(lock) in errors[0], err
    assert says in errors[0], err
    assert len(errors[0]) < 400, err  # a 5,000-digit value is not echoed whole


# --------------------------------------------------------------------------- 12: big locks


def test_a_big_lock_names_the_right_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lines are counted from one package table to the next (reading was quadratic); the
    timing is in ``scripts/bench_lock_read.py``, this checks the count on 5,000 packages."""
    lock = tmp_path / "pylock.toml"
    write_pylock(lock, 5000)
    text = lock.read_text(encoding="utf-8")
    bad = "name = 'project-004321'\nversion = '1.0'"
    assert bad in text
    lock.write_text(text.replace(bad, "name = 'project-004321'\nversion = 'one'"), "utf-8")
    line = text[: text.index(bad)].count("\n")  # the [[packages]] line just above
    assert text.splitlines()[line - 1] == "[[packages]]"
    code = main(["plan", "--lock", str(lock), "-i", "http://127.0.0.1:9/simple/", *TARGET,
                 "-o", str(tmp_path / "m.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"ERROR | {lock}:{line}: package 'project-004321' has an invalid version" in err, err


# --------------------------------------------------------------------------- 11: serve


def _raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.skipif(not POSIX, reason="stopped with SIGINT")
def test_serve_answers_garbage_requests_and_hides_its_state(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "simple").mkdir(parents=True)
    (mirror / "simple" / "index.html").write_text("<html></html>", encoding="utf-8")
    (mirror / ".pypidl").mkdir()
    (mirror / "packages" / "alpha").mkdir(parents=True)
    (mirror / "packages" / "alpha" / "alpha-1.0-py3-none-any.whl").write_bytes(b"x")
    (mirror / "packages" / "alpha" / ".pypidl-alpha-1.0-py3-none-any.whl.part").write_bytes(b"")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypidl", "serve", str(mirror), "--port", "0", "-v"],
        stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        port = 0
        while not port:
            line = proc.stderr.readline()
            assert line, "serve ended before it listened"
            if "Serving" in line:
                port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        answers = {
            "long": _raw_request(port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"),
            "version": _raw_request(port, b"GET / HTTP/x\r\n\r\n"),
            "garbage": _raw_request(port, b"GARBAGE\r\n\r\n"),
            "nul": _raw_request(port, b"GET /simple/%00/ HTTP/1.0\r\n\r\n"),
            "nul-file": _raw_request(port, b"GET /packages/a%00b HTTP/1.0\r\n\r\n"),
        }
        assert answers["long"].startswith(b"HTTP/1.0 414 "), answers
        for what in ("version", "garbage", "nul", "nul-file"):
            assert answers[what].split(b"\r\n")[0].split(b" ")[1] == b"400", answers
        root = _raw_request(port, b"GET / HTTP/1.0\r\n\r\n")
        assert root.startswith(b"HTTP/1.0 200 "), root
        assert b"simple/" in root
        assert b".pypidl" not in root
        listing = _raw_request(port, b"GET /packages/alpha/ HTTP/1.0\r\n\r\n")
        assert b"alpha-1.0-py3-none-any.whl" in listing
        assert b".pypidl" not in listing
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    assert "Exception" not in err, err


# --------------------------------------------------------------------------- 14: the mirror


@pytest.mark.skipif(not POSIX, reason="symlinks")
def test_a_project_directory_symlinked_out_of_the_mirror_is_not_followed(
    tmp_path: Path, wheel_dir: Path
) -> None:
    mirror = tmp_path / "mirror"
    add_to_mirror(mirror, make_wheel(wheel_dir / "a", "alpha", "1.0"))
    add_to_mirror(mirror, make_wheel(wheel_dir / "b", "beta", "1.0"))
    outside = tmp_path / "outside"
    (mirror / "packages" / "alpha").rename(outside)
    (mirror / "packages" / "alpha").symlink_to(outside)
    # a file name with a newline in a project directory: printed escaped, never as two lines
    (mirror / "packages" / "beta" / "evil\nname.whl").write_bytes(b"x")

    verify = pypidl("verify", str(mirror))
    assert_clean_failure(verify, 1)
    assert "packages/alpha leads out of the mirror" in verify.stdout
    assert "evil\\nname.whl" in verify.stdout
    assert "evil\nname" not in verify.stdout

    index = pypidl("index", str(mirror))
    assert "Traceback" not in index.stderr
    assert "packages/alpha leads out of the mirror" in index.stderr
    assert not (mirror / "simple" / "alpha").exists()
    assert (mirror / "simple" / "beta" / "index.html").is_file()

    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\nbeta\n", encoding="utf-8")
    check = pypidl("check", str(mirror), "-r", str(reqs), *TARGET)
    assert_clean_failure(check, 1)
    assert "alpha" in check.stdout
    assert "the mirror has no files of 'alpha'" in check.stdout + check.stderr
