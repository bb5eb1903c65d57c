"""A plain URL list, one per line, for wget, curl or any download manager."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pypidl.exporters._common import entry_urls

if TYPE_CHECKING:
    from pypidl.manifest import Manifest

__all__ = ["UrlsExporter"]


@dataclass(frozen=True)
class UrlsExporter:
    """One URL a line, in manifest order.

    :param all_urls: list every mirror's URL of each file, not only the best one (a file then
        appears several times; a download manager that keeps the first success is expected).
    """

    name: str = "urls"
    all_urls: bool = False

    def render(self, manifest: Manifest, *, root: str = "") -> Iterator[str]:
        for entry in manifest.entries:
            for url in entry_urls(entry.urls, first_only=not self.all_urls):
                yield url + "\n"
