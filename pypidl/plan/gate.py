"""What may cross the gap: the checks every project page passes before the planner sees it.

* cooldown (``--exclude-newer``): files uploaded after the cutoff (PEP 700 ``upload-time``) do
  not exist for the plan; a page without upload times is named, its files kept;
* project status (PEP 792): a quarantined project is refused; an archived or deprecated one is
  named;
* advisories (OSV): a release named by a malware advisory does not exist for the plan, nor, with
  ``refuse_vulnerable``, one with a known vulnerability; the vulnerable releases the plan keeps
  are named with their advisories (:meth:`Gate.vulnerable`).

The gate only removes files from pages; the resolver then picks among what is left, so an older
release wins where the newest is refused.  What it did is said through :meth:`Gate.notes`
(warnings for the manifest's problems) and :attr:`Gate.statuses`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pypidl._time import parse_iso_time
from pypidl.advisories import vulnerable_releases
from pypidl.errors import RemoteIndexError
from pypidl.manifest import Entry, Problem

if TYPE_CHECKING:
    from pypidl.advisories import Advisories, Advisory
    from pypidl.plan.page_fields import ProjectStatus
    from pypidl.plan.page_files import FileFacts, ProjectPage

__all__ = ["Gate", "GateOptions", "ProjectRefused"]

log = logging.getLogger(__name__)


class ProjectRefused(RemoteIndexError):
    """The index quarantined the project (PEP 792): nothing of it is mirrored."""


@dataclass(frozen=True)
class GateOptions:
    #: files uploaded after this moment (aware, UTC) do not exist for the plan
    exclude_newer: datetime | None = None
    advisories: Advisories | None = None
    #: releases with a known vulnerability do not exist for the plan either
    refuse_vulnerable: bool = False

    @property
    def active(self) -> bool:
        return self.exclude_newer is not None or self.advisories is not None


class Gate:
    """Apply :class:`GateOptions` to pages (thread-safe: pages arrive from many threads)."""

    def __init__(self, options: GateOptions = GateOptions()):
        self.options = options
        self._notes: dict[tuple[str, str], Problem] = {}
        #: project -> its PEP 792 status other than active, as its page said
        self.statuses: dict[str, ProjectStatus] = {}
        self._lock = threading.Lock()

    def apply(self, page: ProjectPage) -> ProjectPage | RemoteIndexError:
        """``page`` with the files that may not cross removed, or the error refusing it."""
        if page.status is not None:
            with self._lock:
                self.statuses[page.name] = page.status
            why = f": {page.status.reason}" if page.status.reason else ""
            if page.status.status == "quarantined":
                return ProjectRefused(
                    f"quarantined on its index (PEP 792){why}; refused, nothing of it is mirrored",
                    context=page.name,
                )
            self._note(page.name, f"{page.status.status} on its index (PEP 792){why}")
        files = page.entries
        if self.options.exclude_newer is not None:
            files = self._cooldown(page, files, self.options.exclude_newer)
        if self.options.advisories is not None:
            files = self._advised(page, files, self.options.advisories)
        return page if files is page.entries else page.keeping(files)

    def _cooldown(
        self, page: ProjectPage, files: tuple[FileFacts, ...], cutoff: datetime
    ) -> tuple[FileFacts, ...]:
        kept: list[FileFacts] = []
        untimed = newer = 0
        for rf in files:
            moment = parse_iso_time(rf.upload_time)
            if moment is None:
                untimed += 1
                kept.append(rf)
            elif moment <= cutoff:
                kept.append(rf)
            else:
                newer += 1
        if untimed:
            self._note(
                page.name,
                f"its index gives no upload time for {untimed} file(s): --exclude-newer "
                "cannot judge them, so they are kept",
            )
        if newer:
            log.info("%s: %d file(s) uploaded after the cutoff left out", page.name, newer)
        return files if not newer else tuple(kept)

    def _advised(
        self, page: ProjectPage, files: tuple[FileFacts, ...], advisories: Advisories
    ) -> tuple[FileFacts, ...]:
        refused: dict[str, list[Advisory]] = {}
        for version in sorted({rf.version for rf in files}):
            found = advisories.affecting(page.name, version)
            bad = [a for a in found if a.malicious or self.options.refuse_vulnerable]
            if bad:
                refused[version] = bad
        for version, bad in refused.items():
            kind = "malware" if bad[0].malicious else "vulnerable, --refuse-vulnerable"
            self._note(
                page.name,
                f"{version} never mirrored ({kind}): " + "; ".join(a.describe() for a in bad),
            )
        if not refused:
            return files
        return tuple(rf for rf in files if rf.version not in refused)

    def _note(self, project: str, reason: str) -> None:
        with self._lock:
            self._notes.setdefault((project, reason), Problem(project, reason, severity="warning"))

    def notes(self) -> list[Problem]:
        """Every warning so far, by project."""
        with self._lock:
            return [self._notes[k] for k in sorted(self._notes)]

    def vulnerable(self, entries: Iterable[Entry]) -> list[Problem]:
        """A warning per planned release with a known (not malware) vulnerability."""
        advisories = self.options.advisories
        if advisories is None:
            return []
        releases = sorted({(e.project, e.version) for e in entries})
        return vulnerable_releases(advisories, releases)
