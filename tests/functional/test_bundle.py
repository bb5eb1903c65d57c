"""Shards and merges of manifests, and the air-gap crossing: bundle outside, import inside, refuse tampering."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl import _shards as shards_mod
from pypidl import bundle as bundle_mod
from pypidl.cli import main
from pypidl.errors import BadInputError
from pypidl.manifest import Entry, Manifest, dump, load
from pypidl.store.adopt import adopt
from pypidl.store.catalog import Catalog
from pypidl.store.index_builder import build_index
from tests.lib.wheels import make_sdist, make_wheel

Members = list[tuple[tarfile.TarInfo, bytes]]


def to_entry(path: Path, project: str, version: str, base: str = "http://127.0.0.1:9") -> Entry:
    data = path.read_bytes()
    return Entry(
        project=project,
        version=version,
        filename=path.name,
        urls=(f"{base}/packages/{path.name}",),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        kind="sdist" if path.name.endswith(".tar.gz") else "wheel",
    )


def place(root: Path, path: Path, entry: Entry) -> None:
    """Put a verified file into the mirror at ``root`` the way the downloader does."""
    target = root / entry.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    Catalog(root).add(entry, target)


@pytest.fixture
def dists(wheel_dir: Path) -> dict[str, tuple[Path, Entry]]:
    built = {
        "alpha-1.0": (make_wheel(wheel_dir, "alpha", "1.0"), "alpha", "1.0"),
        "alpha-1.1": (make_wheel(wheel_dir, "alpha", "1.1"), "alpha", "1.1"),
        "beta-2.0": (
            make_wheel(wheel_dir, "beta", "2.0", extra_files={"beta/blob.bin": b"b" * 50_000}),
            "beta",
            "2.0",
        ),
        "gamma-0.1": (make_sdist(wheel_dir, "gamma", "0.1"), "gamma", "0.1"),
    }
    return {key: (p, to_entry(p, name, v)) for key, (p, name, v) in built.items()}


@pytest.fixture
def outside(tmp_path: Path, dists: dict[str, tuple[Path, Entry]]) -> Path:
    root = tmp_path / "outside"
    for path, entry in dists.values():
        place(root, path, entry)
    return root


def manifest_of(dists: dict[str, tuple[Path, Entry]], *keys: str) -> Manifest:
    entries = tuple(dists[k][1] for k in keys)
    projects: dict[str, tuple[str, ...]] = {}
    for e in entries:
        projects[e.project] = (*projects.get(e.project, ()), e.version)
    return Manifest(entries=entries, requirements=tuple(sorted(projects)), projects=projects)


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def final_files(root: Path) -> list[str]:
    packages = root / "packages"
    if not packages.exists():
        return []
    return sorted(
        p.name for p in packages.rglob("*") if p.is_file() and not p.name.endswith(".metadata")
    )


# --------------------------------------------------------------------------- shards


def test_parse_shard() -> None:
    assert shards_mod.parse_shard("2/5") == (2, 5)
    assert shards_mod.parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/3", "4/3", "1/0", "a/b", "1", "1/2/3", "-1/2", ""):
        with pytest.raises(BadInputError):
            shards_mod.parse_shard(bad)
    with pytest.raises(BadInputError):
        shards_mod.select_shard([], 3, 2)


def test_export_shards_are_disjoint_and_cover_the_manifest(
    tmp_path: Path, dists: dict[str, tuple[Path, Entry]], capsys: pytest.CaptureFixture[str]
) -> None:
    man = manifest_of(dists, *dists)
    path = tmp_path / "m.json"
    dump(man, path)
    n = 3
    shards: list[list[str]] = []
    for k in range(1, n + 1):
        out = tmp_path / f"shard{k}.txt"
        assert main(["export", str(path), "-f", "urls", "--shard", f"{k}/{n}", "-o", str(out)]) == 0
        shards.append(out.read_text().splitlines())
    flat = [u for s in shards for u in s]
    assert sorted(flat) == sorted(u for e in man.entries for u in e.urls)
    assert len(set(flat)) == len(flat)
    # whole projects: every project's URLs land in exactly one shard
    for project in ("alpha", "beta", "gamma"):
        assert sum(any(f"/{project}-" in u for u in s) for s in shards) == 1
    # the same selection every time (deterministic across hosts)
    assert shards_mod.select_shard(man.entries, 2, n) == shards_mod.select_shard(
        tuple(reversed(man.entries)), 2, n
    )
    assert main(["export", str(path), "-f", "urls", "--shard", "4/3"]) == 2
    capsys.readouterr()


# --------------------------------------------------------------------------- merge


def test_merge_unions_and_keeps_every_url(dists: dict[str, tuple[Path, Entry]]) -> None:
    a = manifest_of(dists, "alpha-1.0", "beta-2.0")
    other = dists["beta-2.0"][1]
    second_url = other.urls[0].replace(":9/", ":10/")
    b = Manifest(
        entries=(Entry(**{**other.__dict__, "urls": (second_url,)}), dists["gamma-0.1"][1]),
        requirements=("gamma",),
        targets=("cp311-win_amd64",),
        projects={"beta": ("2.0",), "gamma": ("0.1",)},
    )
    merged = shards_mod.merge_manifests([a, b])
    assert [e.filename for e in merged.entries] == sorted(
        [dists[k][1].filename for k in ("alpha-1.0", "beta-2.0", "gamma-0.1")]
    )
    beta = next(e for e in merged.entries if e.project == "beta")
    assert beta.urls == (other.urls[0], second_url)
    assert merged.requirements == ("alpha", "beta", "gamma")
    assert merged.targets == ("cp311-win_amd64",)
    assert merged.projects == {"alpha": ("1.0",), "beta": ("2.0",), "gamma": ("0.1",)}


def test_merge_refuses_conflicting_digests(
    tmp_path: Path, dists: dict[str, tuple[Path, Entry]]
) -> None:
    a = manifest_of(dists, "alpha-1.0")
    e = dists["alpha-1.0"][1]
    b = Manifest(entries=(Entry(**{**e.__dict__, "sha256": "0" * 64}),))
    with pytest.raises(BadInputError, match=e.filename):
        shards_mod.merge_manifests([a, b])
    dump(a, tmp_path / "a.json")
    dump(b, tmp_path / "b.json")
    out = tmp_path / "merged.json"
    assert main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(out)]) == 2
    assert not out.exists()
    dump(manifest_of(dists, "gamma-0.1"), tmp_path / "c.json")
    assert main(["merge", str(tmp_path / "a.json"), str(tmp_path / "c.json"), "-o", str(out)]) == 0
    assert {e.project for e in load(out).entries} == {"alpha", "gamma"}


# --------------------------------------------------------------------------- bundle / import


def test_bundle_import_round_trip_reproduces_the_index(
    tmp_path: Path, outside: Path, dists: dict[str, tuple[Path, Entry]]
) -> None:
    old = manifest_of(dists, "alpha-1.0", "beta-2.0")
    new = manifest_of(dists, *dists)
    dump(old, tmp_path / "old.json")
    dump(new, tmp_path / "new.json")
    inside = tmp_path / "inside"
    first, delta = tmp_path / "first.tar", tmp_path / "delta.tar"

    base = ["--download-dir", str(outside)]
    assert main(["bundle", str(tmp_path / "old.json"), "-o", str(first), *base]) == 0
    assert main(["import", str(first), "--into", str(inside)]) == 0
    assert main(["bundle", str(tmp_path / "new.json"), "--since", str(tmp_path / "old.json"),
                 "-o", str(delta), *base]) == 0  # fmt: skip

    with tarfile.open(delta) as tar:
        names = tar.getnames()
    assert names[:2] == [bundle_mod.BUNDLE_HEADER, bundle_mod.BUNDLE_MANIFEST]
    assert sorted(names[2:]) == sorted(dists[k][1].relpath for k in ("alpha-1.1", "gamma-0.1"))

    assert main(["import", str(delta), "--into", str(inside)]) == 0
    build_index(outside)
    assert (inside / "simple" / "gamma" / "index.html").is_file()
    assert tree(inside / "simple") == tree(outside / "simple")
    assert tree(inside / "packages") == tree(outside / "packages")
    assert {n: sorted(Catalog(inside).load(n)) for n in ("alpha", "beta", "gamma")} == {
        n: sorted(Catalog(outside).load(n)) for n in ("alpha", "beta", "gamma")
    }
    # importing the same bundle again adds nothing and changes nothing
    report = bundle_mod.import_bundle(delta, inside)
    assert report.added == ()
    assert len(report.present) == 2
    kept = list((inside / ".pypidl" / "imports").iterdir())
    assert kept
    assert all(p.name.startswith("manifest-") for p in kept)


def test_bundle_holds_only_the_delta(
    tmp_path: Path, outside: Path, dists: dict[str, tuple[Path, Entry]]
) -> None:
    new = manifest_of(dists, *dists)
    report = bundle_mod.bundle(new, outside, since=new, out=tmp_path / "empty.tar")
    assert report.files == ()
    assert report.unchanged == 4
    # an empty delta still imports cleanly (the inside mirror may not exist yet)
    imported = bundle_mod.import_bundle(report.path, tmp_path / "fresh")
    assert imported.added == ()
    assert imported.index is not None
    assert imported.index.files == 0
    # a changed sha256 for the same filename counts as new
    old = Manifest(entries=(Entry(**{**dists["beta-2.0"][1].__dict__, "sha256": "1" * 64}),))
    report = bundle_mod.bundle(new, outside, since=old, out=tmp_path / "d.tar")
    assert {e.project for e in report.files} == {"alpha", "beta", "gamma"}


def test_bundle_refuses_a_broken_outside_mirror(
    tmp_path: Path, outside: Path, dists: dict[str, tuple[Path, Entry]]
) -> None:
    man = manifest_of(dists, *dists)
    out = tmp_path / "x.tar"
    (outside / dists["gamma-0.1"][1].relpath).unlink()
    with pytest.raises(BadInputError, match="not in the mirror"):
        bundle_mod.bundle(man, outside, since=None, out=out)
    # same size, different bytes: caught while streaming, and no bundle is left behind
    man = manifest_of(dists, "alpha-1.0", "beta-2.0")
    victim = outside / dists["beta-2.0"][1].relpath
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="does not match the manifest"):
        bundle_mod.bundle(man, outside, since=None, out=out)
    assert not out.exists()
    assert list(tmp_path.glob(".pypidl-*")) == []


def _rewrite(src: Path, dst: Path, change: Callable[[Members], Members]) -> None:
    with tarfile.open(src) as tar:
        members: Members = []
        for info in tar.getmembers():
            fh = tar.extractfile(info)
            members.append((info, fh.read() if fh else b""))
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in change(members):
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _flip_last_file(members: Members) -> Members:
    info, data = members[-1]
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x01
    return [*members[:-1], (info, bytes(changed))]


def _extra_member(members: Members) -> Members:
    info = tarfile.TarInfo("packages/alpha/alpha-9.9-py3-none-any.whl")
    info.size = 3
    return [*members, (info, b"bad")]


def _traversal(members: Members) -> Members:
    info = tarfile.TarInfo("../evil.whl")
    info.size = 3
    return [*members, (info, b"bad")]


def _absolute(members: Members) -> Members:
    info = tarfile.TarInfo("/srv/evil.whl")
    info.size = 3
    return [*members, (info, b"bad")]


def _symlink_instead_of_file(members: Members) -> Members:
    info, _ = members[-1]
    link = tarfile.TarInfo(info.name)
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    return [*members[:-1], (link, b"")]


def _hardlink(members: Members) -> Members:
    link = tarfile.TarInfo("packages/alpha/evil.whl")
    link.type = tarfile.LNKTYPE
    link.linkname = members[-1][0].name
    return [*members, (link, b"")]


def _device(members: Members) -> Members:
    dev = tarfile.TarInfo("packages/alpha/dev")
    dev.type = tarfile.CHRTYPE
    return [*members, (dev, b"")]


def _duplicate(members: Members) -> Members:
    return [*members, members[-1]]


def _truncated_member(members: Members) -> Members:
    info, data = members[-1]
    short = tarfile.TarInfo(info.name)
    short.size = len(data) - 10
    return [*members[:-1], (short, data[:-10])]


def _forged_header(members: Members) -> Members:
    """Change a file's bytes and its digest in the header: the manifest still disagrees."""
    (hinfo, header), *rest = members
    info, data = _flip_last_file(members)[-1]
    doc = json.loads(header)
    doc["files"][-1]["sha256"] = hashlib.sha256(data).hexdigest()
    new_header = json.dumps(doc).encode()
    hinfo = tarfile.TarInfo(hinfo.name)
    hinfo.size = len(new_header)
    return [(hinfo, new_header), *rest[:-1], (info, data)]


