"""Every index is a fall-back for every file, whatever path its files live under.

A manifest lists a file on the primary and, guessed in the upstream ``packages/`` layout, on the
other indexes.  An index that keeps its files elsewhere (here: ``/files/<name>``) is only found
through its project page: the engine reads it once per project when every listed URL failed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from pypidl.config import NetworkSettings
from pypidl.fetch import pool as engine
from pypidl.hashing import file_sha256
from pypidl.manifest import Entry, Manifest, dump
from tests.lib.mirror import entry_for
from tests.lib.server import Corrupt, Drop, IndexServer, ServedFile, Status
from tests.lib.wheels import make_wheel

FAST = NetworkSettings(backoff=0.01, retries=3, connect_timeout=5, read_timeout=5, stall_timeout=5)


def build(wheel_dir: Path, name: str, version: str, size: int = 20_000) -> Path:
    data = random.Random(f"{name}-{version}").randbytes(size)  # noqa: S311 - test data
    return make_wheel(wheel_dir, name, version, extra_files={f"{name}/blob.bin": data})


def planned(served: ServedFile, fallback: IndexServer) -> Entry:
    """What the planner writes: the primary's URL, then the guess in the upstream layout."""
    guess = fallback.url + "/packages/" + served.url_path.split("/packages/", 1)[1]
    return replace(entry_for(served), urls=(served.url, guess))


def test_a_flaky_primary_and_a_healthy_fallback_in_another_layout(
    index_server, wheel_dir, tmp_path
):
    flaky = index_server()
    healthy = index_server(layout="flat")
    rng = random.Random(11)  # noqa: S311 - test data
    faults = [Status(503), Drop(), Corrupt()]
    entries = []
    broken = set()
    for i in range(48):
        path = build(wheel_dir, f"proj{i % 8}", f"1.{i}")
        served = flaky.add_file(path, metadata=False)
        healthy.add_file(path, metadata=False)
        entries.append(planned(served, healthy))
        if i % 4 == 0:  # broken on the primary for good: only the fall-back's page can help
            flaky.fail_always(served.url_path, faults[i % 3])
            broken.add(served.filename)
        else:  # 15% 503s, 15% resets, 15% corrupt bodies
            for _ in range(6):
                if rng.random() < 0.45:
                    flaky.fail(served.url_path, rng.choice(faults))
    assert all(f.url_path.startswith("/files/") for f in healthy.files)

    root = tmp_path / "mirror"
    options = engine.EngineOptions(
        concurrency=8, processes=2, net=FAST, indexes=(flaky.simple_url, healthy.simple_url)
    )
    report = engine.run(entries, root, options=options)

    assert report.failed == [], [r.error for r in report.failed]
    for e in entries:
        assert file_sha256(root / "packages" / e.project / e.filename) == e.sha256
    fallback = report.mirrors[f"127.0.0.1:{healthy.port}"]
    rescued = {r.entry.filename for r in report.results if r.mirror == f"127.0.0.1:{healthy.port}"}
    assert broken <= rescued
    assert fallback.rescued == len(rescued)
    # one page per project that needed it, never one per file
    pages = [r.path for r in healthy.requests_matching("/simple/*")]
    assert len(pages) == len(set(pages)) <= 8
    # the guessed URLs were tried first (404: the fall-back keeps its files elsewhere)
    assert healthy.requests_matching("/packages/*")


def test_a_page_listing_another_sha256_is_not_tried(index_server, wheel_dir, tmp_path):
    primary = index_server()
    other = index_server(layout="flat")
    served = primary.add_file(build(wheel_dir, "proj", "1.0"), metadata=False)
    # the fall-back has a different file under the same name
    imposter_dir = tmp_path / "imposter"
    other.add_file(build(imposter_dir, "proj", "1.0", size=20_001), metadata=False)
    primary.fail_always(served.url_path, Status(503))
    options = engine.EngineOptions(
        concurrency=2, processes=1, net=FAST, indexes=(primary.simple_url, other.simple_url)
    )
    report = engine.run([entry_for(served)], tmp_path / "mirror", options=options)
    assert [r.status for r in report.results] == ["failed"]
    assert "503" in (report.results[0].error or "")
    assert other.requests_matching("/simple/proj/")
    assert not other.requests_matching("/files/*")
    assert not (tmp_path / "mirror" / "packages" / "proj" / served.filename).exists()


def test_no_page_is_read_when_the_listed_urls_work(index_server, wheel_dir, tmp_path):
    primary = index_server()
    other = index_server(layout="flat")
    served = [primary.add_file(build(wheel_dir, f"p{i}", "1.0"), metadata=False) for i in range(4)]
    options = engine.EngineOptions(
        concurrency=4, processes=1, net=FAST, indexes=(primary.simple_url, other.simple_url)
    )
    report = engine.run([entry_for(f) for f in served], tmp_path / "mirror", options=options)
    assert report.ok
    assert other.requests == []
    assert primary.requests_matching("/simple/*") == []


def test_a_project_pinned_to_an_index_is_never_rescued_from_another(
    index_server, wheel_dir, tmp_path
):
    pinned = index_server()
    other = index_server(layout="flat")
    served = pinned.add_file(build(wheel_dir, "proj", "1.0"), metadata=False)
    other.add_file(build(wheel_dir, "proj", "1.0"), metadata=False)  # the same file
    pinned.fail_always(served.url_path, Status(503))
    options = engine.EngineOptions(
        concurrency=2,
        processes=1,
        net=FAST,
        indexes=(other.simple_url,),
        pins={"proj": (pinned.simple_url,)},
    )
    report = engine.run([entry_for(served)], tmp_path / "mirror", options=options)
    assert [r.status for r in report.results] == ["failed"]
    assert other.requests == []
    assert pinned.requests_matching("/simple/proj/")  # its own index's page was asked


def test_a_fallback_page_of_hostile_json_fails_that_page_not_the_file(
    index_server, wheel_dir, tmp_path
):
    """Issue 20 #10: one index's page is JSON nested past the parser's stack; another index lists
    the file.  The rescue reads pages with the planner's hardened reader: that page counts as
    unreadable, the next index is asked, the file arrives (through the real command line)."""
    primary = index_server()
    hostile = index_server(layout="flat")
    healthy = index_server(layout="flat")
    served = primary.add_file(build(wheel_dir, "proj", "1.0"), metadata=False)
    healthy.add_file(build(wheel_dir, "proj", "1.0"), metadata=False)
    primary.fail_always(served.url_path, Status(503))
    nested = b'{"meta": {"api-version": "1.1"}, "files": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    headers = {"Content-Type": "application/vnd.pypi.simple.v1+json"}
    hostile.fail_always("/simple/proj/", Status(200, headers, nested))
    manifest = tmp_path / "manifest.json"
    dump(Manifest(entries=(entry_for(served),)), manifest)
    mirror = tmp_path / "mirror"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYPIDL_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PYPIDL_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pypidl",
            "download",
            str(manifest),
            "--download-dir",
            str(mirror),
            "--processes",
            "1",
            "--retries",
            "1",
            *(a for i in (primary, hostile, healthy) for a in ("-i", i.simple_url)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "RecursionError" not in output, output
    assert hostile.requests_matching("/simple/proj/")  # the hostile page was read, and survived
    assert file_sha256(mirror / "packages" / "proj" / served.filename) == served.sha256
