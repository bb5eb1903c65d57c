"""Resolver logic over an in-memory index (a fake page source and metadata source)."""

from __future__ import annotations

import time

import pytest
from packaging.utils import canonicalize_name

from pypidl.plan.closure import UNKNOWN_DEPENDENCIES
from pypidl.plan.targets import parse_targets
from tests.lib.fake_index import FakeIndex

T311 = parse_targets(python_versions=["3.11"], platforms=["linux-x86_64"])
T38_311 = parse_targets(python_versions=["3.8", "3.11"], platforms=["linux-x86_64"])


def test_dependency_cycle_resolves() -> None:
    idx = FakeIndex()
    idx.add("a", "1.0", deps=["b"])
    idx.add("b", "1.0", deps=["a>=1"])
    sel = idx.resolve(["a"], T311)
    assert set(sel.versions) == {"a", "b"}
    assert not sel.problems


def test_backtracks_over_a_conflict() -> None:
    idx = FakeIndex()
    idx.add("app", "2.0", deps=["lib<2", "other"])
    idx.add("lib", "1.0")
    idx.add("lib", "2.0")
    idx.add("other", "2.0", deps=["lib>=2"])
    idx.add("other", "1.0", deps=["lib>=1"])
    sel = idx.resolve(["app"], T311)
    assert not sel.problems
    assert set(sel.versions["lib"]) == {"1.0"}
    assert set(sel.versions["other"]) == {"1.0"}


def test_conflicting_user_requirements_are_named_and_parts_still_selected() -> None:
    idx = FakeIndex()
    idx.add("a", "1.0", deps=["lib==1.0"])
    idx.add("b", "1.0", deps=["lib==2.0"])
    idx.add("lib", "1.0")
    idx.add("lib", "2.0")
    sel = idx.resolve(["a", "b"], T311)
    assert {p.project for p in sel.problems} == {"lib"}
    assert all(p.target == "cp311-linux-x86_64" for p in sel.problems)
    assert any("conflicts with other requirements" in p.reason for p in sel.problems)
    # each requirement alone is installable, so the mirror still gets both sides
    assert set(sel.versions["lib"]) == {"1.0", "2.0"}


def test_metadata_requires_python_is_a_dependency_on_the_target_python() -> None:
    idx = FakeIndex()
    idx.add("lib", "2.0", requires_python=">=3.9", page_requires_python=False)
    idx.add("lib", "1.0")
    sel = idx.resolve(["lib"], T38_311)
    assert sel.versions["lib"] == {
        "1.0": frozenset({"cp38-linux-x86_64"}),
        "2.0": frozenset({"cp311-linux-x86_64"}),
    }


def test_pin_to_metadata_only_requires_python_names_the_target() -> None:
    idx = FakeIndex()
    idx.add("lib", "2.0", requires_python=">=3.9", page_requires_python=False)
    sel = idx.resolve(["lib==2.0"], T38_311)
    assert [p.target for p in sel.problems] == ["cp38-linux-x86_64"]
    assert "requires Python >=3.9" in sel.problems[0].reason
    assert "3.8.20" in sel.problems[0].reason


def test_no_matching_version_lists_what_exists() -> None:
    idx = FakeIndex()
    idx.add("lib", "1.0")
    sel = idx.resolve(["lib>=5"], T311)
    assert len(sel.problems) == 1
    assert "no version matches (available: 1.0)" in sel.problems[0].reason


def test_yanked_release_is_explained() -> None:
    idx = FakeIndex()
    idx.add("lib", "1.0", yanked=True)
    sel = idx.resolve(["lib>=1"], T311)
    assert "1.0 is yanked" in sel.problems[0].reason
    assert idx.resolve(["lib==1.0"], T311).versions["lib"] == {"1.0": frozenset({T311[0].label})}


def test_sdist_counts_as_installable_when_no_wheel_fits() -> None:
    idx = FakeIndex()
    idx.add("native", "1.0", tags=("cp311-cp311-win_amd64",))
    idx.add("native", "1.0", sdist=True)
    sel = idx.resolve(["native"], T311)
    assert sel.versions["native"] == {"1.0": frozenset({T311[0].label})}


