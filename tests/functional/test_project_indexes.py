"""Per-project indexes end to end: a project pinned to a second index is read from that index
only, even when the first index has a project of the same name (and a newer version); local
versions such as 2.5.1+cu124 go through plan, download, index and ``pip install``."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from tests.lib.backends import make_flit_sdist
from tests.lib.server import IndexServer, Status
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]
LOCAL = "torch-2.5.1+cu124-py3-none-any.whl"


@pytest.fixture
def indexes(
    index_server: Callable[..., IndexServer], tmp_path: Path
) -> tuple[IndexServer, IndexServer]:
    """primary: common, helper, and an impostor torch (the same local version, other bytes, and
    a newer release); vendor: torch 2.5.1+cu124 and +cpu, needing helper."""
    primary, vendor = index_server(), index_server()
    public, private = tmp_path / "public", tmp_path / "private"
    primary.add_file(make_wheel(public, "common", "1.0"))
    primary.add_file(make_wheel(public, "helper", "1.0"))
    primary.add_file(make_wheel(public, "torch", "2.5.1+cu124", summary="impostor"))
    primary.add_file(make_wheel(public, "torch", "99.0"))
    vendor.add_file(make_wheel(private, "torch", "2.5.1+cu124", requires_dist=["helper"]))
    vendor.add_file(make_wheel(private / "cpu", "torch", "2.5.1+cpu", requires_dist=["helper"]))
    return primary, vendor


def files_in(root: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (root / "packages").rglob("*")
        if p.is_file() and not p.name.endswith(".metadata")
    }


def check_routing(primary: IndexServer, vendor: IndexServer, mirror: Path) -> None:
    held = files_in(mirror)
    assert set(held) == {"common-1.0-py3-none-any.whl", "helper-1.0-py3-none-any.whl", LOCAL}
    (vendor_torch,) = (f for f in vendor.files if f.filename == LOCAL)
    assert held[LOCAL] == vendor_torch.sha256  # not the impostor's bytes
    assert not primary.requests_matching("*/simple/torch/*")
    assert not [r for r in primary.requests if "torch" in r.path]
    assert not [r for r in vendor.requests if "common" in r.path or "helper" in r.path]


@pytest.mark.clients
def test_a_pinned_project_comes_from_its_index_only_and_pip_installs_the_local_version(
    indexes: tuple[IndexServer, IndexServer],
    tmp_path: Path,
    venv_factory: Callable[[], Path],
    clean_env: dict[str, str],
) -> None:
    primary, vendor = indexes
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("torch==2.5.1+cu124\ncommon\n")
    mirror = tmp_path / "mirror"
    code = main(
        ["sync", "-r", str(reqs), "--index-url", primary.simple_url, "--download-dir", str(mirror),
         "--index", f"vendor={vendor.simple_url}", "--project-index", "torch=vendor",
         "--build-index", *TARGET]
    )  # fmt: skip
    assert code == 0
    check_routing(primary, vendor, mirror)
    primary.stop()
    vendor.stop()
    python = venv_factory()
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-cache-dir", "--index-url",
         (mirror / "simple").as_uri() + "/", "torch==2.5.1+cu124"],
        env=clean_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('torch'))"],
        env=clean_env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "2.5.1+cu124"


def test_the_requirements_file_form(
    indexes: tuple[IndexServer, IndexServer], tmp_path: Path
) -> None:
    primary, vendor = indexes
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(
        f"# pypidl: index vendor={vendor.simple_url}\n"
        "# pypidl: project-index torch=vendor\n"
        "torch==2.5.1+cu124\n"
        "common\n"
    )
    mirror = tmp_path / "mirror"
    code = main(
        ["sync", "-r", str(reqs), "--index-url", primary.simple_url, "--download-dir", str(mirror),
         *TARGET]
    )  # fmt: skip
    assert code == 0
    check_routing(primary, vendor, mirror)


def test_a_pinned_project_missing_from_its_index_is_not_taken_from_another(
    indexes: tuple[IndexServer, IndexServer], tmp_path: Path
) -> None:
    primary, vendor = indexes
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("common\n")
    mirror = tmp_path / "mirror"
    code = main(
        ["sync", "-r", str(reqs), "--index-url", primary.simple_url, "--download-dir", str(mirror),
         "--index", f"vendor={vendor.simple_url}", "--project-index", "common=vendor", *TARGET]
    )  # fmt: skip
    assert code == 1  # the vendor index has no 'common'; the primary's is never used
    assert files_in(mirror) == {}
    assert not primary.requests_matching("*/simple/common/*")


def test_a_pin_to_an_undeclared_index_is_one_line(
    indexes: tuple[IndexServer, IndexServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, _ = indexes
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("torch\n# pypidl: project-index torch=nowhere\n")
    code = main(["plan", "-r", str(reqs), "--index-url", primary.simple_url, *TARGET])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"| ERROR | {reqs}:2: project 'torch' is pinned to index 'nowhere'" in err[0]
    assert not primary.requests


def test_a_pinned_projects_sdist_is_never_read_from_another_index(
    index_server: Callable[..., IndexServer], tmp_path: Path
) -> None:
    """The build closure reads a kept sdist's pyproject.toml; for a project kept to its own
    index, a failed read there is not retried on the other indexes (where a file of that name
    could be anything)."""
    primary, vendor = index_server(), index_server()
    sdist = make_flit_sdist(tmp_path / "private", "secret", "1.0")
    vendor.add_file(sdist)
    primary.add_file(make_wheel(tmp_path / "public", "common", "1.0"))
    vendor.fail_always(f"*/{sdist.name}", Status(404))
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("secret==1.0\ncommon\n")
    main(
        ["plan", "-r", str(reqs), "-o", str(tmp_path / "m.json"),
         "--index-url", primary.simple_url, "--index", f"vendor={vendor.simple_url}",
         "--project-index", "secret=vendor", *TARGET]
    )  # fmt: skip
    assert vendor.requests_matching(f"*/{sdist.name}"), "the sdist was never read on its index"
    assert not [r for r in primary.requests if "secret" in r.path]
