"""What a hostile index, a broken network, a careless user and a full disk may not break.

Each test reproduces one way pypidl used to fail (a crash, a hang, a false "clean", a silent
half-run) against real loopback servers, a real (small) filesystem and the real command line, and
fails again if the protection is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pypidl import bundle as transfer
from pypidl.cli import main
from pypidl.config import NetworkSettings
from pypidl.errors import RemoteIndexError
from pypidl.fetch.downloader import FAILED, Downloader
from pypidl.hashing import CHUNK_SIZE, file_sha256
from pypidl.manifest import Entry, Manifest, dump, load
from pypidl.plan import pages
from pypidl.plan.pages import IndexClient
from pypidl.sources import Mirror
from pypidl.store.catalog import Catalog
from tests.lib.interrupts import default_sigint
from tests.lib.mirror import add_to_mirror, entry_for
from tests.lib.server import Cut, IndexServer, Status
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]
FAST = NetworkSettings(backoff=0.01, retries=3, connect_timeout=5, read_timeout=5, stall_timeout=5)
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
POSIX = os.name == "posix"


def pypidl(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess (a traceback there is a traceback for a user)."""
    return subprocess.run(
        [sys.executable, "-m", "pypidl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int) -> None:
    """The exit code, and no traceback or "a bug" message anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output, output
    assert "unexpected error" not in output, output


def write_reqs(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def json_page(*files: dict[str, Any]) -> Status:
    """A PEP 691 project page with exactly these file entries."""
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "x", "files": list(files)})
    return Status(200, {"Content-Type": JSON_TYPE}, body.encode())


def file_item(served: Any, **changes: Any) -> dict[str, Any]:
    item = {
        "filename": served.filename,
        "url": served.url,
        "hashes": {"sha256": served.sha256},
        "size": served.size,
    }
    item.update(changes)
    return item


# --------------------------------------------------------------------------- verify: unreadable


def _without_read_anything(argv: list[str]) -> list[str]:
    """``argv`` run so that file permissions bind, as for any user but root."""
    if not POSIX or os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop the read-anything capability")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--", *argv]


@pytest.mark.skipif(not POSIX, reason="chmod 000 is POSIX")
def test_verify_reports_every_file_it_cannot_read(tmp_path: Path, wheel_dir: Path) -> None:
    root = tmp_path / "mirror"
    entries = [
        add_to_mirror(root, make_wheel(wheel_dir / name, name, "1.0"))
        for name in ("aaa", "bbb", "ccc", "ddd")
    ]
    # two projects' files made unreadable; the ones sorted after them must still be checked
    for entry in entries[:2]:
        (root / entry.relpath).chmod(0)
    probe = _without_read_anything([sys.executable, "-c", "import sys; open(sys.argv[1], 'rb')"])
    readable = subprocess.run(
        [*probe, str(root / entries[0].relpath)], capture_output=True, check=False
    )
    if readable.returncode == 0:
        pytest.skip("this process can read a chmod 000 file")
    result = subprocess.run(
        _without_read_anything([sys.executable, "-m", "pypidl", "verify", str(root)]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert_clean_failure(result, 1)
    for entry in entries[:2]:
        assert entry.relpath in output
    assert "cannot read" in output
    assert "Checked 4 file(s)" in output
    for entry in entries[2:]:
        assert entry.relpath not in output


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test (needs root and a kernel that lets us mount)."""
    if not POSIX or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def test_a_full_disk_ends_with_the_summary_not_a_crash(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path, small_disk: Path
) -> None:
    server = index_server()
    names = [f"big{i}" for i in range(6)]
    for i, name in enumerate(names):  # 6 x 700 kB, incompressible: about twice the disk
        blob = random.Random(i).randbytes(700_000)  # noqa: S311 - test data
        server.add_file(make_wheel(wheel_dir, name, "1.0", extra_files={"blob.bin": blob}))
    reqs = write_reqs(tmp_path / "requirements.txt", *names)
    mirror = small_disk / "pypi"
    # One download at a time: concurrent downloads share out the disk, and may all run out of it
    # before any completes, which would leave nothing to check below.
    argv = ["sync", "-r", str(reqs), "--index-url", server.simple_url, "--download-dir",
            str(mirror), "--build-index", "--processes", "1", "--concurrency", "1",
            *TARGET]  # fmt: skip
    for _ in range(2):  # the second run finds the disk full before it starts
        result = pypidl(*argv)
        assert_clean_failure(result, 1)
        assert "Package Synchronization Summary" in result.stdout
        assert "disk" in result.stderr
        assert "full" in result.stderr
    landed = {f.filename: f.sha256 for f in server.files}
    published = list((mirror / "packages").rglob("*.whl"))
    assert published  # some fitted
    for path in published:  # and what landed is intact
        assert file_sha256(path) == landed[path.name]


# --------------------------------------------------------------------------- 429 on pages


def test_a_page_retry_after_is_capped(
    index_server: Callable[..., IndexServer], wheel_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pypidl import session

    monkeypatch.setattr(session, "MAX_RETRY_AFTER", 0.2)
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "slow", "1.0"))
    server.fail("/simple/slow/", Status(429, {"Retry-After": "100000"}))
    client = IndexClient([Mirror.from_index_url(server.simple_url)], FAST, workers=1)
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(client.project("slow")), daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "a Retry-After of 100000 s was honoured"
    assert time.monotonic() - started < 10
    assert [f.filename for f in found[0].files] == ["slow-1.0-py3-none-any.whl"]


def test_a_page_has_a_total_deadline(
    index_server: Callable[..., IndexServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "MAX_PAGE_SECONDS", 1.5)
    server = index_server()
    server.fail_always("/simple/busy/", Status(429, {"Retry-After": "1"}))
    patient = NetworkSettings(backoff=0.01, retries=60, connect_timeout=5, read_timeout=5)
    client = IndexClient([Mirror.from_index_url(server.simple_url)], patient, workers=1)
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            client.project("busy")
        except RemoteIndexError as exc:
            errors.append(exc)

    thread = threading.Thread(target=fetch, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "60 retries of 1 s each were waited out"
    assert time.monotonic() - started < 10
    assert errors
    assert "429" in str(errors[0])


@pytest.mark.skipif(not POSIX, reason="signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_page_wait_ends_at_once_on_ctrl_c_or_sigterm(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path, signum: int
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "ok", "1.0"))
    server.fail_always("/simple/busy/", Status(429, {"Retry-After": "100000"}))
    reqs = write_reqs(tmp_path / "requirements.txt", "ok", "busy")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypidl", "plan", "-r", str(reqs), "--index-url",
         server.simple_url, "-o", str(tmp_path / "m.json"), *TARGET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not server.requests_matching("/simple/busy/") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.requests_matching("/simple/busy/")
        time.sleep(0.5)  # inside the wait now
        stopped_at = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
        assert time.monotonic() - stopped_at < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- bad manifests


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[" * 100_000, "nested"),
        ('{"schema": "pypidl-manifest", "version": 1, "files": [{"size": ' + "9" * 5000 + "}]}",
         "number"),
        (
            json.dumps(
                {"schema": "pypidl-manifest", "version": 1, "files": [
                    {"project": "a", "version": "1." + "9" * 5000, "filename": "a-1.0.tar.gz",
                     "sha256": "0" * 64, "urls": ["http://127.0.0.1:9/a"]}]}
            ),
            "version",
        ),
    ],
    ids=["deep-nesting", "huge-number", "huge-version"],
)  # fmt: skip
def test_a_malformed_manifest_is_refused_in_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], text: str, says: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    code = main(["download", str(path), "--download-dir", str(tmp_path / "m")])
    out, err = capfd.readouterr()
    assert code == 2, err
    assert "Traceback" not in out + err
    assert str(path) in err
    assert says in err
    assert len([line for line in err.splitlines() if "ERROR" in line]) <= 2
    assert not (tmp_path / "m" / "packages").exists()


