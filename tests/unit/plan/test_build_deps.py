"""Build requirements: reading sdists' pyproject.toml, and the build closure's fixed point."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Callable

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from pypidl.manifest import Problem
from pypidl.plan.build_deps import (
    WHY_BUILD,
    WHY_DEPENDENCY,
    WHY_REQUIREMENT,
    complete_build_closure,
    why_of,
)
from pypidl.plan.closure import resolve_closure
from pypidl.plan.pages import RemoteFile
from pypidl.plan.sdists import (
    DEFAULT_BUILD_SYSTEM,
    BuildSystem,
    SdistReader,
    SdistReadError,
    parse_pyproject,
    parse_setup_cfg,
)
from pypidl.plan.targets import Target, parse_targets
from tests.lib.backends import make_flit_sdist, make_legacy_sdist, make_setuptools_sdist
from tests.lib.fake_index import FakeIndex
from tests.lib.server import Corrupt, Cut, Fault, IndexServer, ServedFile, Status

# -- pyproject.toml -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "requirements", "backend", "declared"),
    [
        (None, ("setuptools>=40.8.0", "wheel"), None, False),
        (b'[project]\nname = "x"\n', ("setuptools>=40.8.0", "wheel"), None, False),
        (b"[build-system]\n", ("setuptools>=40.8.0", "wheel"), None, False),
        (
            b'[build-system]\nrequires = ["setuptools>=61"]\n',
            ("setuptools>=61", "wheel"),
            None,
            True,
        ),
        (
            b'[build-system]\nrequires = ["setuptools>=61", "wheel>=0.40"]\n'
            b'build-backend = "setuptools.build_meta"\n',
            ("setuptools>=61", "wheel>=0.40"),
            "setuptools.build_meta",
            True,
        ),
        (
            b'[build-system]\nrequires = ["flit_core>=3.2,<4"]\n'
            b'build-backend = "flit_core.buildapi"\n',
            ("flit_core>=3.2,<4",),
            "flit_core.buildapi",
            True,
        ),
        (
            b'[build-system]\nrequires = []\nbuild-backend = "local"\nbackend-path = ["."]\n',
            (),
            "local",
            True,
        ),
    ],
)
def test_build_system_as_pip_and_uv_set_it_up(
    text: bytes | None, requirements: tuple[str, ...], backend: str | None, declared: bool
) -> None:
    system = parse_pyproject(text, filename="x-1.0.tar.gz")
    assert system.requirements() == requirements
    assert (system.backend, system.declared) == (backend, declared)


@pytest.mark.parametrize(
    "text",
    [
        b"[build-system\nrequires = []\n",
        b'[build-system]\nrequires = "setuptools"\n',
        b'[build-system]\nrequires = ["not a requirement!!"]\n',
        b"\xff\xfe",
    ],
)
def test_broken_pyproject_is_an_error_naming_the_sdist(text: bytes) -> None:
    with pytest.raises(SdistReadError) as caught:
        parse_pyproject(text, filename="x-1.0.tar.gz")
    assert caught.value.context == "x-1.0.tar.gz"


# -- setup.cfg -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"[options]\nsetup_requires = setuptools_scm>=6\n", ("setuptools_scm>=6",)),
        (b"[options]\nsetup_requires = cffi>=1.0; pytest-runner\n", ("cffi>=1.0", "pytest-runner")),
        (
            b"[options]\nsetup_requires =\n    cffi>=1.0\n    # a comment\n"
            b'    numpy; python_version >= "3.9"\n',
            ("cffi>=1.0", 'numpy; python_version >= "3.9"'),
        ),
        (b"[options]\nsetup_requires = not a requirement!!; cython\n", ("cython",)),
        (b"[options]\ninstall_requires = requests\n", ()),
        (b"[metadata]\nname = x\n", ()),
        (b"[options\nsetup_requires = cython\n", ()),
        (b"\xff\xfe", ()),
        (None, ()),
    ],
)
def test_setup_requires_as_setuptools_reads_them(
    text: bytes | None, expected: tuple[str, ...]
) -> None:
    assert parse_setup_cfg(text, filename="x-1.0.tar.gz") == expected


def test_setup_requires_join_the_build_of_a_setuptools_backend_only() -> None:
    legacy = BuildSystem(("setuptools>=40.8.0",), setup_requires=("setuptools_scm>=6",))
    assert legacy.requirements() == ("setuptools>=40.8.0", "wheel", "setuptools_scm>=6")
    flit = BuildSystem(("flit_core>=3.2",), "flit_core.buildapi", True, ("setuptools_scm>=6",))
    assert flit.requirements() == ("flit_core>=3.2",)
    assert BuildSystem.from_json(legacy.to_json()) == legacy


def test_setup_cfg_is_read_where_setuptools_builds_and_the_read_still_stops_early(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    srv = index_server()
    big = 3_000_000
    # setup.cfg comes after pyproject.toml; everything after it is left unread
    with_cfg = srv.add_file(
        make_setuptools_sdist(
            wheel_dir, "withcfg", "1.0", setup_requires="helper>=1", padding=("zz.bin", big)
        )
    )
    # no setup.cfg: the read stops at the first top-level name that sorts after it
    without = srv.add_file(
        make_setuptools_sdist(wheel_dir, "nocfg", "1.0", padding=("tests/big.bin", big))
    )
    # a legacy sdist (no pyproject.toml) is read whole anyway: its setup.cfg is found
    legacy = srv.add_file(
        make_setuptools_sdist(wheel_dir, "oldcfg", "1.0", setup_requires="helper", pyproject=False)
    )
    reader = SdistReader()
    try:
        system = reader.build_system(remote(with_cfg))
        assert system.setup_requires == ("helper>=1",)
        assert "helper>=1" in system.requirements()
        assert reader.stats.bytes < big // 2, "the read went on past setup.cfg"
        received = reader.stats.bytes
        assert reader.build_system(remote(without)).setup_requires == ()
        assert reader.stats.bytes - received < big // 2, "the read went on past setup.cfg's place"
        assert reader.build_system(remote(legacy)).requirements() == (
            "setuptools>=40.8.0",
            "wheel",
            "helper",
        )
        assert (reader.stats.partial, reader.stats.whole) == (2, 1)
    finally:
        reader.close()


# -- reading sdists -------------------------------------------------------------------------


def remote(served: ServedFile) -> RemoteFile:
    return RemoteFile(
        project=NormalizedName(served.project),
        filename=served.filename,
        url=served.url,
        version=served.version,
        kind="sdist",
        sha256=served.sha256,
        size=served.size,
    )


def test_reading_stops_at_pyproject_and_reads_legacy_sdists_whole(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    srv = index_server()
    flit = srv.add_file(make_flit_sdist(wheel_dir, "flitpkg", "1.0", padding=3_000_000))
    legacy = srv.add_file(make_legacy_sdist(wheel_dir, "legacypkg", "0.6.2"))
    reader = SdistReader(cache_dir=tmp_path / "cache")
    try:
        system = reader.build_system(remote(flit))
        assert system.requires == ("flit_core >=3.2,<5",)
        assert system.backend == "flit_core.buildapi"
        assert reader.stats.partial == 1
        assert reader.stats.bytes < flit.size // 2, "the read went on past pyproject.toml"
        assert reader.build_system(remote(legacy)) == DEFAULT_BUILD_SYSTEM
        assert reader.stats.whole == 1
        assert reader.stats.bytes >= legacy.size
        # once per reader, whoever asks
        assert reader.build_system(remote(flit)) == system
        assert len(srv.requests_matching("*/" + flit.filename)) == 1
    finally:
        reader.close()
    # and once per machine: the cache answers a new reader without a request
    srv.clear_requests()
    again = SdistReader(cache_dir=tmp_path / "cache")
    try:
        assert again.build_system(remote(flit)) == system
        assert again.build_system(remote(legacy)) == DEFAULT_BUILD_SYSTEM
        assert again.stats.cached == 2
        assert srv.requests == []
    finally:
        again.close()


def test_local_sdists_are_read_in_place(wheel_dir: Path) -> None:
    path = make_flit_sdist(wheel_dir, "flitpkg", "1.0")
    rf = RemoteFile(
        project=NormalizedName("flitpkg"),
        filename=path.name,
        url=path.as_uri(),
        version="1.0",
        kind="sdist",
        sha256=None,
    )
    assert SdistReader().build_system(rf).backend == "flit_core.buildapi"


def test_an_unreachable_sdist_is_a_read_error(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    srv = index_server()
    served = srv.add_file(make_legacy_sdist(wheel_dir, "gone", "1.0"))
    srv.remove_file(served.filename)
    with pytest.raises(SdistReadError, match=r"gone-1\.0\.tar\.gz"):
        SdistReader().build_system(remote(served))


@pytest.mark.parametrize("fault", [Status(404), Corrupt(), Cut(100)], ids=["404", "corrupt", "cut"])
def test_a_failing_mirror_hands_over_to_the_next(
    index_server: Callable[..., IndexServer], wheel_dir: Path, fault: Fault
) -> None:
    """The read of a legacy sdist reaches the end, so its sha256 is checked: a corrupt body is
    caught like a 404 or a cut connection, and the next mirror's copy is read."""
    first, second = index_server(), index_server()
    path = make_legacy_sdist(wheel_dir, "legacypkg", "0.6.2")
    served = first.add_file(path)
    second.add_file(path)
    first.fail_always("*/" + served.filename, fault)
    reader = SdistReader(mirror_urls=lambda rf: [second.file_url(rf.filename)])
    try:
        assert reader.build_system(remote(served)) == DEFAULT_BUILD_SYSTEM
    finally:
        reader.close()
    assert first.requests_matching("*/" + served.filename)
    assert len(second.requests_matching("*/" + served.filename)) == 1
    # with no other mirror, the failure is the answer
    alone = SdistReader()
    try:
        with pytest.raises(SdistReadError, match=r"legacypkg-0\.6\.2\.tar\.gz"):
            alone.build_system(remote(served))
    finally:
        alone.close()