def _header_not_first(members: Members) -> Members:
    return [members[1], members[0], *members[2:]]


def _header_lists_traversal(members: Members) -> Members:
    (hinfo, header), *rest = members
    doc = json.loads(header)
    doc["files"][-1]["relpath"] = "packages/../../evil.whl"
    new_header = json.dumps(doc).encode()
    hinfo = tarfile.TarInfo(hinfo.name)
    hinfo.size = len(new_header)
    return [(hinfo, new_header), *rest]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (_flip_last_file, "sha256 mismatch"),
        (_extra_member, "not listed in the bundle header"),
        (_traversal, "'..'"),
        (_absolute, "absolute"),
        (_symlink_instead_of_file, "symlink"),
        (_hardlink, "hard link"),
        (_device, "device"),
        (_duplicate, "more than once"),
        (_truncated_member, "the header says"),
        (_forged_header, "disagree"),
        (_header_not_first, "not a pypidl bundle"),
        (_header_lists_traversal, "relpath"),
    ],
)
def test_tampered_bundle_is_refused_and_writes_nothing(
    tmp_path: Path,
    outside: Path,
    dists: dict[str, tuple[Path, Entry]],
    change: Callable[[Members], Members],
    needle: str,
) -> None:
    good = tmp_path / "good.tar"
    bundle_mod.bundle(manifest_of(dists, *dists), outside, since=None, out=good)
    bad = tmp_path / "bad.tar"
    _rewrite(good, bad, change)
    inside = tmp_path / "inside"
    inside.mkdir()
    with pytest.raises(bundle_mod.BundleError) as info:
        bundle_mod.import_bundle(bad, inside)
    assert needle in str(info.value) or any(needle in p for p in info.value.problems)
    assert final_files(inside) == []
    assert not (inside / "simple").exists()
    assert Catalog(inside).projects() == []
    assert not (tmp_path / "evil.whl").exists()
    # the CLI says so in one line and exits 2
    assert main(["import", str(bad), "--into", str(inside), "-q"]) == 2


