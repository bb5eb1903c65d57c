"""Manifest validation (every problem at once) and partition (the contract behind --shard)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pypidl import _shards as shards
from pypidl import manifest as m
from pypidl.errors import BadInputError, ManifestError


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_json(
    project: str = "demo", filename: str = "demo-1.0-py3-none-any.whl", **over: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "project": project,
        "version": "1.0",
        "filename": filename,
        "kind": "wheel",
        "sha256": sha(filename),
        "size": 10,
        "urls": [f"http://127.0.0.1:1/packages/{filename}"],
    }
    data.update(over)
    return data


def doc(*files: dict[str, Any], **over: Any) -> str:
    data: dict[str, Any] = {"schema": m.SCHEMA, "version": m.SCHEMA_VERSION, "files": list(files)}
    data.update(over)
    return json.dumps(data)


def entry(project: str, version: str, filename: str, size: int | None) -> m.Entry:
    return m.Entry(
        project=project,
        version=version,
        filename=filename,
        urls=(f"http://127.0.0.1:1/{filename}",),
        sha256=sha(filename),
        size=size,
    )


# --------------------------------------------------------------------------- round trip


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    e = m.Entry(
        project="demo",
        version="1.0",
        filename="demo-1.0.tar.gz",
        urls=("http://127.0.0.1:1/a", "http://127.0.0.1:2/a"),
        sha256=sha("x"),
        size=3,
        requires_python=">=3.8",
        yanked=True,
        yanked_reason="broken",
        kind="sdist",
        upload_time="2024-01-01T00:00:00Z",
        core_metadata_sha256=sha("meta"),
    )
    original = m.Manifest(
        entries=(e,),
        requirements=("demo",),
        index_urls=("http://127.0.0.1:1/simple/",),
        targets=("cp311-manylinux_x86_64",),
        all_versions=True,
        problems=(m.Problem(project="gone", reason="not found"),),
        projects={"demo": ("1.0",)},
    )
    path = tmp_path / "m.json"
    m.dump(original, path)
    assert m.load(path) == original


def test_entries_are_sorted_by_project_version_filename() -> None:
    man = m.Manifest(
        entries=(
            entry("b", "1.0", "b-1.0.tar.gz", 1),
            entry("a", "10.0", "a-10.0.tar.gz", 1),
            entry("a", "9.0", "a-9.0.tar.gz", 1),
        )
    )
    assert [e.filename for e in man.entries] == ["a-9.0.tar.gz", "a-10.0.tar.gz", "b-1.0.tar.gz"]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        (
            json.dumps({"schema": "something-else", "version": 1, "files": []}),
            "not a pypidl manifest",
        ),
        (json.dumps({"version": 1, "files": []}), "not a pypidl manifest"),
        (json.dumps({"schema": m.SCHEMA, "version": 99, "files": []}), "version 99"),
        (json.dumps({"schema": m.SCHEMA, "version": "1", "files": []}), "not supported"),
        (json.dumps({"schema": m.SCHEMA, "version": 1}), "'files'"),
    ],
)
def test_document_level_problems(text: str, needle: str) -> None:
    with pytest.raises(ManifestError) as info:
        m.loads(text, source="plan.json")
    assert needle in str(info.value)
    assert info.value.context == "plan.json"
    assert isinstance(info.value, BadInputError)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("missing", ["project", "version", "filename", "sha256", "urls"])
def test_missing_required_field(missing: str) -> None:
    data = file_json()
    del data[missing]
    with pytest.raises(ManifestError) as info:
        m.loads(doc(data))
    assert f"'{missing}'" in info.value.message


@pytest.mark.parametrize(
    "digest",
    ["abc", sha("x").upper(), sha("x")[:-1] + "g", sha("x") + "0", "sha256:" + sha("x"), 12],
)
def test_bad_sha256(digest: object) -> None:
    with pytest.raises(ManifestError) as info:
        m.loads(doc(file_json(sha256=digest)))
    assert "sha256" in info.value.message


@pytest.mark.parametrize(
    "filename",
    [
        "../evil.whl",
        "a/b.whl",
        "a\\b.whl",
        "C:x",
        "C:evil.whl",
        "..",
        ".hidden.whl",
        "",
        "x\x00.whl",
        "/abs.whl",
    ],
)
def test_unsafe_filenames_are_refused(filename: str) -> None:
    with pytest.raises(ManifestError) as info:
        m.loads(doc(file_json(filename=filename)))
    assert "not a safe file name" in info.value.message


@pytest.mark.parametrize("project", ["../up", "Not_Normal", "a/b"])
def test_unsafe_or_unnormalized_project(project: str) -> None:
    with pytest.raises(ManifestError) as info:
        m.loads(doc(file_json(project=project)))
    assert "project" in info.value.message


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("urls", [], "urls"),
        ("urls", ["ftp://127.0.0.1/x"], "urls"),
        ("size", -1, "negative"),
        ("size", "10", "'size'"),
        ("size", True, "'size'"),
        ("kind", "egg", "kind"),
        ("version", "not a version!", "version"),
        ("yanked", "yes", "yanked"),
        ("core_metadata_sha256", "nope", "core_metadata_sha256"),
    ],
)
def test_bad_field_values(field: str, value: object, needle: str) -> None:
    with pytest.raises(ManifestError) as info:
        m.loads(doc(file_json(**{field: value})))
    assert needle in info.value.message


def test_duplicate_files_are_refused() -> None:
    with pytest.raises(ManifestError) as info:
        m.loads(doc(file_json(), file_json()))
    assert "listed twice" in info.value.message


def test_every_problem_is_reported_at_once() -> None:
    text = doc(
        file_json(filename="../evil.whl"),
        file_json(filename="ok-1.0.tar.gz", sha256="bad"),
        {"project": "x"},
        "not an object",
    )
    with pytest.raises(ManifestError) as info:
        m.loads(text, source="many.json")
    problems = info.value.problems
    assert any("files[0]" in p and "../evil.whl" in p for p in problems)
    assert any("files[1]" in p and "sha256" in p for p in problems)
    assert any(p.startswith("files[2]") for p in problems)
    assert any(p.startswith("files[3]") for p in problems)
    assert len(problems) >= 5  # files[2] lacks several fields
    assert f"and {len(problems) - 1} more" in info.value.message


def test_load_reports_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest"):
        m.load(tmp_path / "absent.json")
    bad = tmp_path / "binary.json"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ManifestError):
        m.load(bad)


def test_relpath_is_the_mirror_layout() -> None:
    assert entry("demo", "1.0", "demo-1.0.tar.gz", 1).relpath == "packages/demo/demo-1.0.tar.gz"


# --------------------------------------------------------------------------- partition


def many_entries() -> list[m.Entry]:
    out = []
    sizes = [900, 500, 400, 300, 250, 200, 120, 100, 60, 30, 10, 5]
    for i, size in enumerate(sizes):
        project = f"p{i:02d}"
        # two files per project, so "whole projects" is something to check
        out.append(entry(project, "1.0", f"{project}-1.0.tar.gz", size))
        out.append(entry(project, "1.0", f"{project}-1.0-py3-none-any.whl", size))
    return out


@pytest.mark.parametrize("parts", [1, 2, 3, 5, 12, 20])
def test_partition_is_disjoint_complete_and_whole_projects(parts: int) -> None:
    entries = many_entries()
    groups = shards.partition(entries, parts)
    # the groups no project would reach are not made (12 projects)
    assert len(groups) == min(parts, len({e.project for e in entries}))
    assert all(groups)
    flat = [e for g in groups for e in g]
    assert sorted(flat, key=lambda e: e.filename) == sorted(entries, key=lambda e: e.filename)
    assert len(set(flat)) == len(flat) == len(entries)
    owner: dict[str, int] = {}
    for i, group in enumerate(groups):
        for e in group:
            assert owner.setdefault(e.project, i) == i, f"{e.project} split across groups"


def test_partition_is_deterministic_whatever_the_input_order() -> None:
    entries = many_entries()
    first = shards.partition(entries, 4)
    assert shards.partition(list(reversed(entries)), 4) == first
    assert shards.partition(entries, 4) == first


def test_partition_balances_bytes() -> None:
    groups = shards.partition(many_entries(), 3)
    loads = [sum(e.size or 0 for e in g) for g in groups]
    biggest_project = 2 * 900
    # greedy largest-first: no group exceeds the lightest by more than the largest project
    assert max(loads) - min(loads) <= biggest_project
    assert max(loads) < sum(loads) * 0.5


def test_partition_counts_unknown_sizes_and_rejects_zero_parts() -> None:
    entries = [entry(f"n{i}", "1.0", f"n{i}-1.0.tar.gz", None) for i in range(6)]
    groups = shards.partition(entries, 3)
    assert [len(g) for g in groups] == [2, 2, 2]
    with pytest.raises(ValueError, match="at least 1"):
        shards.partition(entries, 0)


# --------------------------------------------------------------------------- pins (issue 20)

VENDOR = "http://127.0.0.1:2/simple/"


def test_pins_round_trip_as_version_3_and_plans_without_pins_stay_version_2() -> None:
    pinned = m.Manifest(
        entries=(entry("demo", "1.0", "demo-1.0.tar.gz", 1),), pins={"demo": VENDOR}
    )
    data = json.loads(pinned.dumps())
    assert (data["version"], data["pins"]) == (m.PINNED_SCHEMA_VERSION, {"demo": VENDOR})
    assert m.loads(pinned.dumps()).pins == {"demo": VENDOR}
    plain = json.loads(m.Manifest(entries=()).dumps())
    assert plain["version"] == m.SCHEMA_VERSION
    assert "pins" not in plain


@pytest.mark.parametrize(
    ("pins", "needle"),
    [
        ([VENDOR], "expected an object"),
        ({"Not_Normal": VENDOR}, "not a normalized name"),
        ({"demo": "file:///srv/simple/"}, "http(s) URL"),
        ({"demo": "http://user:pw@127.0.0.1:2/simple/"}, "credentials"),
    ],
)
def test_malformed_pins_are_refused(pins: object, needle: str) -> None:
    with pytest.raises(ManifestError) as caught:
        m.loads(doc(file_json(), pins=pins, version=m.PINNED_SCHEMA_VERSION))
    assert needle in str(caught.value)


def test_merging_two_different_pins_of_a_project_is_refused() -> None:
    a = m.Manifest(entries=(), pins={"demo": VENDOR})
    b = m.Manifest(entries=(), pins={"demo": "http://127.0.0.1:3/simple/"})
    assert shards.merge_manifests([a, a]).pins == {"demo": VENDOR}
    with pytest.raises(BadInputError, match="two indexes"):
        shards.merge_manifests([a, b])
