"""Adoption: record files another tool (aria2c, wget, a copy) put into a mirror.

Each file is hashed against the manifest before the catalog records it; a file that does not
match is left where it was, unrecorded, and reported.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pypidl._fs import TEMP_PREFIX, safe_join
from pypidl.hashing import copy_hashing, hash_stream
from pypidl.manifest import Entry, Manifest
from pypidl.store import index_builder
from pypidl.store.catalog import Catalog

__all__ = ["AdoptReport", "adopt"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdoptReport:
    """What :func:`adopt` found for each file of the manifest."""

    added: tuple[Entry, ...] = ()
    present: tuple[Entry, ...] = ()
    missing: tuple[Entry, ...] = ()
    #: files whose bytes did not hash to the manifest's sha256 (left where they were, unrecorded)
    mismatched: tuple[Entry, ...] = ()
    index: Any = field(default=None, compare=False)
    #: files the mirror holds verified with other bytes, left alone (no ``force``)
    kept: tuple[Entry, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched and not self.kept


def adopt(
    root: str | os.PathLike[str],
    manifest: Manifest,
    *,
    source: str | os.PathLike[str] | None = None,
    build_index: bool = False,
    force: bool = False,
) -> AdoptReport:
    """Record in the catalog the files of ``manifest`` that another tool downloaded.

    With ``source`` None the files are expected in place (``<root>/packages/<project>/<file>``,
    as an aria2c export puts them).  With a ``source`` directory, each file is looked for at
    ``<source>/packages/<project>/<file>`` and then ``<source>/<file>`` (a flat wget directory)
    and copied into ``root`` through a temp file, hashing on the way.  Every file is hashed;
    only matching files are recorded.  Files the catalog already vouches for are not reread.

    A file already at its place with the right bytes is recorded without a copy; one the catalog
    verified with other bytes is kept (reported in ``kept``) unless ``force`` is given.
    """
    root = Path(root)
    catalog = Catalog(root)
    added: list[Entry] = []
    present: list[Entry] = []
    missing: list[Entry] = []
    mismatched: list[Entry] = []
    kept: list[Entry] = []
    same_place = source is None or Path(source).resolve() == root.resolve()
    for entry in manifest.entries:
        final = entry.path_in(root)
        if catalog.current(entry):
            present.append(entry)
            continue
        if same_place:
            found: Path | None = final if final.is_file() else None
        else:
            found = _find_in(Path(source), entry)  # type: ignore[arg-type]
        if found is None:
            missing.append(entry)
            continue
        if found == final:
            with open(final, "rb") as fh:
                digest, _ = hash_stream(fh)
            ok = digest == entry.sha256
        else:
            held = catalog.held(entry)
            if held.verified and held.sha256 != entry.sha256 and not force:
                log.warning(
                    "%s holds other bytes the mirror verified (sha256 %s); not replaced "
                    "without --force",
                    final,
                    held.sha256,
                )
                kept.append(entry)
                continue
            ok = held.sha256 == entry.sha256 or _copy_verified(found, final, entry)
        if ok:
            catalog.add(entry, final)
            added.append(entry)
        else:
            log.warning("%s does not hash to the manifest's sha256; not adopted", found)
            mismatched.append(entry)
    index = index_builder.build_index(root) if build_index else None
    return AdoptReport(
        tuple(added), tuple(present), tuple(missing), tuple(mismatched), index, tuple(kept)
    )


def _find_in(source: Path, entry: Entry) -> Path | None:
    for candidate in (
        entry.path_in(source),
        safe_join(source, entry.filename),
    ):
        if candidate.is_file():
            return candidate
    return None


def _copy_verified(src: Path, final: Path, entry: Entry) -> bool:
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{entry.filename}.", suffix=".part", dir=final.parent
    )
    tmp = Path(name)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            digest, _ = copy_hashing(fin, fout)
            fout.flush()
            os.fsync(fout.fileno())
        if digest != entry.sha256:
            tmp.unlink()
            return False
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True
