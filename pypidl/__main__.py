"""``python -m pypidl``."""

from __future__ import annotations

from pypidl.cli import entrypoint

if __name__ == "__main__":
    entrypoint()