# -- the closure ----------------------------------------------------------------------------


class BuildIndex(FakeIndex):
    """An in-memory index with a build system per sdist."""

    def __init__(self) -> None:
        super().__init__()
        self.systems: dict[str, BuildSystem | SdistReadError] = {}
        self.read: list[str] = []

    def add(  # type: ignore[override]
        self,
        name: str,
        version: str,
        *,
        deps: Sequence[str] = (),
        tags: Sequence[str] = ("py3-none-any",),
        sdist: BuildSystem | SdistReadError | None = None,
        requires_python: str | None = None,
    ) -> None:
        """Wheels for ``tags``, and an sdist built with ``sdist`` when it is given."""
        super().add(name, version, deps=deps, tags=tags, requires_python=requires_python)
        if sdist is not None:
            super().add(name, version, deps=deps, sdist=True, requires_python=requires_python)
            self.systems[f"{canonicalize_name(name).replace('-', '_')}-{version}.tar.gz"] = sdist

    def release_files(self, name: NormalizedName, version: str) -> list[RemoteFile]:
        return [f for f in self.files.get(name, []) if f.version == version]

    def build_system(self, rf: RemoteFile) -> BuildSystem:
        self.read.append(rf.filename)
        found = self.systems[rf.filename]
        if isinstance(found, SdistReadError):
            raise found
        return found

    def resolve(
        self,
        requirements: Sequence[Requirement],
        targets: Sequence[Target],
        preferred: Mapping[NormalizedName, str],
    ) -> tuple[Mapping[NormalizedName, Mapping[str, Iterable[str]]], Sequence[Problem]]:
        result = resolve_closure(
            requirements, targets, pages=self.page, metadata=self, preferred=preferred, workers=4
        )
        return result.versions, result.problems

    def closure(
        self, reqs: Sequence[str], targets: Sequence[Target]
    ) -> tuple[dict[NormalizedName, dict[str, frozenset[str]]], Sequence[Problem]]:
        runtime = resolve_closure(
            [Requirement(r) for r in reqs], targets, pages=self.page, metadata=self, workers=4
        )
        build = complete_build_closure(
            runtime.versions,
            targets=targets,
            release_files=self.release_files,
            reader=self,
            resolve=self.resolve,
            workers=4,
        )
        return build.versions, build.problems


