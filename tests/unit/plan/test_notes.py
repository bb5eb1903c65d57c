"""The plan's notes: releases only one end of a family needed, and the sdists targets build."""

from __future__ import annotations

from packaging.utils import NormalizedName, parse_wheel_filename

from pypidl.manifest import Manifest, Note, loads
from pypidl.plan.notes import build_detail, plan_notes
from pypidl.plan.pages import RemoteFile
from pypidl.plan.targets import parse_targets

TARGETS = parse_targets(
    python_versions=["3.8"], platforms=["linux-x86_64", "win-amd64"], spans=True
)
FLOOR, CEILING, WIN = (t.label for t in TARGETS)


def remote(filename: str) -> RemoteFile:
    project, version = filename.split("-")[:2]
    wheel = filename.endswith(".whl")
    return RemoteFile(
        project=NormalizedName(project),
        filename=filename,
        url=f"https://index.invalid/{filename}",
        version=version.removesuffix(".tar.gz"),
        kind="wheel" if wheel else "sdist",
        sha256="0" * 64,
        tags=parse_wheel_filename(filename)[3] if wheel else frozenset(),
    )


FILES = {
    ("zmq", "26.4"): [remote("zmq-26.4-cp38-cp38-manylinux_2_17_x86_64.whl")],
    ("zmq", "27.3"): [remote("zmq-27.3-cp38-cp38-manylinux_2_26_x86_64.whl")],
    ("winpty", "2.0.14"): [remote("winpty-2.0.14.tar.gz")],
}


def test_notes_name_one_end_releases_and_builds() -> None:
    notes = plan_notes(
        {
            NormalizedName("zmq"): {"26.4": {FLOOR}, "27.3": {CEILING}},
            NormalizedName("winpty"): {"2.0.14": {WIN}},
        },
        TARGETS,
        lambda name, version: FILES[(name, version)],
        build_requires={"winpty-2.0.14.tar.gz": ("maturin>=1.1.2,<2.0",)},
    )
    assert notes == (
        Note("build", "winpty", "2.0.14", (WIN,), "needs maturin>=1.1.2,<2.0: a Rust toolchain"),
        Note("floor-only", "zmq", "26.4", (FLOOR,)),
        Note("ceiling-only", "zmq", "27.3", (CEILING,)),
    )
    # they travel in the manifest, and a note this version cannot read is left out
    manifest = Manifest(entries=(), notes=notes)
    data = manifest.dumps().replace('"kind": "build"', '"kind": "someday"')
    assert loads(data).notes == notes[1:]


def test_build_detail_names_the_toolchain() -> None:
    assert build_detail(("setuptools>=40.8.0", "wheel")) == "needs setuptools>=40.8.0, wheel"
    assert build_detail(("scikit-build-core", "pybind11")).endswith(
        ": a C/C++ compiler and CMake or Meson; a C/C++ compiler"
    )
    assert build_detail(None) == "build requirements not read"
