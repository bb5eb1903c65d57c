"""A hash-pinned requirements file: ``pip install --require-hashes -r`` installs only what the
manifest holds.

Every file of a pinned release gets a ``--hash`` option, including files for other platforms and
Pythons: pip checks the hash of the one file it picks, so listing them all lets the same file
serve every target the manifest was planned for.

pip accepts one pin per project.  When a manifest holds several versions of a project (several
targets chose differently, or ``--all-versions``), the newest is pinned and the others are
listed as comments; a warning names them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.version import Version

if TYPE_CHECKING:
    from pypidl.manifest import Entry, Manifest

__all__ = ["RequirementsExporter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequirementsExporter:
    """``name==version`` lines with every file's ``--hash=sha256:...`` as continuation lines."""

    name: str = "requirements"

    def render(self, manifest: Manifest, *, root: str = "") -> Iterator[str]:
        yield f"# pinned by {manifest.generator} from a manifest created {manifest.created}\n"
        yield "# install with: pip install --require-hashes -r <this file>\n"
        by_project = manifest.by_project()
        for project in sorted(set(by_project) | set(manifest.projects)):
            entries = by_project.get(project)
            if not entries:
                yield f"# {project}: no files in the manifest\n"
                continue
            versions: dict[str, list[Entry]] = {}
            for entry in entries:
                versions.setdefault(entry.version, []).append(entry)
            ordered = sorted(versions, key=Version, reverse=True)
            newest, older = ordered[0], ordered[1:]
            if older:
                log.warning(
                    "%s: pinned %s; also in the manifest but not pinned: %s",
                    project,
                    newest,
                    ", ".join(older),
                )
                for version in older:
                    yield f"# {project}=={version} is also in the manifest (pip takes one pin)\n"
            hashes = sorted({e.sha256 for e in versions[newest]})
            yield f"{project}=={newest} \\\n"
            for i, digest in enumerate(hashes):
                tail = " \\\n" if i < len(hashes) - 1 else "\n"
                yield f"    --hash=sha256:{digest}{tail}"
