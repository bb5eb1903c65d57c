"""cli/_common: the flags several commands share, turned into settings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pypidl.cli import build_parser
from pypidl.cli._common import (
    check_output_file,
    connection_from_args,
    network_from_args,
    positive_float,
    positive_int,
    prepare_download_dir,
    project_indexes_from_args,
    require_mirror,
    shard_from_args,
    targets_from_args,
)
from pypidl.cli._output import UI
from pypidl.config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_RETRIES
from pypidl.errors import BadInputError

A = "http://127.0.0.1:1/a/simple/"
B = "http://127.0.0.1:2/b/simple/"


def sync(*argv: str) -> argparse.Namespace:
    return build_parser("sync").parse_args(["sync", *argv])


def test_positive_numbers() -> None:
    assert (positive_int("3"), positive_float("0.5")) == (3, 0.5)
    for bad in ("0", "-1", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)
    for bad in ("0", "-0.1", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_float(bad)


def test_index_flags_come_first_and_keep_credentials_out_of_the_urls() -> None:
    extra = "http://127.0.0.1:3/extra/simple/"
    mirrors, net = network_from_args(
        sync("-i", A, "-i", B.replace("http://", "http://me:pw@")),
        file_index_url="http://127.0.0.1:9/ignored/",  # -i replaces the file's
        file_extra_index_urls=[extra, A],  # A is there already
    )
    assert [(m.name, m.simple_url) for m in mirrors] == [
        ("primary", A),
        ("index2", B),
        ("extra1", extra),
    ]
    assert net.credentials == (("127.0.0.1:2", "me", "pw"),)


def test_the_requirements_index_then_pips_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    mirrors, _ = network_from_args(sync(), file_index_url=A)
    assert [(m.name, m.simple_url) for m in mirrors] == [("primary", A)]
    monkeypatch.setenv("PIP_INDEX_URL", B)
    mirrors, _ = network_from_args(sync())
    assert [(m.name, m.simple_url) for m in mirrors] == [("default", B)]


def test_cn_puts_the_mirror_set_in_front(tmp_path: Path) -> None:
    sets = tmp_path / "mirrors.json"
    sets.write_text(json.dumps({"cn": [{"name": "near", "base": "http://127.0.0.1:5/near"}]}))
    mirrors, _ = network_from_args(sync("--cn", "--mirrors-file", str(sets), "-i", A))
    assert [m.simple_url for m in mirrors] == ["http://127.0.0.1:5/near/web/simple/", A]
    sets.write_text(json.dumps({"other": []}))
    with pytest.raises(BadInputError, match="no 'cn' set"):
        network_from_args(sync("--cn", "--mirrors-file", str(sets), "-i", A))


def test_an_index_url_pages_cannot_be_read_from_is_bad_input() -> None:
    with pytest.raises(BadInputError):
        network_from_args(sync("-i", "file:///srv/simple/"))


def test_connection_flags_and_their_defaults(tmp_path: Path) -> None:
    net = connection_from_args(sync(), tls=False)
    assert (net.connect_timeout, net.read_timeout, net.stall_timeout, net.retries) == (
        DEFAULT_CONNECT_TIMEOUT,
        DEFAULT_READ_TIMEOUT,
        DEFAULT_READ_TIMEOUT,  # --stall-timeout defaults to --timeout
        DEFAULT_RETRIES,
    )
    net = connection_from_args(sync("--timeout", "7", "--retries", "2"), tls=False)
    assert (net.read_timeout, net.stall_timeout, net.retries) == (7, 7, 2)
    assert connection_from_args(sync("--stall-timeout", "3"), tls=False).stall_timeout == 3
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not checked here\n")
    assert connection_from_args(sync("--cert", str(bundle)), tls=False).verify == str(bundle)
    with pytest.raises(BadInputError, match="CA bundle"):
        connection_from_args(sync("--cert", str(tmp_path / "missing.pem")))
    with pytest.raises(BadInputError, match="client certificate"):
        connection_from_args(sync("--client-cert", str(tmp_path / "missing.pem")))


def test_targets_from_flags_and_a_file_without_duplicates(tmp_path: Path) -> None:
    flags = ["--python-version", "3.11", "--platform", "win-amd64"]
    assert [t.label for t in targets_from_args(sync(*flags))] == ["cp311-win-amd64"]
    listed = tmp_path / "targets.txt"
    listed.write_text("python=3.11,3.12 platform=win-amd64  # the desktops\n")
    labels = [t.label for t in targets_from_args(sync("--targets-file", str(listed), *flags))]
    assert labels == ["cp311-win-amd64", "cp312-win-amd64"]
    # the file alone: no default targets added
    assert len(targets_from_args(sync("--targets-file", str(listed)))) == 2


def test_project_indexes_from_flags_and_requirements_files(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"# pypidl: index inside={B}\n# pypidl: project-index beta=inside\nbeta\n")
    routing = project_indexes_from_args(
        sync("--index", f"private={A}", "--project-index", "Alpha=private"), [str(reqs)]
    )
    assert dict(routing.pins) == {"alpha": "private", "beta": "inside"}
    assert {name: m.simple_url for name, m in routing.indexes.items()} == {
        "private": A,
        "inside": B,
    }
    with pytest.raises(BadInputError):
        project_indexes_from_args(sync("--project-index", "alpha=undeclared"))


def test_shard_values() -> None:
    ui = UI(verbose=0, quiet=True, stdout_taken=False)
    assert shard_from_args("2/3", ui) == (2, 3)
    for bad in ("0/3", "4/3", "x"):
        with pytest.raises(BadInputError):
            shard_from_args(bad, ui)
    ui.close()


def test_output_paths_and_download_directories(tmp_path: Path) -> None:
    check_output_file("-", what="manifest")
    check_output_file(str(tmp_path / "new" / "manifest.json"), what="manifest")
    with pytest.raises(BadInputError, match="manifest"):
        check_output_file(str(tmp_path), what="manifest")
    made = prepare_download_dir(str(tmp_path / "deep" / "mirror"))
    assert made.is_dir()
    assert list(made.iterdir()) == []  # the probe file is gone
    (tmp_path / "a-file").write_text("")
    with pytest.raises(BadInputError, match="is a file"):
        prepare_download_dir(str(tmp_path / "a-file"))


def test_require_mirror(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not a pypidl mirror"):
        require_mirror(str(tmp_path))
    (tmp_path / "packages").mkdir()
    require_mirror(str(tmp_path))
    require_mirror(str(tmp_path / "missing"))  # left to the command, which says so itself