# --------------------------------------------------------------------------- hostile pages


def test_a_page_listing_one_file_twice_differently_fails_that_project(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "fine", "1.0"))
    dup = server.add_file(make_wheel(wheel_dir, "dup", "1.0"))
    server.fail_always(
        "/simple/dup/", json_page(file_item(dup), file_item(dup, hashes={"sha256": "0" * 64}))
    )
    reqs = write_reqs(tmp_path / "requirements.txt", "fine", "dup")
    mirror = tmp_path / "pypi"
    result = pypidl("sync", "-r", str(reqs), "--index-url", server.simple_url,
                    "--download-dir", str(mirror), "--no-deps", *TARGET)  # fmt: skip
    assert_clean_failure(result, 1)
    assert "listed twice" in result.stdout + result.stderr
    assert "Interrupted" not in result.stdout
    manifest = load(mirror / ".pypidl" / "manifest.json")  # what sync wrote, download reads
    assert [e.project for e in manifest.entries] == ["fine"]
    assert [p.project for p in manifest.errors] == ["dup"]
    again = pypidl("download", str(mirror / ".pypidl" / "manifest.json"), "--download-dir",
                   str(mirror))  # fmt: skip
    assert_clean_failure(again, 1)  # dup is still missing; the manifest itself is fine
    assert "1 already verified" in again.stderr


