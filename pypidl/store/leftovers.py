"""Temporary files a killed pypidl left in a mirror, and the lock that tells them from live ones.

Pages, sidecars and state files are written to a ``.pypidl-*.tmp`` file beside their final name
and renamed into place (:func:`pypidl._fs.atomic_write`).  A run killed between the two (kill -9,
a power cut) leaves the temporary file behind for good.  Two kinds are told apart:

* the index builder's, named :data:`INDEX_TEMP_PREFIX`: an index build holds the mirror's index
  lock while it writes them, so whoever holds that lock knows every other one is a leftover;
* everyone else's (a download's part record, a catalog rewrite): small files written in well
  under a second, so one older than :data:`STALE_AFTER` seconds is a leftover.

Download parts (``.pypidl-<file>.part``) are not leftovers: the next download resumes them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pypidl._fs import TEMP_PREFIX
from pypidl.manifest import PACKAGES_DIR
from pypidl.store.locks import ProjectLocks

__all__ = ["INDEX_TEMP_PREFIX", "STALE_AFTER", "IndexLock", "find_leftovers"]

#: How the index builder's temporary files start.
INDEX_TEMP_PREFIX = f"{TEMP_PREFIX}index-"
#: Age in seconds after which any other temporary file is taken for a leftover.
STALE_AFTER = 3600.0
#: The lock name an index build holds (no project name can start with a dot).
_INDEX_LOCK = ".index"
_SIMPLE_DIR = "simple"


class IndexLock:
    """The mirror's index lock, taken without waiting: ``with IndexLock(root) as held: ...``.

    ``held`` is False when another process is building the index right now.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self._locks = ProjectLocks(Path(root))
        self.held = False

    def __enter__(self) -> bool:
        try:
            self.held = self._locks.acquire(_INDEX_LOCK)
        except OSError:  # a read-only mirror: nobody writes an index there either
            self.held = False
        return self.held

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self._locks.release(_INDEX_LOCK)
        self._locks.close()


def find_leftovers(root: str | os.PathLike[str], *, index_lock_held: bool) -> list[Path]:
    """Temporary files under ``root``'s ``packages/`` and ``simple/`` that nobody will finish.

    :param index_lock_held: the caller holds :class:`IndexLock`, so index temporary files of any
        age are leftovers; otherwise only old ones are.
    """
    base = Path(root)
    now = time.time()
    found: list[Path] = []
    for top in (base / PACKAGES_DIR, base / _SIMPLE_DIR):
        for directory in (top, *_subdirectories(top)):
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                if not (name.startswith(TEMP_PREFIX) and name.endswith(".tmp")):
                    continue
                path = directory / name
                try:
                    st = path.lstat()
                except OSError:
                    continue
                mine = index_lock_held and name.startswith(INDEX_TEMP_PREFIX)
                if mine or now - st.st_mtime > STALE_AFTER:
                    found.append(path)
    return found


def _subdirectories(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []
