"""A plan made again from the same inputs is not resolved again (issue 18).

What a plan of requirements chooses depends on the requirements, the targets, the options, the
indexes, and the project pages it read (a release's metadata and an sdist's ``[build-system]``
are named by the sha256 the page lists, so they follow from the pages).  :class:`PlanMemo` keeps
the manifest of a plan under a digest of everything but the pages, with the sha256 of every page
the plan read.  The next plan of the same inputs asks each of those pages again, conditionally
(:class:`pypidl.plan.page_store.PageStore`: an unchanged page is a ``304`` and is not parsed),
and when every page is the one the plan read, the manifest is the answer: nothing is resolved.
When a page changed, was added or is gone, the plan is made in full (from pages now current).

A plan with problems another run could see otherwise (an error: a project no index has, a
target left unsatisfied; or metadata or a build system that could not be read) is not kept: the
next run tries again (:func:`may_change`).  One whose only problems follow from the pages (an
sdist whose dependencies are known only after a build) is kept, with those warnings.  Entries are written with their own sha256 (:func:`pypidl._fs.write_checked`);
one that fails its check, or does not load as a manifest, is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pypidl import __version__
from pypidl import _json as untrusted_json
from pypidl._fs import read_checked, write_checked
from pypidl.errors import ManifestError, RemoteIndexError
from pypidl.manifest import Manifest, Problem, from_data
from pypidl.plan.build_deps import UNREADABLE_BUILD_SYSTEM
from pypidl.plan.closure import UNREADABLE_METADATA

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from pypidl.plan.pages import IndexClient
    from pypidl.plan.requirements import RequirementSet
    from pypidl.plan.targets import Target
    from pypidl.sources import Mirror

__all__ = ["PlanMemo", "inputs_digest", "may_change"]

log = logging.getLogger(__name__)


def inputs_digest(
    reqs: RequirementSet,
    *,
    targets: Sequence[Target],
    options: object,
    mirrors: Sequence[Mirror],
    routes: Mapping[str, Sequence[Mirror]],
) -> str:
    """sha256 of what a plan of ``reqs`` depends on, pages aside (and pypidl's version)."""
    parts: Any = [
        __version__,
        [(r.line(), r.hashes) for r in reqs.requirements],
        [(c.line(), c.hashes) for c in reqs.constraints],
        [repr(t) for t in targets],
        repr(options),
        [repr(m) for m in mirrors],
        sorted((name, [repr(m) for m in found]) for name, found in routes.items()),
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def may_change(problems: Iterable[Problem]) -> bool:
    """Whether another plan of the same inputs and pages could have other ``problems``: an
    error, or a warning about something that could not be read this time."""
    return any(
        p.is_error or p.reason.startswith((UNREADABLE_METADATA, UNREADABLE_BUILD_SYSTEM))
        for p in problems
    )


class PlanMemo:
    """Manifests by :func:`inputs_digest`, each with the pages it was planned from."""

    def __init__(self, directory: str | os.PathLike[str], key: str) -> None:
        self.path = Path(directory) / key[:2] / f"{key}.json"

    def recall(self, client: IndexClient, *, workers: int) -> Manifest | None:
        """The kept manifest when every page it was planned from is unchanged, else None."""
        data = read_checked(self.path)
        if data is None:
            return None
        try:
            entry = untrusted_json.loads(data)
            pages = entry["pages"]
            manifest = from_data(entry["manifest"], source=str(self.path))
        except (ValueError, KeyError, TypeError, ManifestError):
            return None
        if not isinstance(pages, dict) or not pages:
            return None

        def current(name: str) -> str | None:
            try:
                return client.digest(name)
            except RemoteIndexError:
                return None

        names = sorted(pages)
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
            now = dict(zip(names, pool.map(current, names)))
        changed = [name for name in names if now[name] != pages[name]]
        if changed:
            log.info(
                "%d of %d project page(s) changed since the last plan of these inputs (%s): "
                "planning again",
                len(changed),
                len(names),
                ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else ""),
            )
            return None
        log.info("No project page changed since the last plan of these inputs: reusing it")
        return replace(manifest, created="")  # stamped now

    def remember(self, pages: Mapping[str, str], manifest: Manifest) -> None:
        """Keep ``manifest``, planned from ``pages`` (project -> page sha256), unless one of its
        problems is an error.  A memo that cannot be written is skipped."""
        if any(p.is_error for p in manifest.problems) or not pages:
            return
        entry = {"pages": dict(pages), "manifest": manifest.to_json()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_checked(self.path, json.dumps(entry).encode())
        except OSError as exc:
            log.debug("could not keep the plan: %s", exc)