def test_unknown_extra_and_invalid_marker_are_not_fatal() -> None:
    idx = FakeIndex()
    idx.add("app", "1.0", deps=['odd; platform_release >= "x"', 'ext; extra == "real"'])
    idx.add("ext", "1.0")
    idx.add("odd", "1.0")
    sel = idx.resolve(["app[nonexistent]"], T311)
    assert not sel.problems
    assert "ext" not in sel.versions


def test_direct_url_requirement_is_reported() -> None:
    idx = FakeIndex()
    sel = idx.resolve(["thing @ https://example.invalid/thing-1.0.tar.gz"], T311)
    assert sel.problems[0].project == "thing"
    assert "direct URL" in sel.problems[0].reason


def test_unknown_dependencies_only_for_selected_releases() -> None:
    idx = FakeIndex()
    idx.add("lib", "2.0", sdist=True, known=False)
    idx.add("lib", "1.0", sdist=True, known=False)
    sel = idx.resolve(["lib"], T38_311)
    assert [(p.project, p.requirement) for p in sel.problems] == [
        ("lib", "lib==2.0"),
        ("lib", "lib==2.0"),
    ]
    assert {p.target for p in sel.problems} == {t.label for t in T38_311}


def test_unreadable_metadata_is_a_problem_not_a_silent_gap() -> None:
    idx = FakeIndex()
    idx.add("lib", "1.0")
    del idx.meta[("lib", "1.0")]
    sel = idx.resolve(["lib"], T311)
    assert sel.versions["lib"] == {"1.0": frozenset({T311[0].label})}
    assert sel.problems[0].reason.startswith(f"{UNKNOWN_DEPENDENCIES}: metadata unreadable")


def test_forty_two_targets_over_thirty_projects_is_fast_and_fetches_once() -> None:
    idx = FakeIndex()
    names = [f"p{i:02d}" for i in range(30)]
    for i, name in enumerate(names):
        deps = [f"{names[j]}>=1" for j in (i + 1, i + 2) if j < len(names)]
        deps.append(f'{names[(i + 5) % 30]}; sys_platform == "win32"')
        deps.append(f'{names[(i + 7) % 30]}; python_version < "3.10"')
        for minor in range(5):
            idx.add(name, f"1.{minor}", deps=deps, tags=("py3-none-any",))
        idx.add(name, "2.0", deps=deps, requires_python=">=3.10")
    targets = parse_targets()
    started = time.monotonic()
    sel = idx.resolve([names[0]], targets, preferred=dict.fromkeys(names, "1.3"))
    elapsed = time.monotonic() - started
    assert not sel.problems
    assert set(sel.versions) == set(names)
    assert max(idx.page_calls.values()) == 1, "a page was fetched twice"
    assert max(idx.meta_calls.values()) == 1, "a release's metadata was read twice"
    assert set(sel.versions["p00"]) == {"1.3"}, "host pins are preferred on every target"
    assert elapsed < 15, f"42 targets x 30 projects took {elapsed:.1f}s"


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(None, {"1.0", "1.1", "2.0"}), (1, {"1.1", "2.0"}), (0, {"1.1"})],
)
def test_all_versions_limit(limit: int | None, expected: set[str]) -> None:
    idx = FakeIndex()
    idx.add("lib", "1.0")
    idx.add("lib", "1.1")
    idx.add("lib", "2.0")
    idx.add("lib", "3.0b1")
    sel = idx.resolve(["lib<2"], T311, all_versions=True, all_versions_limit=limit)
    assert set(sel.versions["lib"]) == expected
    assert sel.all_versions_added.get(canonicalize_name("lib"), frozenset()) == expected - {"1.1"}


def test_prereleases_do_not_stand_in_for_final_releases_that_conflict() -> None:
    # pip decides whether pre-releases count over every release, before it leaves out the ones
    # that failed: when the final releases all conflict, no pre-release is tried instead
    idx = FakeIndex()
    idx.add("app", "1.0", deps=["lib", "other"])
    idx.add("lib", "1.0", deps=["zzz>=2"])
    idx.add("lib", "2.0b1")
    idx.add("other", "1.0", deps=["zzz<2"])
    idx.add("zzz", "1.0")
    idx.add("zzz", "2.0")
    sel = idx.resolve(["app"], T311)
    assert "lib" not in sel.versions
    assert sel.problems
    assert ("lib", "2.0b1") not in idx.meta_calls


