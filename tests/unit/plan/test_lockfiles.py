"""lockfiles: reading uv.lock, pylock.toml, poetry.lock and Pipfile.lock, per-target selection,
and the lock's files checked against the index."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pypidl.errors import RemoteIndexError
from pypidl.plan.file_choice import choose_files
from pypidl.plan.lock_formats import is_lock_file, read_lock
from pypidl.plan.lockfiles import LockError, locked_files
from pypidl.plan.pages import ProjectPage, RemoteFile
from pypidl.plan.targets import Target, parse_targets
from tests.lib.locks import (
    serve_project_set,
    uv_lock,
    write_lock,
)
from tests.lib.server import IndexServer

LINUX311, WIN311, LINUX312 = (
    *parse_targets(python_versions=["3.11"], platforms=["linux-x86_64", "win-amd64"]),
    *parse_targets(python_versions=["3.12"], platforms=["linux-x86_64"]),
)
TARGETS = (LINUX311, WIN311, LINUX312)

#: what each target installs from the locked application
EXPECTED = {
    ("alpha", "1.0"): {LINUX311.label, WIN311.label, LINUX312.label},
    ("beta", "1.0"): {LINUX311.label, WIN311.label, LINUX312.label},
    ("gamma", "2.0"): {WIN311.label},
    ("delta", "0.5"): {LINUX311.label, WIN311.label},
}


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    srv = index_server()
    serve_project_set(srv, wheel_dir)
    return srv


FORMATS = ("uv.lock", "pylock.toml", "poetry.lock", "Pipfile.lock")


@pytest.mark.parametrize("kind", FORMATS)
def test_each_target_gets_what_the_lock_installs_on_it(
    kind: str, tmp_path: Path, index: IndexServer, clean_env: dict[str, str]
) -> None:
    lock = read_lock(write_lock(kind, tmp_path / "proj", index, clean_env))
    assert lock.format == kind
    selected = {
        (r.package.name, r.package.version): {t.label for t in r.targets}
        for r in lock.select(TARGETS)
    }
    assert selected == EXPECTED
    # poetry records a source only for packages from a non-default one
    assert lock.index_urls == ([] if kind == "poetry.lock" else [index.simple_url])


@pytest.mark.parametrize("kind", FORMATS)
def test_a_lock_is_recognised_by_content_under_another_name(
    kind: str, tmp_path: Path, index: IndexServer, clean_env: dict[str, str]
) -> None:
    path = write_lock(kind, tmp_path / "proj", index, clean_env)
    renamed = shutil.copyfile(path, tmp_path / "locked-deps.txt")
    assert is_lock_file(path)
    assert is_lock_file(renamed)
    assert read_lock(renamed).format == kind


def test_a_requirements_file_is_not_a_lock(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha==1.0\n# a comment\nbeta>=1 ; python_version < '3.12'\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    assert not is_lock_file(reqs)
    assert not is_lock_file(empty)


@pytest.mark.parametrize(
    ("name", "text", "line", "says"),
    [
        ("uv.lock", "version = 1\n\n[[package]]\nname = 'a'\nversion = \n", 5, "not valid TOML"),
        (
            "uv.lock",
            "version = 1\n\n[[package]]\nname = 'a'\nversion = '1.0'\n"
            "source = { registry = 'http://127.0.0.1:1/simple' }\n\n"
            "[[package]]\nname = 'b'\nversion = 'one'\n",
            8,
            "invalid version 'one'",
        ),
        (
            "pylock.toml",
            "lock-version = '1.0'\n\n[[packages]]\nname = 'a'\nversion = '1.0'\n"
            "marker = 'python_version >'\n",
            3,
            "invalid marker",
        ),
        ("pylock.toml", "lock-version = '2.0'\npackages = []\n", None, "lock-version '2.0'"),
        (
            "Pipfile.lock",
            '{"_meta": {"pipfile-spec": 6},\n "default": {\n  "a": {"version": "==x"}}}',
            3,
            "invalid version",
        ),
    ],
)
def test_a_broken_lock_is_one_error_naming_file_and_line(
    tmp_path: Path, name: str, text: str, line: int | None, says: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LockError) as caught:
        read_lock(path)
    assert caught.value.context == (f"{path}:{line}" if line else str(path))
    assert says in caught.value.message
    assert caught.value.exit_code == 2


# -- the files of the lock, against the index ---------------------------------------------------


def page_of(index: IndexServer) -> Callable[[str], ProjectPage]:
    from pypidl._simple import SimplePage
    from pypidl.plan.pages import files_of

    def page(name: str) -> ProjectPage:
        files = [
            {"filename": f.filename, "url": f.url, "hashes": {"sha256": f.sha256}, "size": f.size}
            for f in index.files
            if f.project == name
        ]
        if not files:
            raise RemoteIndexError("not found", context=name)
        parsed = files_of(SimplePage(files, index.simple_url), name, "primary")  # type: ignore[arg-type]
        return ProjectPage(name=name, files=tuple(parsed), mirror="primary", url=index.simple_url)  # type: ignore[arg-type]

    return page


def never_sdist(files: Sequence[RemoteFile], targets: Sequence[Target]) -> list[RemoteFile]:
    return choose_files(files, targets, sdist="never")


@pytest.mark.parametrize("kind", FORMATS)
def test_the_lock_s_files_for_the_targets(
    kind: str, tmp_path: Path, index: IndexServer, clean_env: dict[str, str]
) -> None:
    lock = read_lock(write_lock(kind, tmp_path / "proj", index, clean_env))
    files, problems = locked_files(lock.select(TARGETS), page=page_of(index), choose=choose_files)
    assert problems == []
    assert sorted(f.filename for f in files) == [
        "alpha-1.0-py3-none-any.whl",
        # no cp312 wheel: the sdist serves 3.12
        "beta-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "beta-1.0-cp311-cp311-win_amd64.whl",
        "beta-1.0.tar.gz",
        "delta-0.5.tar.gz",
        "gamma-2.0-py3-none-any.whl",
    ]


@pytest.mark.parametrize("kind", ["uv.lock", "pylock.toml", "poetry.lock"])
def test_a_file_the_index_lists_with_another_hash_is_an_error_naming_it(
    kind: str, tmp_path: Path, index: IndexServer, clean_env: dict[str, str], wheel_dir: Path
) -> None:
    lock = read_lock(write_lock(kind, tmp_path / "proj", index, clean_env))
    # the index now serves other bytes under the locked name
    tampered = wheel_dir / "gamma-2.0-py3-none-any.whl"
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    index.add_file(tampered)
    files, problems = locked_files(lock.select(TARGETS), page=page_of(index), choose=choose_files)
    assert "gamma-2.0-py3-none-any.whl" not in {f.filename for f in files}
    (problem,) = problems
    assert problem.project == "gamma"
    assert problem.is_error
    assert problem.reason.startswith("gamma-2.0-py3-none-any.whl: the index's sha256 ")
    assert hashlib.sha256(tampered.read_bytes()).hexdigest() in problem.reason


def test_a_target_the_lock_has_no_file_for_is_named(
    tmp_path: Path, index: IndexServer, clean_env: dict[str, str]
) -> None:
    lock = read_lock(uv_lock(tmp_path / "proj", index, clean_env))
    (mac,) = parse_targets(python_versions=["3.11"], platforms=["macos-arm64"])
    targets: tuple[Target, ...] = (LINUX311, mac)
    _, problems = locked_files(lock.select(targets), page=page_of(index), choose=never_sdist)
    # beta has no macOS wheel; delta has no wheel at all, and sdists are refused
    assert [(p.project, p.target) for p in problems] == [("beta", mac.label), ("delta", None)]
    assert "the lock has no file of beta 1.0 for cp311-macos-arm64" in problems[0].reason
    assert "no file of delta 0.5 in the lock fits any target" in problems[1].reason


def test_a_project_missing_from_the_index_comes_from_the_lock_s_urls(
    tmp_path: Path, index: IndexServer, clean_env: dict[str, str]
) -> None:
    lock = read_lock(uv_lock(tmp_path / "proj", index, clean_env))
    full = page_of(index)

    def page(name: str) -> ProjectPage:
        if name == "gamma":
            raise RemoteIndexError("all mirrors failed", context=name)
        return full(name)

    files, problems = locked_files(lock.select(TARGETS), page=page, choose=choose_files)
    assert problems == []
    (gamma,) = (f for f in files if f.project == "gamma")
    assert isinstance(gamma, RemoteFile)
    assert gamma.url == index.file_url("gamma-2.0-py3-none-any.whl")
    assert gamma.mirror == "lock"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("Pipfile.lock", '{"_meta": ' + "[" * 100_000),
        ("uv.lock", "version = 1\nx = " + "[" * 100_000),
        ("pylock.toml", 'lock-version = "1.0"\nx = ' + "{a = " * 5_000),
    ],
)
def test_a_lock_nested_too_deeply_is_refused_in_one_line(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LockError, match="nested too deeply") as info:
        read_lock(path)
    assert info.value.context == str(path)
    # under another name the content decides, and content that cannot be parsed is not a lock
    renamed = path.rename(tmp_path / "renamed.txt")
    assert is_lock_file(renamed) is False
