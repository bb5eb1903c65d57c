"""pypidl: build verified, installable Python package mirrors for air-gapped networks."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
