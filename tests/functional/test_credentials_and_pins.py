"""Credentials and index pins across planning and downloading (issue 20, items 2 to 5).

An index URL with credentials written inside a requirements file or a lock must serve the
download phase of the same ``sync`` too, and never reach a file pypidl writes; a project pinned
to an index is asked of no other index in any phase; ``--index-url`` replaces a lock's registries
unless ``--keep-lock-indexes`` keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from pypidl.manifest import load
from tests.lib.server import IndexServer, ServedFile, Status
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]
SECRET = "s3cret-Pw"  # noqa: S105 - the loopback test index's password


@pytest.fixture(autouse=True)
def _no_default_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test does not name is a dead loopback port, never a public index."""
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")


def with_auth(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://user:{SECRET}@{rest}"


def write_uv_lock(path: Path, *packages: tuple[ServedFile, str, str]) -> Path:
    """A ``uv.lock`` of ``(file, registry, file URL)``: one wheel per package, no workspace."""
    lines = ["version = 1", 'requires-python = ">=3.9"', ""]
    for served, registry, url in packages:
        lines += [
            "[[package]]",
            f'name = "{served.project}"',
            f'version = "{served.version}"',
            f'source = {{ registry = "{registry}" }}',
            f'wheels = [{{ url = "{url}", hash = "sha256:{served.sha256}", size = {served.size} }}]',
            "",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def no_secret_under(root: Path, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def asked_for(server: IndexServer, project: str) -> list[str]:
    return [r.path for r in server.requests if project in r.path]


# --------------------------------------------------------------------------- item 2


@pytest.mark.parametrize("where", ["index-url", "extra-index-url", "named-index", "uv.lock"])
def test_credentials_inside_the_input_serve_the_download_too(
    where: str,
    index_server: Callable[..., IndexServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private = index_server(auth=("user", SECRET))
    public = index_server()
    served = private.add_file(make_wheel(tmp_path / "dists", "alpha", "1.0"))
    secret_url = with_auth(private.simple_url)
    reqs = tmp_path / "requirements.txt"
    argv = ["sync", "-r", str(reqs), "-i", public.simple_url]
    if where == "index-url":
        reqs.write_text(f"-i {secret_url}\nalpha\n", encoding="utf-8")
        argv = ["sync", "-r", str(reqs)]
    elif where == "extra-index-url":
        reqs.write_text(f"--extra-index-url {secret_url}\nalpha\n", encoding="utf-8")
    elif where == "named-index":
        reqs.write_text(
            f"# pypidl: index vendor={secret_url}\n# pypidl: project-index alpha=vendor\nalpha\n",
            encoding="utf-8",
        )
    else:
        lock = write_uv_lock(tmp_path / "proj" / "uv.lock", (served, secret_url, served.url))
        argv = ["sync", str(lock)]
    mirror = tmp_path / "mirror"
    code = main([*argv, "--download-dir", str(mirror), *TARGET])
    out = capsys.readouterr()
    assert code == 0, out.err
    wheel = mirror / "packages" / "alpha" / served.filename
    assert wheel.read_bytes() == served.data
    no_secret_under(mirror, out.out, out.err)


# --------------------------------------------------------------------------- item 3


def test_a_lock_file_url_with_credentials_stays_out_of_the_manifest(
    index_server: Callable[..., IndexServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = index_server()  # lists nothing: the lock's own URL is the only one
    files = index_server(auth=("user", SECRET))
    served = files.add_file(make_wheel(tmp_path / "dists", "alpha", "1.0"))
    lock = write_uv_lock(
        tmp_path / "proj" / "uv.lock", (served, registry.simple_url, with_auth(served.url))
    )
    planned = tmp_path / "out" / "manifest.json"
    assert main(["plan", str(lock), "-o", str(planned), *TARGET]) == 0
    assert SECRET not in planned.read_text(encoding="utf-8")
    (entry,) = load(planned).entries  # a manifest download accepts
    assert entry.urls[0] == served.url
    mirror = tmp_path / "mirror"
    # one sync: the credentials travel in memory from the lock to the download
    assert main(["sync", str(lock), "--download-dir", str(mirror), *TARGET]) == 0
    assert (mirror / "packages" / "alpha" / served.filename).read_bytes() == served.data
    out = capsys.readouterr()
    no_secret_under(tmp_path / "out", out.out, out.err)
    no_secret_under(mirror)


# --------------------------------------------------------------------------- item 4


@pytest.fixture
def impostor(
    index_server: Callable[..., IndexServer], tmp_path: Path
) -> tuple[IndexServer, IndexServer, ServedFile]:
    """``(public, vendor, vendor's torch)``: the public index has common and another torch."""
    public, vendor = index_server(), index_server()
    public.add_file(make_wheel(tmp_path / "pub", "common", "1.0"))
    public.add_file(make_wheel(tmp_path / "pub", "other", "1.0"))
    public.add_file(make_wheel(tmp_path / "pub", "torch", "2.5.1", summary="impostor"))
    torch = vendor.add_file(make_wheel(tmp_path / "vendor", "torch", "2.5.1"))
    return public, vendor, torch


@pytest.mark.parametrize("flags", [[], ["-i", "PUBLIC"]])
def test_download_of_a_pinned_plan_never_asks_another_index(
    flags: list[str],
    impostor: tuple[IndexServer, IndexServer, ServedFile],
    tmp_path: Path,
) -> None:
    public, vendor, torch = impostor
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("common\ntorch\n", encoding="utf-8")
    planned = tmp_path / "manifest.json"
    code = main(
        ["plan", "-r", str(reqs), "-i", public.simple_url, "--index",
         f"vendor={vendor.simple_url}", "--project-index", "torch=vendor", "-o", str(planned),
         *TARGET]
    )  # fmt: skip
    assert code == 0
    assert not asked_for(public, "torch")
    vendor.fail_always(torch.url_path, Status(404))  # its file is gone: the rescue path runs
    argv = [public.simple_url if a == "PUBLIC" else a for a in flags]
    mirror = tmp_path / "mirror"
    assert main(["download", str(planned), "--download-dir", str(mirror), *argv]) == 1
    assert vendor.requests_matching("/simple/torch/")  # the rescue asked its own index
    assert not asked_for(public, "torch")
    assert not (mirror / "packages" / "torch").exists()


@pytest.mark.parametrize("flags", [[], ["-i", "PUBLIC", "--keep-lock-indexes"]])
def test_sync_of_a_lock_never_asks_another_index_for_a_locked_project(
    flags: list[str], impostor: tuple[IndexServer, IndexServer, ServedFile], tmp_path: Path
) -> None:
    public, vendor, torch = impostor
    common, other = (f for f in public.files if f.project in {"common", "other"})
    lock = write_uv_lock(  # the public index is the lock's most used: its primary
        tmp_path / "proj" / "uv.lock",
        (common, public.simple_url, common.url),
        (other, public.simple_url, other.url),
        (torch, vendor.simple_url, torch.url),
    )
    vendor.fail_always(torch.url_path, Status(404))
    mirror = tmp_path / "mirror"
    argv = [public.simple_url if a == "PUBLIC" else a for a in flags]
    assert main(["sync", str(lock), *argv, "--download-dir", str(mirror), *TARGET]) == 1
    assert (mirror / "packages" / "common" / common.filename).exists()
    assert vendor.requests_matching("/simple/torch/")
    assert not asked_for(public, "torch")


@pytest.mark.parametrize("name", ["primary", "index2", "extra1", "default", "lock"])
def test_an_index_name_taken_by_a_built_in_one_is_refused(
    name: str,
    impostor: tuple[IndexServer, IndexServer, ServedFile],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    public, vendor, _ = impostor
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("common\ntorch\n", encoding="utf-8")
    code = main(
        ["plan", "-r", str(reqs), "-i", public.simple_url, "--index",
         f"{name}={vendor.simple_url}", "--project-index", f"torch={name}", "-o",
         str(tmp_path / "m.json"), *TARGET]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if "| ERROR |" in line and "hint:" not in line]
    assert len(errors) == 1, err
    assert repr(name) in errors[0]
    assert not public.requests
    assert not vendor.requests


# --------------------------------------------------------------------------- item 5


@pytest.fixture
def proxied(
    index_server: Callable[..., IndexServer], tmp_path: Path
) -> tuple[IndexServer, IndexServer, Path, ServedFile]:
    """``(proxy, registry, lock, torch)``: the lock names ``registry``; ``proxy`` serves the
    same files (as an internal proxy of it does)."""
    proxy, registry = index_server(), index_server()
    wheel = make_wheel(tmp_path / "dists", "torch", "2.5.1")
    torch = registry.add_file(wheel)
    proxy.add_file(wheel)
    lock = write_uv_lock(tmp_path / "proj" / "uv.lock", (torch, registry.simple_url, torch.url))
    return proxy, registry, lock, torch


def test_index_url_replaces_the_lock_registries(
    proxied: tuple[IndexServer, IndexServer, Path, ServedFile], tmp_path: Path
) -> None:
    proxy, registry, lock, torch = proxied
    mirror = tmp_path / "mirror"
    code = main(["sync", str(lock), "-i", proxy.simple_url, "--download-dir", str(mirror),
                 *TARGET])  # fmt: skip
    assert code == 0
    assert (mirror / "packages" / "torch" / torch.filename).read_bytes() == torch.data
    assert proxy.requests_matching("/simple/torch/")
    assert not registry.requests  # the lock's registry is never contacted


def test_keep_lock_indexes_keeps_the_lock_registries(
    proxied: tuple[IndexServer, IndexServer, Path, ServedFile], tmp_path: Path
) -> None:
    proxy, registry, lock, torch = proxied
    mirror = tmp_path / "mirror"
    code = main(["sync", str(lock), "-i", proxy.simple_url, "--keep-lock-indexes",
                 "--download-dir", str(mirror), *TARGET])  # fmt: skip
    assert code == 0
    assert (mirror / "packages" / "torch" / torch.filename).read_bytes() == torch.data
    assert registry.requests_matching("/simple/torch/")
    assert not asked_for(proxy, "torch")
