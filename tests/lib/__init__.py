"""Test helpers for pypidl: a fault-injecting package index server and dist builders."""

from __future__ import annotations

from .server import (
    Corrupt,
    Cut,
    Delay,
    Drop,
    Fault,
    Headers,
    IndexServer,
    RequestRecord,
    ServedFile,
    Stall,
    Status,
)
from .wheels import (
    canonical_name,
    expand_tags,
    import_name,
    make_sdist,
    make_wheel,
    wheel_metadata,
)

__all__ = [
    "Corrupt",
    "Cut",
    "Delay",
    "Drop",
    "Fault",
    "Headers",
    "IndexServer",
    "RequestRecord",
    "ServedFile",
    "Stall",
    "Status",
    "canonical_name",
    "expand_tags",
    "import_name",
    "make_sdist",
    "make_wheel",
    "wheel_metadata",
]
