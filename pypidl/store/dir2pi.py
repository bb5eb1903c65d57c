"""The dir2pi index back end (pip2pi's, as the original tool used): a flat index of links.

It lacks what the default back end writes (hashes, Requires-Python, yanked flags, metadata
sidecars, JSON pages); ``docs/index.md`` shows what that costs pip and uv.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pypidl._fs import TEMP_PREFIX
from pypidl.errors import BadInputError, PypidlError
from pypidl.store.render import HTML_PAGE, SIMPLE_DIR

__all__ = ["require_pip2pi", "run_dir2pi"]


_DIR2PI_HINT = "install it with: pip install 'pypidl[dir2pi]'"


_PKG_RESOURCES_HINT = (
    "pip2pi imports pkg_resources, which setuptools 82 removed: pip install 'setuptools<82'"
)


#: Runs pip2pi's dir2pi with an explicit argv (its own entry point reads sys.argv whole).
_DIR2PI_MAIN = (
    "import sys; from libpip2pi.commands import dir2pi; sys.exit(dir2pi(['dir2pi', *sys.argv[1:]]))"
)


def require_pip2pi() -> None:
    """:raises BadInputError: pip2pi, or the pkg_resources module it imports, is missing."""
    if importlib.util.find_spec("libpip2pi") is None:
        raise BadInputError(
            "the dir2pi index backend needs pip2pi, which is not installed", hint=_DIR2PI_HINT
        )
    if importlib.util.find_spec("pkg_resources") is None:
        raise BadInputError(
            "pip2pi cannot run: the pkg_resources module is missing", hint=_PKG_RESOURCES_HINT
        )


def run_dir2pi(root: Path, files: Mapping[str, str]) -> tuple[int, list[str]]:
    """Build ``root/simple/`` with dir2pi over ``files`` (file name -> path in the mirror).

    :returns: the number of pages written and the projects the new index has.
    :raises BadInputError: pip2pi (or the pkg_resources it imports) is not installed.
    :raises PypidlError: dir2pi failed.
    """
    require_pip2pi()
    simple = root / SIMPLE_DIR
    where = {name: root / relpath for name, relpath in files.items()}
    where_rel = dict(files)

    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}dir2pi-", dir=root) as tmp:
        stage = Path(tmp) / "files"
        stage.mkdir()
        for filename, path in where.items():
            _link(path, stage / filename, str(path.resolve()))
        result = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", _DIR2PI_MAIN, "-n", str(stage)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            hint = _DIR2PI_HINT
            if "pkg_resources" in result.stderr:
                hint = _PKG_RESOURCES_HINT
            raise PypidlError(
                f"dir2pi failed (exit {result.returncode}): {detail}", context=str(root), hint=hint
            )
        built = stage / SIMPLE_DIR
        # dir2pi links each file as simple/<project>/<file> -> ../../<file> (the flat stage);
        # point those links at packages/<project>/<file> so the tree works once moved.
        pages = 0
        for project_dir in built.iterdir():
            if not project_dir.is_dir():
                continue
            for item in project_dir.iterdir():
                if item.name == HTML_PAGE:
                    pages += 1
                elif item.name in where:
                    item.unlink()
                    # relative to where the page will live: simple/<project>/
                    _link(where[item.name], item, os.path.join("..", "..", where_rel[item.name]))
        _swap(built, simple, root)

    return pages + 1, sorted(p.name for p in simple.iterdir() if p.is_dir())


def _link(target: Path, link: Path, source: str) -> None:
    """Make ``link`` a symlink to ``source`` (naming ``target``), else a hard link, else a copy."""
    try:
        link.symlink_to(source)
        return
    except OSError:
        pass  # no symlink privilege (Windows) or no support: fall through
    try:
        os.link(target, link)
    except OSError:
        shutil.copy2(target, link)


def _swap(new: Path, current: Path, root: Path) -> None:
    """Put the directory ``new`` in place of ``current`` with two renames."""
    old = root / f"{TEMP_PREFIX}simple-old"
    if old.exists():
        shutil.rmtree(old)
    if current.exists():
        current.replace(old)
    new.replace(current)
    if old.exists():
        shutil.rmtree(old)