# ------------------------------------------------------------------------------ wheels first

WIN38 = parse_targets(python_versions=["3.8"], platforms=["win-amd64"])


def test_an_older_release_with_a_wheel_beats_a_newer_sdist_only_one() -> None:
    idx = FakeIndex()
    idx.add("winpty", "2.0.14", sdist=True)
    idx.add("winpty", "2.0.14", tags=("cp39-none-win_amd64",))
    idx.add("winpty", "2.0.13", tags=("cp38-none-win_amd64",))
    idx.add("winpty", "2.0.13", sdist=True)
    assert idx.resolve(["winpty"], WIN38).versions["winpty"] == {
        "2.0.13": frozenset({"cp38-win-amd64"})
    }
    newest = idx.resolve(["winpty"], WIN38, wheels_first=False)
    assert newest.versions["winpty"] == {"2.0.14": frozenset({"cp38-win-amd64"})}


def test_wheels_first_reaches_back_to_the_release_that_pulled_in_an_sdist() -> None:
    idx = FakeIndex()
    idx.add("arrow", "1.3", deps=['zoneinfo; python_version < "3.9"'])
    idx.add("arrow", "1.2", deps=["dateutil"])
    idx.add("zoneinfo", "0.2.1", sdist=True)
    idx.add("dateutil", "2.9")
    sel = idx.resolve(["arrow"], T38_311)
    assert sel.versions["arrow"] == {
        "1.2": frozenset({"cp38-linux-x86_64"}),
        "1.3": frozenset({"cp311-linux-x86_64"}),
    }
    assert "zoneinfo" not in sel.versions
    assert not sel.problems


def test_sdists_only_where_no_wheels_only_solution_exists() -> None:
    idx = FakeIndex()
    idx.add("app", "2.0", deps=["onlysdist", "lib"])
    idx.add("app", "1.0", deps=["onlysdist"])
    idx.add("onlysdist", "1.0", sdist=True)
    idx.add("lib", "2.0", sdist=True)
    idx.add("lib", "1.0")
    sel = idx.resolve(["app"], T311)
    # onlysdist must be built whatever app is; lib still comes from a wheel
    assert sel.versions == {
        "app": {"2.0": frozenset(T311_LABELS)},
        "onlysdist": {"1.0": frozenset(T311_LABELS)},
        "lib": {"1.0": frozenset(T311_LABELS)},
    }
    assert not sel.problems


T311_LABELS = {t.label for t in T311}


def test_a_failed_wheels_only_pass_is_shared_where_the_rest_differs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pypidl.plan import closure

    idx = FakeIndex()
    idx.add("app", "1.0", deps=["onlysdist"])
    idx.add("onlysdist", "1.0", sdist=True, deps=['x; python_version < "3.11"'])
    idx.add("x", "1.0")
    targets = parse_targets(python_versions=["3.10", "3.12", "3.13"], platforms=["linux-x86_64"])
    passes: list[str] = []
    real = closure._resolve_once

    def counted(provider, reqs, **kwargs):  # type: ignore[no-untyped-def]
        if provider.sdist_ok is not None:
            passes.append(provider.target.label)
        return real(provider, reqs, **kwargs)

    monkeypatch.setattr(closure, "_resolve_once", counted)
    shared = idx.resolve(["app"], targets)
    # 3.13 runs under its own preferences; 3.12's first pass fails as 3.10's would, so 3.10
    # takes it, though its second pass (x, by its marker) is its own
    assert passes.count("cp310-linux-x86_64") == 1
    assert passes.count("cp312-linux-x86_64") == 2
    passes.clear()
    alone = idx.resolve(["app"], targets, share=False)
    assert passes.count("cp310-linux-x86_64") == 2
    assert shared.versions == alone.versions
    assert shared.versions["x"] == {"1.0": frozenset({"cp310-linux-x86_64"})}