FLIT = BuildSystem(("flit_core>=3.2,<4",), "flit_core.buildapi", declared=True)
SETUPTOOLS = BuildSystem(("setuptools>=61",), "setuptools.build_meta", declared=True)
LINUX = parse_targets(python_versions=["3.11"], platforms=["linux-x86_64"])
TWO = parse_targets(python_versions=["3.11"], platforms=["linux-x86_64", "win-amd64"])


def backends(index: BuildIndex) -> None:
    index.add("flit-core", "3.9")
    index.add("setuptools", "75.0")
    index.add("setuptools", "60.0")
    index.add("wheel", "0.45", deps=["packaging>=24"])
    index.add("packaging", "24.2")


def test_sdist_backends_and_their_dependencies_join_the_closure() -> None:
    index = BuildIndex()
    backends(index)
    index.add("app", "1.0", deps=["flitpkg", "old"], tags=(), sdist=FLIT)
    index.add("flitpkg", "1.0", tags=(), sdist=FLIT)
    index.add("old", "0.6.2", tags=(), sdist=DEFAULT_BUILD_SYSTEM)
    versions, problems = index.closure(["app"], LINUX)
    assert problems == ()
    label = LINUX[0].label
    assert versions == {
        "flit-core": {"3.9": frozenset({label})},
        "setuptools": {"75.0": frozenset({label})},
        "wheel": {"0.45": frozenset({label})},
        "packaging": {"24.2": frozenset({label})},
    }
    assert sorted(index.read) == ["app-1.0.tar.gz", "flitpkg-1.0.tar.gz", "old-0.6.2.tar.gz"]