def test_not_a_tar_or_a_truncated_one_is_a_clear_error(
    tmp_path: Path, outside: Path, dists: dict[str, tuple[Path, Entry]]
) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file at all" * 30)
    with pytest.raises(bundle_mod.BundleError, match="cannot read bundle"):
        bundle_mod.import_bundle(junk, tmp_path / "inside")
    good = tmp_path / "good.tar"
    bundle_mod.bundle(manifest_of(dists, *dists), outside, since=None, out=good)
    data = good.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) - 30_000])
    with pytest.raises(bundle_mod.BundleError):
        bundle_mod.import_bundle(cut, tmp_path / "inside")
    assert final_files(tmp_path / "inside") == []


# --------------------------------------------------------------------------- adopt


def test_adopt_a_flat_directory_records_only_verified_files(
    tmp_path: Path, dists: dict[str, tuple[Path, Entry]]
) -> None:
    man = manifest_of(dists, *dists)
    flat = tmp_path / "downloads"
    flat.mkdir()
    for key in ("alpha-1.0", "beta-2.0", "gamma-0.1"):
        shutil.copy(dists[key][0], flat)
    bad = flat / dists["gamma-0.1"][0].name
    bad.write_bytes(bad.read_bytes() + b"junk")
    dump(man, tmp_path / "m.json")
    root = tmp_path / "mirror"
    code = main(["import", str(flat), "--into", str(root), "--manifest", str(tmp_path / "m.json")])
    assert code == 1  # one missing, one corrupt
    report = adopt(root, man, source=flat)
    assert {e.project for e in report.present} == {"alpha", "beta"}
    assert [e.version for e in report.missing] == ["1.1"]
    assert [e.project for e in report.mismatched] == ["gamma"]
    assert final_files(root) == sorted(dists[k][1].filename for k in ("alpha-1.0", "beta-2.0"))
    index = build_index(root)
    assert index.files == 2


