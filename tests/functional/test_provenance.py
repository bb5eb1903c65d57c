"""PEP 740 provenance, verified offline before a file crosses, kept and served by the mirror.

The signed files and attestations are real: they ship in the pypi-attestations 0.0.30 sdist
(``scripts/test`` fetches it, pinned, like a test dependency).  A loopback index serves them with
a good provenance, a tampered file, a provenance naming another publisher, or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from tests.lib.server import IndexServer

pytest.importorskip("pypi_attestations", reason="the provenance extra (pypi-attestations)")

SDIST = Path(
    os.environ.get("PYPIDL_ATTESTATION_SDIST")
    or Path(__file__).parents[2] / ".venv/fixtures/pypi_attestations-0.0.30.tar.gz"
)
ASSETS = "pypi_attestations-0.0.30/test/assets/"
GCB = "gcb_attestation_test-0.0.0.tar.gz"
GITLAB = "gitlab_oidc_project-0.0.3.tar.gz"
GITLAB_PUBLISHER = {
    "kind": "GitLab",
    "repository": "facutuesca/gitlab-oidc-project",
    "workflow_filepath": ".gitlab-ci.yml",
}
TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SDIST.is_file():
        pytest.skip(f"{SDIST} is absent: run scripts/test, which fetches it (pinned)")
    out = tmp_path_factory.mktemp("attestation-assets")
    wanted = [GCB, GCB + ".provenance", GITLAB, GITLAB + ".publish.attestation"]
    with tarfile.open(SDIST) as tar:
        for name in wanted:
            member = tar.extractfile(ASSETS + name)
            assert member is not None
            (out / name).write_bytes(member.read())
    return out


def _gitlab_provenance(assets: Path, publisher: dict[str, str]) -> bytes:
    attestation = json.loads((assets / (GITLAB + ".publish.attestation")).read_bytes())
    doc = {"version": 1, "attestation_bundles": [
        {"publisher": publisher, "attestations": [attestation]}]}  # fmt: skip
    return json.dumps(doc).encode()


def _serve(
    srv: IndexServer, path: Path, provenance: bytes | None, data: bytes | None = None
) -> None:
    if data is not None:  # the tampered case: other bytes under the same name
        path = path.parent / "tampered" / path.name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    srv.add_file(path, metadata=False, provenance=provenance)


def _sync(srv: IndexServer, tmp_path: Path, reqs: str, *extra: str) -> int:
    path = tmp_path / "requirements.txt"
    path.write_text(reqs, encoding="utf-8")
    return main(
        ["sync", "-r", str(path), "--index-url", srv.simple_url, "--download-dir",
         str(tmp_path / "mirror"), "--build-index", "--no-deps", "--no-build-deps",
         "--report", str(tmp_path / "report.json"), *TARGET, *extra]
    )  # fmt: skip


def _checks(tmp_path: Path) -> dict[str, int]:
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    return dict(report["checks"])


@pytest.mark.parametrize("pages", ["json", "html"])
def test_verified_provenance_is_kept_and_served(
    index_server: Callable[..., IndexServer],
    assets: Path,
    tmp_path: Path,
    pages: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    srv = index_server(json=pages == "json")
    _serve(srv, assets / GCB, (assets / (GCB + ".provenance")).read_bytes())
    _serve(srv, assets / GITLAB, _gitlab_provenance(assets, GITLAB_PUBLISHER))
    assert _sync(srv, tmp_path, "gcb-attestation-test\ngitlab-oidc-project\n") == 0
    assert _checks(tmp_path)["provenance_verified"] == 2
    assert "2 verified, 0 absent, 0 refused" in capsys.readouterr().err
    mirror = tmp_path / "mirror"
    kept = mirror / "packages/gcb-attestation-test" / (GCB + ".provenance")
    assert kept.read_bytes() == (assets / (GCB + ".provenance")).read_bytes()
    page = json.loads((mirror / "simple/gcb-attestation-test/index.json").read_text("utf-8"))
    assert page["files"][0]["provenance"] == f"../../packages/gcb-attestation-test/{GCB}.provenance"
    html = (mirror / "simple/gitlab-oidc-project/index.html").read_text("utf-8")
    assert f'data-provenance="../../packages/gitlab-oidc-project/{GITLAB}.provenance"' in html
    # a client inside verifies again from what the mirror serves, offline
    import pypi_attestations as pa

    provenance = pa.Provenance.model_validate_json(kept.read_bytes())
    digest = hashlib.sha256((mirror / "packages/gcb-attestation-test" / GCB).read_bytes())
    dist = pa.Distribution(name=GCB, digest=digest.hexdigest())
    bundle = provenance.attestation_bundles[0]
    bundle.attestations[0].verify(bundle.publisher, dist, offline=True)
    # across the gap: a bundle carries the provenance, the inside index serves it again
    tar = tmp_path / "b.tar"
    manifest = str(mirror / ".pypidl/manifest.json")
    assert main(["bundle", manifest, "--download-dir", str(mirror), "-o", str(tar)]) == 0
    inside = tmp_path / "inside"
    assert main(["import", str(tar), "--into", str(inside)]) == 0
    assert (inside / "packages/gcb-attestation-test" / (GCB + ".provenance")).read_bytes() == (
        kept.read_bytes()
    )
    page = json.loads((inside / "simple/gitlab-oidc-project/index.json").read_text("utf-8"))
    assert page["files"][0]["provenance"].endswith(GITLAB + ".provenance")


@pytest.mark.parametrize("case", ["tampered", "other-publisher"])
def test_a_file_whose_provenance_fails_is_refused_and_the_rest_goes_on(
    index_server: Callable[..., IndexServer],
    assets: Path,
    tmp_path: Path,
    case: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    srv = index_server()
    _serve(srv, assets / GCB, (assets / (GCB + ".provenance")).read_bytes())
    if case == "tampered":
        data = (assets / GITLAB).read_bytes() + b"\0"
        _serve(srv, assets / GITLAB, _gitlab_provenance(assets, GITLAB_PUBLISHER), data)
    else:
        other = {**GITLAB_PUBLISHER, "repository": "someone-else/gitlab-oidc-project"}
        _serve(srv, assets / GITLAB, _gitlab_provenance(assets, other))
    assert _sync(srv, tmp_path, "gcb-attestation-test\ngitlab-oidc-project\n") == 1
    checks = _checks(tmp_path)
    assert (checks["provenance_verified"], checks["provenance_refused"]) == (1, 1)
    held = {p.name for p in (tmp_path / "mirror/packages").glob("*/*.tar.gz")}
    assert held == {GCB}
    out = capsys.readouterr()
    assert f"{GITLAB}: refused, its provenance" in out.out + out.err


def test_missing_provenance_is_counted_and_refused_only_where_required(
    index_server: Callable[..., IndexServer], assets: Path, tmp_path: Path
) -> None:
    srv = index_server()
    _serve(srv, assets / GCB, (assets / (GCB + ".provenance")).read_bytes())
    _serve(srv, assets / GITLAB, None)
    reqs = "gcb-attestation-test\ngitlab-oidc-project\n"
    assert _sync(srv, tmp_path, reqs) == 0
    assert _checks(tmp_path)["provenance_absent"] == 1
    assert _sync(srv, tmp_path, reqs, "--require-provenance", "gcb_attestation_test") == 0
    assert _sync(srv, tmp_path, reqs, "--require-provenance", "GitLab-OIDC-Project") == 1
    assert _checks(tmp_path)["provenance_refused"] == 1


def test_without_the_extra_provenance_is_kept_but_plainly_not_verified(
    index_server: Callable[..., IndexServer],
    assets: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a default install, without pypi-attestations (only its presence is faked)
    monkeypatch.setattr("pypidl.plan.provenance.verifier_available", lambda: False)
    srv = index_server()
    other = {**GITLAB_PUBLISHER, "repository": "someone-else/gitlab-oidc-project"}
    _serve(srv, assets / GITLAB, _gitlab_provenance(assets, other))
    assert _sync(srv, tmp_path, "gitlab-oidc-project\n") == 0
    assert _checks(tmp_path)["provenance_unverified"] == 1
    out = capsys.readouterr().out
    assert "NOT verified" in out
    assert "pypidl[provenance]" in out
    kept = tmp_path / "mirror/packages/gitlab-oidc-project" / (GITLAB + ".provenance")
    assert kept.is_file()


@pytest.mark.clients
@pytest.mark.timeout(300)
def test_pip_and_uv_install_from_a_mirror_serving_provenance(
    index_server: Callable[..., IndexServer],
    assets: Path,
    wheel_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_env: dict[str, str],
    venv_factory: Callable[[], Path],
) -> None:
    """Pages that carry PEP 740 provenance (``data-provenance``, the ``provenance`` key) are
    pages pip and uv still install from, over file:// (HTML) and HTTP (JSON)."""
    from tests.functional.test_gate import install, serving
    from tests.lib.wheels import make_wheel

    # a wheel can carry no real signature here: kept unverified, as a default install keeps it
    monkeypatch.setattr("pypidl.plan.provenance.verifier_available", lambda: False)
    srv = index_server()
    _serve(
        srv, make_wheel(wheel_dir, "alpha", "1.0"), (assets / (GCB + ".provenance")).read_bytes()
    )
    assert _sync(srv, tmp_path, "alpha\n") == 0
    mirror = tmp_path / "mirror"
    page = json.loads((mirror / "simple/alpha/index.json").read_text("utf-8"))
    assert page["files"][0]["provenance"].endswith(".provenance")
    assert "data-provenance=" in (mirror / "simple/alpha/index.html").read_text("utf-8")
    python = venv_factory()
    install(python, clean_env, mirror, "alpha")
    with serving(mirror) as url:
        install(python, clean_env, mirror, "--reinstall", "alpha", uv=True, url=url)
    assert list(python.parent.parent.glob("lib/python*/site-packages/alpha-1.0.dist-info"))
