"""An aria2c input file (``aria2c --input-file``) that fills a pypidl mirror.

Each file becomes one line with every mirror URL separated by tabs (aria2c treats them as
sources of the same file and moves to the next when one fails), followed by indented option
lines.  ``dir=`` and ``out=`` follow the mirror layout (``<root>/packages/<project>/<file>``), so
the directory aria2c fills can be adopted, verified and indexed by pypidl; ``checksum=`` lets
aria2c check each file itself when run with ``--check-integrity=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pypidl.errors import BadInputError
from pypidl.exporters._common import entry_urls
from pypidl.manifest import PACKAGES_DIR

if TYPE_CHECKING:
    from pypidl.manifest import Manifest

__all__ = ["Aria2cExporter"]


@dataclass(frozen=True)
class Aria2cExporter:
    """aria2c input file; see ``docs/manifest.md`` for the command line to run it with."""

    name: str = "aria2c"

    def render(self, manifest: Manifest, *, root: str) -> Iterator[str]:
        base = _check_root(root)
        for entry in manifest.entries:
            yield "\t".join(entry_urls(entry.urls)) + "\n"
            yield f" dir={base}/{PACKAGES_DIR}/{entry.project}\n"
            yield f" out={entry.filename}\n"
            yield f" checksum=sha-256={entry.sha256}\n"


def _check_root(root: str) -> str:
    """``root`` without a trailing separator; refuse what would break aria2c's line format."""
    if not root or any(ord(ch) < 32 or ord(ch) == 127 for ch in root):
        raise BadInputError(f"download directory {root!r} is empty or has control characters")
    if root != root.strip():
        raise BadInputError(f"download directory {root!r} starts or ends with whitespace")
    return root.rstrip("/\\")  # "/" becomes "", so dir= reads "/packages/..."
