"""OSV ranges and version lists, as :mod:`pypidl.advisories` reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pypidl.advisories import load_advisories


@pytest.fixture
def source(tmp_path: Path) -> str:
    docs = [
        {
            "id": "PYSEC-1",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "Some_Thing"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2"}]},
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "2.0"}, {"last_affected": "2.3"}],
                        },
                        {"type": "ECOSYSTEM", "events": [{"introduced": "3.0b1"}]},
                        {"type": "GIT", "events": [{"introduced": "abc"}]},
                    ],
                    "versions": ["1.5"],
                }
            ],
        },
        {
            "id": "MAL-9",
            "affected": [
                {"package": {"ecosystem": "PyPI", "name": "some.thing"}, "versions": ["2.2"]}
            ],
        },
        {"not": "an advisory"},
    ]
    for n, doc in enumerate(docs):
        (tmp_path / f"{n}.json").write_text(json.dumps(doc), encoding="utf-8")
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    return str(tmp_path)


@pytest.mark.parametrize(
    ("version", "ids"),
    [
        ("0.1", ["PYSEC-1"]),
        ("1.2", []),
        ("1.5", ["PYSEC-1"]),
        ("1.9", []),
        ("2.2", ["MAL-9", "PYSEC-1"]),
        ("2.3", ["PYSEC-1"]),
        ("2.4", []),
        ("3.0", ["PYSEC-1"]),
        ("not a version", []),
    ],
)
def test_ranges_versions_and_names(source: str, version: str, ids: list[str]) -> None:
    advisories = load_advisories(source)
    assert advisories.count == 2  # the third document and the broken file are not advisories
    assert [a.id for a in advisories.affecting("some-thing", version)] == ids


def test_fixed_versions_and_descriptions(source: str) -> None:
    found = load_advisories(source).affecting("some-thing", "2.2")
    assert found[0].describe() == "MAL-9, malware"
    assert found[1].describe() == "PYSEC-1, fixed in 1.2"


def test_a_version_too_long_to_compare_is_skipped_not_raised(tmp_path: Path) -> None:
    """5,000 digits are a valid version to packaging's pattern, but more than int() takes."""
    huge = "1" + "0" * 5000
    doc = {
        "id": "PYSEC-2",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "demo"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": huge}]},
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]},
                ],
            }
        ],
    }
    (tmp_path / "a.json").write_text(json.dumps(doc), encoding="utf-8")
    advisories = load_advisories(str(tmp_path))
    assert [a.id for a in advisories.affecting("demo", "1.0")] == ["PYSEC-2"]
    assert advisories.affecting("demo", "3.0") == []
    assert advisories.affecting("demo", huge) == []
