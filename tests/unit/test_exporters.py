"""Exporters render manifests for aria2c, URL-list tools and pip --require-hashes."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pypidl.errors import BadInputError
from pypidl.exporters import EXPORTERS, clean_url, get_exporter
from pypidl.manifest import Entry, Manifest


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry(project: str, version: str, filename: str, *urls: str) -> Entry:
    return Entry(
        project=project,
        version=version,
        filename=filename,
        urls=urls or (f"http://127.0.0.1:1/packages/{filename}",),
        sha256=sha(filename),
        size=100,
    )


A1 = "alpha-1.0-py3-none-any.whl"
A1_LINUX = "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
B2 = "beta-2.0.tar.gz"


@pytest.fixture
def manifest() -> Manifest:
    return Manifest(
        entries=(
            entry("beta", "2.0", B2),
            entry("alpha", "1.0", A1, "http://127.0.0.1:1/a/" + A1, "http://127.0.0.1:2/b/" + A1),
            entry("alpha", "1.0", A1_LINUX),
        ),
        projects={"alpha": ("1.0",), "beta": ("2.0",), "gamma": ("3.0",)},
    )


def render(name: str, manifest: Manifest, root: str = "mirror", **options: object) -> str:
    return "".join(get_exporter(name, **options).render(manifest, root=root))


def test_registry_names_every_format() -> None:
    assert set(EXPORTERS) == {"aria2c", "urls", "requirements", "pylock"}
    for name, exporter in EXPORTERS.items():
        assert exporter.name == name
        assert callable(exporter.render)


def test_unknown_format_and_option() -> None:
    with pytest.raises(BadInputError, match="unknown export format 'wget'") as info:
        get_exporter("wget")
    assert info.value.hint is not None
    assert "aria2c" in info.value.hint
    with pytest.raises(BadInputError, match="no option"):
        get_exporter("aria2c", all_urls=True)
    with pytest.raises(BadInputError, match="no option"):
        get_exporter("urls", name="other")


def test_aria2c_lines_follow_the_mirror_layout(manifest: Manifest) -> None:
    text = render("aria2c", manifest, root="/srv/pypi/")
    assert text == (
        f"http://127.0.0.1:1/packages/{A1_LINUX}\n"
        " dir=/srv/pypi/packages/alpha\n"
        f" out={A1_LINUX}\n"
        f" checksum=sha-256={sha(A1_LINUX)}\n"
        f"http://127.0.0.1:1/a/{A1}\thttp://127.0.0.1:2/b/{A1}\n"
        " dir=/srv/pypi/packages/alpha\n"
        f" out={A1}\n"
        f" checksum=sha-256={sha(A1)}\n"
        f"http://127.0.0.1:1/packages/{B2}\n"
        " dir=/srv/pypi/packages/beta\n"
        f" out={B2}\n"
        f" checksum=sha-256={sha(B2)}\n"
    )


def test_aria2c_relative_and_windows_roots(manifest: Manifest) -> None:
    assert " dir=./pypi/packages/beta\n" in render("aria2c", manifest, root="./pypi")
    assert " dir=D:\\mirror/packages/beta\n" in render("aria2c", manifest, root="D:\\mirror\\")


@pytest.mark.parametrize("root", ["", "a\nb", " pypi", "pypi\t"])
def test_aria2c_refuses_roots_that_break_the_format(manifest: Manifest, root: str) -> None:
    with pytest.raises(BadInputError):
        render("aria2c", manifest, root=root)


def test_urls_first_or_all(manifest: Manifest) -> None:
    assert render("urls", manifest).splitlines() == [
        f"http://127.0.0.1:1/packages/{A1_LINUX}",
        f"http://127.0.0.1:1/a/{A1}",
        f"http://127.0.0.1:1/packages/{B2}",
    ]
    every = render("urls", manifest, all_urls=True).splitlines()
    assert every[1:3] == [f"http://127.0.0.1:1/a/{A1}", f"http://127.0.0.1:2/b/{A1}"]
    assert len(every) == 4


def test_requirements_pins_with_every_hash(manifest: Manifest) -> None:
    text = render("requirements", manifest)
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    alpha_hashes = sorted([sha(A1), sha(A1_LINUX)])
    assert lines == [
        "alpha==1.0 \\",
        f"    --hash=sha256:{alpha_hashes[0]} \\",
        f"    --hash=sha256:{alpha_hashes[1]}",
        "beta==2.0 \\",
        f"    --hash=sha256:{sha(B2)}",
    ]
    assert "# gamma: no files in the manifest" in text


def test_requirements_pins_newest_of_several_versions(caplog: pytest.LogCaptureFixture) -> None:
    man = Manifest(
        entries=(
            entry("alpha", "1.0", "alpha-1.0.tar.gz"),
            entry("alpha", "1.10", "alpha-1.10.tar.gz"),
            entry("alpha", "1.9", "alpha-1.9.tar.gz"),
        )
    )
    with caplog.at_level(logging.WARNING):
        text = render("requirements", man)
    pins = re.findall(r"^(\S+==\S+) \\$", text, flags=re.MULTILINE)
    assert pins == ["alpha==1.10"]
    assert "# alpha==1.9 is also in the manifest" in text
    assert "# alpha==1.0 is also in the manifest" in text
    assert any("alpha" in r.getMessage() and "1.9" in r.getMessage() for r in caplog.records)


def test_no_export_carries_credentials(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-token"  # noqa: S105  # a fake credential that must not leak
    man = Manifest(entries=(entry("alpha", "1.0", A1, f"http://user:{secret}@127.0.0.1:1/x/{A1}"),))
    with caplog.at_level(logging.WARNING):
        for name in EXPORTERS:
            text = render(name, man)
            assert secret not in text
            assert "user" not in text
    assert f"http://127.0.0.1:1/x/{A1}" in render("urls", man)
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert clean_url(f"https://{secret}@127.0.0.1/p") == "https://127.0.0.1/p"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/a b.whl", "http://127.0.0.1/a\tb", "http://x/\n"]
)
def test_urls_that_would_break_lines_are_refused(url: str) -> None:
    with pytest.raises(BadInputError, match="whitespace"):
        clean_url(url)


def _every_export(*, backwards: bool) -> str:
    """Every format of one manifest whose entries, projects and versions are inserted forwards
    or backwards: several hashes per pin, several platforms per wheel set, several versions."""
    wheels = [
        "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "alpha-1.0-cp311-cp311-macosx_11_0_arm64.whl",
        "alpha-1.0-cp311-cp311-win_amd64.whl",
        "alpha-1.0-cp311-cp311-musllinux_1_2_aarch64.whl",
    ]
    entries = [entry("alpha", "1.0", w) for w in wheels]
    entries += [entry("beta", v, f"beta-{v}.tar.gz") for v in ("2.0", "10.0", "9.1")]
    entries.append(entry("gamma", "3.0", "gamma-3.0-py3-none-any.whl"))
    projects = {"alpha": ("1.0",), "beta": ("2.0", "10.0", "9.1"), "gamma": ("3.0",), "delta": ()}
    if backwards:
        entries.reverse()
        projects = {name: tuple(reversed(v)) for name, v in reversed(projects.items())}
    manifest = Manifest(entries=tuple(entries), projects=projects, created="2026-01-01T00:00:00Z")
    return "\f".join(render(name, manifest) for name in sorted(EXPORTERS))


def test_export_is_deterministic() -> None:
    """The same content, built in another order and rendered by another interpreter with
    another string hash seed (which reorders sets), exports to the same bytes."""
    script = (
        "import sys\n"
        "from tests.unit.test_exporters import _every_export\n"
        "sys.stdout.write(_every_export(backwards=sys.argv[1] == 'backwards'))\n"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = set()
    for order, seed in (("forwards", "1"), ("backwards", "2"), ("backwards", "3")):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script, order],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert outputs == {_every_export(backwards=False)}