def test_a_deeply_nested_page_fails_its_project_not_the_run(
    index_server: Callable[..., IndexServer],
) -> None:
    server = index_server()
    server.fail_always("/simple/deep/", Status(200, {"Content-Type": JSON_TYPE}, b"[" * 100_000))
    client = IndexClient([Mirror.from_index_url(server.simple_url)], FAST, workers=1)
    with pytest.raises(RemoteIndexError, match="nested too deeply"):
        client.project("deep")


def test_a_page_listing_one_file_twice_alike_is_one_file(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    server = index_server()
    dup = server.add_file(make_wheel(wheel_dir, "dup", "1.0"))
    server.fail_always("/simple/dup/", json_page(file_item(dup), file_item(dup)))
    client = IndexClient([Mirror.from_index_url(server.simple_url)], FAST, workers=1)
    assert [f.filename for f in client.project("dup").files] == [dup.filename]


def test_a_negative_size_on_a_page_is_not_believed(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    server = index_server()
    odd = server.add_file(make_wheel(wheel_dir, "odd", "1.0"))
    server.fail_always("/simple/odd/", json_page(file_item(odd, size=-5)))
    reqs = write_reqs(tmp_path / "requirements.txt", "odd")
    mirror = tmp_path / "pypi"
    result = pypidl("sync", "-r", str(reqs), "--index-url", server.simple_url,
                    "--download-dir", str(mirror), "--no-deps", *TARGET)  # fmt: skip
    assert_clean_failure(result, 0)
    manifest = load(mirror / ".pypidl" / "manifest.json")
    assert [e.size for e in manifest.entries] == [None]
    assert file_sha256(mirror / manifest.entries[0].relpath) == odd.sha256


@pytest.mark.parametrize("kind", ["json", "html"])
def test_an_http_page_cannot_send_pypidl_to_local_files(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path, kind: str
) -> None:
    server = index_server()
    # a real wheel on local disk whose metadata names a dependency: reading it would show
    local = make_wheel(tmp_path / "local", "evil", "1.0", requires_dist=["planted"])
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    url = local.resolve().as_uri()
    if kind == "json":
        page = json_page(
            {
                "filename": local.name,
                "url": url,
                "hashes": {"sha256": digest},
                "core-metadata": True,
            }
        )
    else:
        body = f'<html><body><a href="{url}#sha256={digest}">{local.name}</a></body></html>'
        page = Status(200, {"Content-Type": "text/html"}, body.encode())
    server.fail_always("/simple/evil/", page)
    reqs = write_reqs(tmp_path / "requirements.txt", "evil")
    out = tmp_path / "m.json"
    result = pypidl("plan", "-r", str(reqs), "--index-url", server.simple_url, "-o", str(out),
                    *TARGET)  # fmt: skip
    assert_clean_failure(result, 1)
    manifest = load(out)
    assert manifest.entries == ()
    assert {p.project for p in manifest.errors} == {"evil"}  # one problem per target
    assert "file:" not in out.read_text(encoding="utf-8")
    # pypidl's resolver never opened the local wheel: it would have learned of its dependency
    # (pip-compile, a pip run on the same page, is pip's business: it says "from evil")
    assert "required by evil" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- --extra-index-url


def test_extra_index_url_in_a_requirements_file_is_a_fall_back(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    primary, extra = index_server(), index_server()
    primary.add_file(make_wheel(wheel_dir / "p", "common", "1.0"))
    only = extra.add_file(make_wheel(wheel_dir / "e", "onlyextra", "1.0"))
    reqs = write_reqs(
        tmp_path / "requirements.txt",
        f"--index-url {primary.simple_url}",
        f"--extra-index-url {extra.simple_url}",
        "common",
        "onlyextra",
    )
    out = tmp_path / "m.json"
    result = pypidl("plan", "-r", str(reqs), "-o", str(out), *TARGET)
    assert_clean_failure(result, 0)
    manifest = load(out)
    assert sorted(e.filename for e in manifest.entries) == [
        "common-1.0-py3-none-any.whl",
        "onlyextra-1.0-py3-none-any.whl",
    ]
    assert only.url in next(e for e in manifest.entries if e.project == "onlyextra").urls
    assert manifest.index_urls == (primary.simple_url, extra.simple_url)
    # the primary is asked first, as pip's --index-url comes before its extra indexes
    assert primary.requests_matching("/simple/onlyextra/")


def test_extra_index_url_in_a_file_adds_to_the_command_line_index(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    primary, extra = index_server(), index_server()
    extra.add_file(make_wheel(wheel_dir, "onlyextra", "1.0"))
    reqs = write_reqs(
        tmp_path / "requirements.txt", f"--extra-index-url {extra.simple_url}", "onlyextra"
    )
    out = tmp_path / "m.json"
    result = pypidl("plan", "-r", str(reqs), "--index-url", primary.simple_url, "-o", str(out),
                    *TARGET)  # fmt: skip
    assert_clean_failure(result, 0)
    assert [e.project for e in load(out).entries] == ["onlyextra"]


# --------------------------------------------------------------------------- Range ignored


def test_restarting_from_zero_is_not_progress(
    index_server: Callable[..., IndexServer], tmp_path: Path
) -> None:
    """A server that ignores Range and always breaks off at the same point: a few attempts."""
    server = index_server()
    path = tmp_path / "stuck-1.0-py3-none-any.whl"
    path.write_bytes(random.Random(7).randbytes(4 * CHUNK_SIZE + 123))  # noqa: S311 - test data
    served = server.add_file(path, metadata=False)
    server.ignore_range = True
    server.fail_always(served.url_path, Cut(2 * CHUNK_SIZE + 5000))  # whole chunks arrive
    with Downloader(tmp_path / "mirror", FAST) as dl:
        result = dl.fetch(entry_for(served))
    assert result is not None
    assert result.status == FAILED
    requests = len(server.requests_matching(served.url_path))
    # one attempt that made progress, then the usual retries; not 16 "free" restarts more
    assert requests <= FAST.retries + 2, requests


# --------------------------------------------------------------------------- import


def _bundle_of(root: Path, entries: list[Entry], out: Path) -> Path:
    manifest = Manifest(entries=tuple(entries), projects={e.project: (e.version,) for e in entries})
    transfer.bundle(manifest, root, since=None, out=out)
    return out


def test_import_over_an_equal_copy_does_not_warn_or_rewrite(
    tmp_path: Path, wheel_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside"
    entries = [
        add_to_mirror(outside, make_wheel(wheel_dir, name, "1.0")) for name in ("one", "two")
    ]
    delta = _bundle_of(outside, entries, tmp_path / "delta.tar")
    inside = tmp_path / "inside"
    shutil.copytree(outside, inside, copy_function=shutil.copyfile)  # same bytes, new stat data
    inodes = {e.filename: (inside / e.relpath).stat().st_ino for e in entries}
    caplog.set_level("DEBUG", logger="pypidl")
    assert main(["import", str(delta), "--into", str(inside)]) == 0
    assert "did not match" not in caplog.text
    assert "replacing" not in caplog.text.lower()
    assert {e.filename: (inside / e.relpath).stat().st_ino for e in entries} == inodes
    for entry in entries:
        assert Catalog(inside).current(entry)


def test_import_never_replaces_a_verified_file_without_force(
    tmp_path: Path, wheel_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    good = make_wheel(wheel_dir / "good", "victim", "1.0")
    forged = make_wheel(wheel_dir / "forged", "victim", "1.0", extra_files={"x.py": b"evil"})
    assert good.name == forged.name
    inside = tmp_path / "inside"
    add_to_mirror(inside, good)
    liar = tmp_path / "liar"
    forged_entry = add_to_mirror(liar, forged)  # a consistent bundle of other bytes
    delta = _bundle_of(liar, [forged_entry], tmp_path / "forged.tar")
    target = inside / forged_entry.relpath

    assert main(["import", str(delta), "--into", str(inside)]) == 2
    _, err = capfd.readouterr()
    assert forged_entry.relpath in err
    assert "--force" in err
    assert target.read_bytes() == good.read_bytes()
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".pypidl-")] == []

    assert main(["import", str(delta), "--into", str(inside), "--force"]) == 0
    assert target.read_bytes() == forged.read_bytes()
    assert Catalog(inside).current(forged_entry)


def test_adopting_a_directory_never_replaces_a_verified_file_without_force(
    tmp_path: Path, wheel_dir: Path
) -> None:
    good = make_wheel(wheel_dir / "good", "victim", "1.0")
    forged = make_wheel(wheel_dir / "forged", "victim", "1.0", extra_files={"x.py": b"evil"})
    inside = tmp_path / "inside"
    add_to_mirror(inside, good)
    other = tmp_path / "other"
    forged_entry = add_to_mirror(other, forged)
    dump(Manifest(entries=(forged_entry,)), tmp_path / "forged.json")
    target = inside / forged_entry.relpath
    argv = [
        "import",
        str(other),
        "--into",
        str(inside),
        "--manifest",
        str(tmp_path / "forged.json"),
    ]

    assert main(argv) == 1
    assert target.read_bytes() == good.read_bytes()
    assert main([*argv, "--force"]) == 0
    assert target.read_bytes() == forged.read_bytes()


# --------------------------------------------------------------------------- crashed index build

KILL_DURING_INDEX = """
import os, signal, sys
real = os.replace
def replace(src, dst, *a, **k):
    if os.path.basename(str(src)).startswith(".pypidl-"):
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 with a temp file written, not yet renamed
    return real(src, dst, *a, **k)
os.replace = replace
from pypidl.cli import main
sys.exit(main(["index", sys.argv[1]]))
"""


@pytest.mark.skipif(not POSIX, reason="SIGKILL")
@pytest.mark.parametrize("stage", ["sidecar", "page"])
def test_temp_files_of_a_killed_index_build_are_reported_and_cleaned(
    tmp_path: Path, wheel_dir: Path, stage: str
) -> None:
    root = tmp_path / "mirror"
    add_to_mirror(root, make_wheel(wheel_dir, "alpha", "1.0"), sidecar=(stage == "page"))
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DURING_INDEX, str(root)], capture_output=True, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    leftovers = sorted(p for p in root.rglob(".pypidl-*") if p.suffix == ".tmp")
    assert leftovers, "the killed build left no temp file to test with"

    verify = pypidl("verify", str(root))
    assert_clean_failure(verify, 1)
    for path in leftovers:
        assert path.name in verify.stdout + verify.stderr

    index = pypidl("index", str(root))
    assert_clean_failure(index, 0)
    assert sorted(p for p in root.rglob(".pypidl-*") if p.suffix == ".tmp") == []
    assert (root / "simple" / "alpha" / "index.json").is_file()
    assert_clean_failure(pypidl("verify", str(root)), 0)


def test_dump_and_load_still_round_trip(tmp_path: Path) -> None:
    """The manifest reader's new limits leave every manifest pypidl writes readable."""
    entry = Entry(
        project="a", version="1.0", filename="a-1.0.tar.gz", urls=("http://127.0.0.1:9/a",),
        sha256="0" * 64, size=10**12, kind="sdist",
    )  # fmt: skip
    dump(Manifest(entries=(entry,)), tmp_path / "m.json")
    assert load(tmp_path / "m.json").entries == (entry,)
