"""store/dir2pi: pip2pi's dir2pi run over the mirror's files, its links pointed at packages/."""

from __future__ import annotations

import os
from pathlib import Path

from pypidl.store.dir2pi import run_dir2pi
from tests.lib.wheels import make_sdist, make_wheel


def test_a_flat_index_whose_links_reach_the_mirrors_files(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    wheel = make_wheel(root / "packages" / "foo-bar", "foo-bar", "1.0")
    sdist = make_sdist(root / "packages" / "baz", "baz", "2.0")
    stale = root / "simple" / "gone"
    stale.mkdir(parents=True)
    (stale / "index.html").write_text("an index of an earlier run\n")
    files = {p.name: p.relative_to(root).as_posix() for p in (wheel, sdist)}

    pages, projects = run_dir2pi(root, files)

    assert (pages, projects) == (3, ["baz", "foo-bar"])  # the root page and one per project
    assert not stale.exists()  # the earlier index is replaced whole
    for path, project in ((wheel, "foo-bar"), (sdist, "baz")):
        link = root / "simple" / project / path.name
        assert link.read_bytes() == path.read_bytes()
        if link.is_symlink():  # else a hard link or a copy (no symlink privilege)
            assert os.readlink(link) == os.path.join("..", "..", "packages", project, path.name)
        assert path.name in (root / "simple" / project / "index.html").read_text()
    assert sorted(p.name for p in root.iterdir()) == ["packages", "simple"]  # no staging left