def test_requirements_export_installs_with_require_hashes(
    tmp_path: Path,
    outside: Path,
    dists: dict[str, tuple[Path, Entry]],
    clean_env: dict[str, str],
) -> None:
    man = manifest_of(dists, "alpha-1.0", "alpha-1.1", "beta-2.0")
    dump(man, tmp_path / "m.json")
    req = tmp_path / "req.txt"
    assert main(["export", str(tmp_path / "m.json"), "-f", "requirements", "-o", str(req)]) == 0
    build_index(outside)
    out = tmp_path / "got"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "-r", str(req),
           "--index-url", (outside / "simple").as_uri() + "/", "-d", str(out)]  # fmt: skip
    result = subprocess.run(cmd, env=clean_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        dists[k][1].filename for k in ("alpha-1.1", "beta-2.0")
    )


def test_cli_usage_errors_and_stdout_export(
    tmp_path: Path, dists: dict[str, tuple[Path, Entry]], capsys: pytest.CaptureFixture[str]
) -> None:
    man = manifest_of(dists, "alpha-1.0")
    path = tmp_path / "m.json"
    dump(man, path)
    assert main(["export", str(path), "-f", "urls", "--all-urls"]) == 0
    assert capsys.readouterr().out == man.entries[0].urls[0] + "\n"
    assert main(["export", str(path), "-f", "aria2c", "--all-urls"]) == 2
    assert main(["import", str(tmp_path), "--into", str(tmp_path / "m")]) == 2  # no --manifest
    assert main(["import", str(tmp_path / "absent.tar"), "--into", str(tmp_path / "m")]) == 2
    path.write_text('{"schema": "pypidl-manifest", "version": 1, "files": [{"filename": "../x"}]}')
    assert main(["bundle", str(path), "-o", str(tmp_path / "b.tar")]) == 2
    assert not (tmp_path / "b.tar").exists()
    err = capsys.readouterr().err
    assert "--all-urls only applies" in err
    assert "--manifest" in err
    assert "../x" in err
