"""The manifest's ``why`` (schema version 2), and version 1 manifests still loading."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pypidl import manifest as m
from pypidl._shards import merge_manifests
from pypidl.errors import ManifestError

SHA = "a" * 64


def entry(**facts: Any) -> dict[str, Any]:
    data = {
        "project": "beta",
        "version": "1.0",
        "filename": "beta-1.0-py3-none-any.whl",
        "sha256": SHA,
        "urls": ["http://127.0.0.1:9/beta-1.0-py3-none-any.whl"],
    }
    data.update(facts)
    return data


def text(version: int, *files: dict[str, Any]) -> str:
    return json.dumps({"schema": m.SCHEMA, "version": version, "files": list(files)})


def test_why_round_trips_in_version_2() -> None:
    plan = m.Manifest(
        entries=(
            m.Entry(**{**entry(), "urls": ("http://127.0.0.1:9/x",)}, why=("dependency", "build")),
        )
    )
    data = json.loads(plan.dumps())
    assert data["version"] == 2
    assert data["files"][0]["why"] == ["dependency", "build"]
    assert m.loads(plan.dumps()).entries[0].why == ("dependency", "build")


def test_version_1_manifests_still_load_without_why() -> None:
    loaded = m.loads(text(1, entry()))
    assert loaded.entries[0].why == ()
    assert loaded.entries[0].filename == "beta-1.0-py3-none-any.whl"


@pytest.mark.parametrize("why", [["runtime"], "build", [1]])
def test_an_unknown_why_is_refused(why: object) -> None:
    with pytest.raises(ManifestError) as caught:
        m.loads(text(2, entry(why=why)))
    assert "why" in str(caught.value) + " ".join(getattr(caught.value, "problems", []))


@pytest.mark.parametrize("version", [0, 4, True, "2"])
def test_unknown_versions_are_refused(version: object) -> None:
    with pytest.raises(ManifestError, match="not supported"):
        m.loads(json.dumps({"schema": m.SCHEMA, "version": version, "files": []}))


def test_merging_unions_the_reasons() -> None:
    a = m.loads(text(2, entry(why=["build"])))
    b = m.loads(text(2, entry(why=["requirement"])))
    assert merge_manifests([a, b]).entries[0].why == ("requirement", "build")
