"""cli/transfer: export, merge, bundle and import, run on real files (no network)."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypidl.cli import build_parser, transfer
from pypidl.cli._output import UI
from pypidl.errors import EXIT_FAILED, EXIT_OK, BadInputError
from pypidl.manifest import Entry, Manifest, dump, load
from tests.lib.wheels import make_wheel

URL = "http://127.0.0.1:1/packages/"


@pytest.fixture
def ui() -> Iterator[UI]:
    ui = UI(verbose=0, quiet=True, stdout_taken=False)
    yield ui
    ui.close()


def args(*argv: str) -> argparse.Namespace:
    return build_parser(argv[0]).parse_args(list(argv))


def entry_of(path: Path, project: str, version: str, *, sha256: str | None = None) -> Entry:
    data = path.read_bytes()
    return Entry(
        project=project,
        version=version,
        filename=path.name,
        urls=(URL + path.name, "http://127.0.0.1:2/mirror/" + path.name),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


@pytest.fixture
def dists(tmp_path: Path) -> tuple[Path, Path]:
    """A directory of two downloaded wheels, and a manifest of them."""
    where = tmp_path / "downloaded"
    alpha = make_wheel(where, "alpha", "1.0")
    beta = make_wheel(where, "beta", "2.0")
    manifest = tmp_path / "manifest.json"
    dump(Manifest((entry_of(alpha, "alpha", "1.0"), entry_of(beta, "beta", "2.0"))), manifest)
    return where, manifest


def test_export_renders_each_format_and_refuses_options_of_another(
    dists: tuple[Path, Path], tmp_path: Path, ui: UI
) -> None:
    _, manifest = dists
    out = tmp_path / "urls.txt"
    assert transfer.run_export(args("export", str(manifest), "-f", "urls", "-o", str(out)), ui) == 0
    assert out.read_text().split() == [
        URL + "alpha-1.0-py3-none-any.whl",
        URL + "beta-2.0-py3-none-any.whl",
    ]
    every = args("export", str(manifest), "-f", "urls", "--all-urls", "-o", str(out))
    transfer.run_export(every, ui)
    assert len(out.read_text().split()) == 4
    with pytest.raises(BadInputError, match="--all-urls"):
        transfer.run_export(
            args("export", str(manifest), "-f", "aria2c", "--all-urls", "-o", str(out)), ui
        )
    with pytest.raises(BadInputError, match="--base-url"):
        transfer.run_export(
            args("export", str(manifest), "-f", "urls", "--base-url", URL, "-o", str(out)), ui
        )


def test_merge_is_the_union_and_refuses_two_digests_for_one_file(
    dists: tuple[Path, Path], tmp_path: Path, ui: UI
) -> None:
    where, manifest = dists
    gamma = make_wheel(where, "gamma", "3.0")
    other = tmp_path / "other.json"
    dump(Manifest((entry_of(gamma, "gamma", "3.0"),)), other)
    merged = tmp_path / "merged.json"
    assert transfer.run_merge(args("merge", str(manifest), str(other), "-o", str(merged)), ui) == 0
    assert [e.project for e in load(merged).entries] == ["alpha", "beta", "gamma"]
    alpha = where / "alpha-1.0-py3-none-any.whl"
    dump(Manifest((entry_of(alpha, "alpha", "1.0", sha256="0" * 64),)), other)
    with pytest.raises(BadInputError):
        transfer.run_merge(args("merge", str(manifest), str(other), "-o", str(merged)), ui)


def test_import_adopts_a_directory_then_bundle_and_import_carry_it_across(
    dists: tuple[Path, Path], tmp_path: Path, ui: UI
) -> None:
    where, manifest = dists
    outside, inside = tmp_path / "outside", tmp_path / "inside"
    adopt = args("import", str(where), "--into", str(outside), "--manifest", str(manifest))
    assert transfer.run_import(adopt, ui) == EXIT_OK
    assert (outside / "packages" / "alpha" / "alpha-1.0-py3-none-any.whl").is_file()
    assert (outside / "simple" / "alpha" / "index.html").is_file()
    tar = tmp_path / "delta.tar"
    bundle = args("bundle", str(manifest), "--download-dir", str(outside), "-o", str(tar))
    assert transfer.run_bundle(bundle, ui) == EXIT_OK
    assert transfer.run_import(args("import", str(tar), "--into", str(inside)), ui) == EXIT_OK
    for name in ("alpha/alpha-1.0-py3-none-any.whl", "beta/beta-2.0-py3-none-any.whl"):
        assert (inside / "packages" / name).read_bytes() == (
            outside / "packages" / name
        ).read_bytes()


def test_import_of_a_directory_with_a_wrong_file_fails_and_keeps_it_out(
    dists: tuple[Path, Path], tmp_path: Path, ui: UI
) -> None:
    where, manifest = dists
    (where / "beta-2.0-py3-none-any.whl").write_bytes(b"not the planned bytes")
    into = tmp_path / "mirror"
    adopt = args(
        "import", str(where), "--into", str(into), "--manifest", str(manifest), "--no-index"
    )
    assert transfer.run_import(adopt, ui) == EXIT_FAILED
    assert (into / "packages" / "alpha" / "alpha-1.0-py3-none-any.whl").is_file()
    assert not (into / "packages" / "beta" / "beta-2.0-py3-none-any.whl").exists()
    assert not (into / "simple").exists()


def test_import_refuses_what_it_cannot_read(
    dists: tuple[Path, Path], tmp_path: Path, ui: UI
) -> None:
    where, _ = dists
    with pytest.raises(BadInputError, match="--manifest"):
        transfer.run_import(args("import", str(where), "--into", str(tmp_path / "m")), ui)
    with pytest.raises(BadInputError, match="does not exist"):
        transfer.run_import(args("import", str(tmp_path / "none.tar"), "--into", str(tmp_path)), ui)
