"""OSV advisories, offline: malware never crosses, vulnerabilities are named (or refused), and
``pypidl audit`` finds the same inside the gap from the snapshot a bundle carried."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pypidl.cli import main
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]

#: beta 2.0 is malware; gamma 1.5 up to (not including) 2.1 is vulnerable
ADVISORIES: list[dict[str, Any]] = [
    {
        "id": "MAL-2025-101",
        "summary": "Malicious code in beta",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "Beta"}, "versions": ["2.0"]}],
    },
    {
        "id": "PYSEC-2025-7",
        "aliases": ["CVE-2025-0007", "GHSA-aaaa-bbbb-cccc"],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "gamma"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "1.5"}, {"fixed": "2.1"}]}
                ],
            }
        ],
    },
    {  # withdrawn: counts for nothing
        "id": "GHSA-wwww-xxxx-yyyy",
        "withdrawn": "2025-02-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "delta"}, "versions": ["1.0"]}],
    },
    {  # another ecosystem: ignored
        "id": "GHSA-zzzz-zzzz-zzzz",
        "affected": [{"package": {"ecosystem": "npm", "name": "delta"}, "versions": ["1.0"]}],
    },
]


@pytest.fixture
def osv_zip(tmp_path: Path) -> Path:
    path = tmp_path / "osv-pypi.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for advisory in ADVISORIES:
            archive.writestr(f"{advisory['id']}.json", json.dumps(advisory))
    return path


@pytest.fixture
def osv_dir(tmp_path: Path) -> Path:
    path = tmp_path / "osv"
    path.mkdir()
    for advisory in ADVISORIES:
        (path / f"{advisory['id']}.json").write_text(json.dumps(advisory), encoding="utf-8")
    return path


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    srv = index_server()
    for name, version in [("beta", "1.0"), ("beta", "2.0"), ("gamma", "1.0"), ("gamma", "2.0")]:
        srv.add_file(make_wheel(wheel_dir, name, version))
    srv.add_file(make_wheel(wheel_dir, "delta", "1.0"))
    return srv


def _sync(index: IndexServer, tmp_path: Path, *extra: str) -> int:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("beta\ngamma\ndelta\n", encoding="utf-8")
    return main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir",
         str(tmp_path / "mirror"), "--build-index", "--report", str(tmp_path / "report.json"),
         *TARGET, *extra]
    )  # fmt: skip


def _held(mirror: Path) -> set[str]:
    return {p.name for p in mirror.glob("packages/*/*.whl")}


@pytest.mark.parametrize("source", ["zip", "dir"])
def test_malware_is_never_mirrored_and_vulnerable_releases_are_named(
    index: IndexServer,
    tmp_path: Path,
    osv_zip: Path,
    osv_dir: Path,
    source: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    where = osv_zip if source == "zip" else osv_dir
    assert _sync(index, tmp_path, "--advisories", str(where)) == 0
    assert _held(tmp_path / "mirror") == {
        "beta-1.0-py3-none-any.whl",  # 2.0 is malware: the resolver took 1.0
        "gamma-2.0-py3-none-any.whl",  # vulnerable, mirrored, named
        "delta-1.0-py3-none-any.whl",  # only a withdrawn and an npm advisory name it
    }
    out = capsys.readouterr().out
    assert "MAL-2025-101" in out
    assert "PYSEC-2025-7 (CVE-2025-0007, GHSA-aaaa-bbbb-cccc), fixed in 2.1" in out
    assert "GHSA-wwww" not in out
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    reasons = {p["project"]: p["reason"] for p in report["problems"]}
    assert "MAL-2025-101" in reasons["beta"]
    assert "fixed in 2.1" in reasons["gamma"]
    assert "delta" not in reasons


def test_refuse_vulnerable_makes_the_resolver_pick_an_unaffected_release(
    index: IndexServer, tmp_path: Path, osv_zip: Path
) -> None:
    assert _sync(index, tmp_path, "--advisories", str(osv_zip), "--refuse-vulnerable") == 0
    held = _held(tmp_path / "mirror")
    assert "gamma-1.0-py3-none-any.whl" in held
    assert "gamma-2.0-py3-none-any.whl" not in held


def test_refuse_vulnerable_needs_advisories_and_a_bad_source_is_bad_input(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sync(index, tmp_path, "--refuse-vulnerable") == 2
    (tmp_path / "not.zip").write_text("hello", encoding="utf-8")
    assert _sync(index, tmp_path, "--advisories", str(tmp_path / "not.zip")) == 2
    err = capsys.readouterr().err
    assert "not.zip" in err
    assert "Traceback" not in err


def test_audit_offline_and_inside_the_gap_from_a_bundled_snapshot(
    index: IndexServer, tmp_path: Path, osv_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror = tmp_path / "mirror"
    assert _sync(index, tmp_path) == 0  # no advisories at sync time: gamma 2.0 and beta 2.0
    audit_report = tmp_path / "audit.json"
    rc = main(["audit", str(mirror), "--advisories", str(osv_zip), "--report", str(audit_report)])
    assert rc == 1
    found = json.loads(audit_report.read_text(encoding="utf-8"))["findings"]
    by_release = {(f["project"], f["version"]): f for f in found}
    assert set(by_release) == {("beta", "2.0"), ("gamma", "2.0")}
    assert by_release[("beta", "2.0")]["kind"] == "malware"
    gamma = by_release[("gamma", "2.0")]["advisories"][0]
    assert gamma["aliases"] == ["CVE-2025-0007", "GHSA-aaaa-bbbb-cccc"]
    assert gamma["fixed"] == ["2.1"]
    # no snapshot and no --advisories: bad input, said in one line
    assert main(["audit", str(mirror)]) == 2
    # across the gap: the bundle carries the snapshot, the inside audits with no source given
    bundle = tmp_path / "b.tar"
    manifest = mirror / ".pypidl" / "manifest.json"
    assert main(["bundle", str(manifest), "--download-dir", str(mirror), "-o", str(bundle),
                 "--advisories", str(osv_zip)]) == 0  # fmt: skip
    inside = tmp_path / "inside"
    assert main(["import", str(bundle), "--into", str(inside)]) == 0
    capsys.readouterr()
    assert main(["audit", str(inside)]) == 1
    out = capsys.readouterr().out
    assert "MAL-2025-101" in out
    assert "PYSEC-2025-7" in out


def test_audit_report_is_written_through_a_fifo_and_never_replaces_a_link(
    index: IndexServer, tmp_path: Path, osv_zip: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """``audit --report`` goes through the writer every other output uses (issue 20)."""
    import os
    import threading

    mirror = tmp_path / "mirror"
    assert _sync(index, tmp_path) == 0
    audit = ["audit", str(mirror), "--advisories", str(osv_zip), "--report"]
    target = tmp_path / "elsewhere.json"
    target.write_text("kept\n", encoding="utf-8")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert main([*audit, str(link)]) == 2  # refused before any work
    assert link.is_symlink()
    assert target.read_text(encoding="utf-8") == "kept\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert main([*audit, str(fifo)]) == 1
    reader.join(30)
    assert fifo.is_fifo()
    assert json.loads(got[0])["schema"] == "pypidl-audit"
    capfdbinary.readouterr()
    assert main([*audit, "-"]) == 1  # standard output: the report alone, the table on stderr
    out, err = capfdbinary.readouterr()
    assert json.loads(out)["schema"] == "pypidl-audit"
    assert b"Audit" in err
