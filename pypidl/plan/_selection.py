"""What the planner selected, and the manifest entries of the files it keeps.

:class:`Picks` is the planner's running tally of project -> version -> target labels;
:func:`selected_entries` turns it into :class:`~pypidl.manifest.Entry` objects, one per file a
target that needs the release can install, each with every mirror's URL (best first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pypidl.manifest import Entry, Problem
from pypidl.plan.file_choice import choose_files
from pypidl.sources import derive_file_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from packaging.utils import NormalizedName

    from pypidl.plan.closure import ClosureResult
    from pypidl.plan.pages import ProjectPage, RemoteFile
    from pypidl.plan.requirements import RequirementSet
    from pypidl.plan.targets import Target
    from pypidl.sources import Mirror

__all__ = ["Picks", "entry_for", "hash_pins", "selected_entries"]


@dataclass
class Picks:
    """The planner's running tally: project -> version -> labels of the targets that need it.

    Every source of choices adds to it (the closure's :class:`ClosureResult`, ``--no-deps``,
    host pins, ``--all-versions``), and the file choice reads it.
    """

    versions: dict[NormalizedName, dict[str, set[str]]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: project -> versions only --all-versions selected (for the growth report)
    all_versions_added: dict[NormalizedName, set[str]] = field(default_factory=dict)

    def add(self, project: NormalizedName, version: str, labels: Iterable[str]) -> None:
        self.versions.setdefault(project, {}).setdefault(version, set()).update(labels)

    def absorb(self, result: ClosureResult) -> None:
        """Take everything the closure chose and every problem it found."""
        for name, versions in result.versions.items():
            for version, labels in versions.items():
                self.add(name, version, labels)
        self.problems.extend(result.problems)
        for name, added in result.all_versions_added.items():
            self.all_versions_added.setdefault(name, set()).update(added)


def selected_entries(
    selection: Picks,
    targets: Sequence[Target],
    *,
    page: Callable[[NormalizedName], ProjectPage | None],
    sdist: str,
    hash_pins: Mapping[str, tuple[str, frozenset[str]]],
    mirrors_for: Callable[[str], Sequence[Mirror]],
) -> list[Entry]:
    """The entries of every selected release; what cannot be kept goes to its problems.

    :param page: the project's page, or ``None`` when it could not be read (already reported)
    :param hash_pins: project -> (where, sha256 digests) from ``--hash`` options: pip with
        ``--require-hashes`` accepts only those files, so only those are worth mirroring.
    :param mirrors_for: the mirrors a project's files may come from, best first
    """
    by_label = {t.label: t for t in targets}
    entries: list[Entry] = []
    for name in sorted(selection.versions):
        project_page = page(name)
        if project_page is None:
            continue
        for version, labels in sorted(selection.versions[name].items()):
            needing = [by_label[label] for label in sorted(labels) if label in by_label]
            files = project_page.release_files(version)
            chosen = choose_files(files, needing, sdist=sdist)
            if name in hash_pins and chosen:
                where, allowed = hash_pins[name]
                kept = [f for f in chosen if f.sha256 in allowed]
                if not kept:
                    selection.problems.append(
                        Problem(
                            name,
                            f"no file of {name} {version} for these targets matches the "
                            f"--hash values at {where}",
                        )
                    )
                    continue
                chosen = kept
            if not chosen:
                selection.problems.append(
                    Problem(name, f"no file of {name} {version} fits any target", target=None)
                )
            for rf in chosen:
                if rf.sha256 is None:
                    selection.problems.append(
                        Problem(name, f"{rf.filename}: the index publishes no sha256; not mirrored")
                    )
                    continue
                entries.append(entry_for(rf, mirrors_for(rf.project)))
    return entries


def entry_for(rf: RemoteFile, mirrors: Iterable[Mirror]) -> Entry:
    """The manifest entry of ``rf``: its URL on every mirror that serves it, its own first."""
    urls: list[str] = []
    for mirror in mirrors:
        url = rf.url if mirror.name == rf.mirror else derive_file_url(rf.url, mirror)
        if url and url not in urls:
            urls.append(url)
    if rf.url not in urls:
        urls.insert(0, rf.url)
    assert rf.sha256 is not None  # noqa: S101 - checked by the caller
    return Entry(
        project=rf.project,
        version=rf.version,
        filename=rf.filename,
        urls=tuple(urls),
        sha256=rf.sha256,
        size=rf.size,
        requires_python=rf.requires_python,
        yanked=rf.yanked,
        yanked_reason=rf.yanked_reason,
        kind=rf.kind,
        upload_time=rf.upload_time,
        core_metadata_sha256=rf.core_metadata_sha256,
        provenance_url=rf.provenance_url,
    )


def hash_pins(reqs: RequirementSet) -> dict[str, tuple[str, frozenset[str]]]:
    """sha256 digests the requirements pin with ``--hash``, by project (other algorithms cannot
    be checked against what an index publishes, so they do not narrow the choice)."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    for r in reqs.requirements:
        digests = {h.split(":", 1)[1] for h in r.hashes if h.startswith("sha256:")}
        if digests:
            where, before = pins.get(r.name, (r.source, frozenset()))
            pins[r.name] = (where, before | digests)
    return pins