def test_only_targets_without_a_wheel_build() -> None:
    index = BuildIndex()
    backends(index)
    # a wheel for Windows only: Linux builds the sdist, Windows does not
    index.add("native", "1.0", tags=("cp311-cp311-win_amd64",), sdist=SETUPTOOLS)
    versions, problems = index.closure(["native"], TWO)
    assert problems == ()
    linux = TWO[0].label
    assert versions["setuptools"] == {"75.0": frozenset({linux})}
    assert versions["wheel"] == {"0.45": frozenset({linux})}
    # nothing needs building when every target has a wheel
    index = BuildIndex()
    backends(index)
    index.add("pure", "1.0", sdist=SETUPTOOLS)
    assert index.closure(["pure"], TWO) == ({}, ())
    assert index.read == []


def test_a_backend_that_is_itself_only_an_sdist_gets_its_own_backend() -> None:
    index = BuildIndex()
    backends(index)
    hatch = BuildSystem(("hatchling",), "hatchling.build", declared=True)
    index.add("hatchling", "1.25", tags=(), sdist=FLIT)
    index.add("app", "1.0", tags=(), sdist=hatch)
    versions, problems = index.closure(["app"], LINUX)
    assert problems == ()
    assert set(versions) == {"hatchling", "flit-core"}


def test_build_cycles_end() -> None:
    index = BuildIndex()
    # setuptools available only as an sdist that needs setuptools (and wheel, which is a wheel)
    index.add("setuptools", "75.0", tags=(), sdist=SETUPTOOLS)
    index.add("wheel", "0.45")
    index.add("app", "1.0", tags=(), sdist=SETUPTOOLS)
    versions, problems = index.closure(["app"], LINUX)
    assert problems == ()
    assert set(versions) == {"setuptools", "wheel"}
    assert sorted(index.read) == ["app-1.0.tar.gz", "setuptools-75.0.tar.gz"]


def test_each_build_environment_is_resolved_on_its_own() -> None:
    index = BuildIndex()
    backends(index)
    old = BuildSystem(("setuptools<61",), "setuptools.build_meta", declared=True)
    index.add("a", "1.0", tags=(), sdist=old)
    index.add("b", "1.0", tags=(), sdist=SETUPTOOLS)
    versions, problems = index.closure(["a", "b"], LINUX)
    assert problems == ()
    assert set(versions["setuptools"]) == {"60.0", "75.0"}


def test_a_missing_backend_names_the_sdist_and_the_target() -> None:
    index = BuildIndex()
    backends(index)
    index.add("app", "1.0", tags=(), sdist=BuildSystem(("maturin>=1",), "maturin", True))
    _versions, problems = index.closure(["app"], LINUX)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.is_error
    assert problem.project == "maturin"
    assert problem.target == LINUX[0].label
    assert "building app-1.0.tar.gz needs maturin>=1" in problem.reason


def test_an_unreadable_sdist_gets_the_defaults_and_a_warning() -> None:
    index = BuildIndex()
    backends(index)
    index.add("app", "1.0", tags=(), sdist=SdistReadError("connection reset"))
    versions, problems = index.closure(["app"], LINUX)
    assert set(versions) == {"setuptools", "wheel", "packaging"}
    assert [(p.project, p.severity) for p in problems] == [("app", "warning")]
    assert "connection reset" in problems[0].reason


def test_why_a_release_is_there() -> None:
    runtime = {NormalizedName("app"): {"1.0": ()}, NormalizedName("wheel"): {"0.45": ()}}
    build = {NormalizedName("wheel"): {"0.45": ()}, NormalizedName("setuptools"): {"75.0": ()}}

    def why(project: str, version: str) -> tuple[str, ...]:
        return why_of(project, version, requirements=["app"], runtime=runtime, build=build)

    assert why("app", "1.0") == (WHY_REQUIREMENT,)
    assert why("wheel", "0.45") == (WHY_DEPENDENCY, WHY_BUILD)
    assert why("setuptools", "75.0") == (WHY_BUILD,)
