"""Hostile input through the real command line (issue 20, items 6 to 9 and 11 to 14).

A hostile sdist on the index, malformed or endless input files, absurd shard counts, garbage
requests to ``serve``, a rewritten cache entry, a symlink out of the mirror: each used to end in a
traceback (or in no end at all).  Each test here fails again if its protection is removed.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

import pytest

from pypidl.manifest import Entry, Manifest, dump
from tests.functional.test_reliability import TARGET, assert_clean_failure, pypidl

POSIX = os.name == "posix"
#: address space for a child that must not read without limit (a leak dies of MemoryError)
MEMORY_CAP = 1024 * 1024 * 1024


def _capped() -> None:  # pragma: no cover - runs in the child
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
