"""Client configuration beside a built index: a ``pip.conf`` and a ``uv.toml`` (issue 17).

A client sees every release the mirror holds, for every target.  An sdist kept because one
target has no wheel of its release can tempt pip or uv on another machine into building (a
newer sdist-only release over an older one with a wheel).  The snippets point both clients at
the index and keep them on wheels:

* every project of which the mirror holds no sdist is wheels-only (pip ``only-binary``, uv
  ``no-build-package``); with no sdist at all in the mirror, everything is (``:all:`` / ``no-build``);
* for the projects the plan does build somewhere, pip prefers an older wheel to a newer sdist
  (``prefer-binary``), as the planner chose.

The index URL is the ``file:`` URL of ``simple/``; a mirror served over HTTP replaces it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pypidl._fs import atomic_write_text
from pypidl.store.catalog import Catalog

__all__ = ["PIP_CONF", "UV_TOML", "ClientConfig", "client_config", "write_client_config"]

PIP_CONF = "pip.conf"
UV_TOML = "uv.toml"


@dataclass(frozen=True)
class ClientConfig:
    index_url: str
    #: projects the mirror holds no sdist of (every project when ``everything`` is true)
    wheels_only: tuple[str, ...]
    #: projects the mirror holds an sdist of: some target builds them
    buildable: tuple[str, ...]

    @property
    def everything(self) -> bool:
        return not self.buildable

    def pip_conf(self) -> str:
        only = ":all:" if self.everything else ",".join(self.wheels_only) or ":none:"
        lines = [
            "# pip configuration for this mirror, written by pypidl (see docs/index.md):",
            "#   PIP_CONFIG_FILE=<this file> pip install PROJECT",
            "[global]",
            f"index-url = {self.index_url}",
            "",
            "[install]",
            "# wheels only, except for what the mirror keeps sdists of (a target builds them)",
            f"only-binary = {only}",
            "prefer-binary = true",
        ]
        if self.buildable:
            lines.insert(-2, f"# built from sdists on some machines: {', '.join(self.buildable)}")
        return "\n".join(lines) + "\n"

    def uv_toml(self) -> str:
        lines = [
            "# uv configuration for this mirror, written by pypidl (see docs/index.md):",
            "#   uv pip install --config-file <this file> PROJECT",
            "[[index]]",
            'name = "pypidl-mirror"',
            f"url = {json.dumps(self.index_url)}",
            "default = true",
            "",
            "[pip]",
        ]
        if self.everything:
            lines.append("no-build = true")
        else:
            lines.append(f"# built from sdists on some machines: {', '.join(self.buildable)}")
            lines.append(f"no-build-package = {json.dumps(list(self.wheels_only))}")
        return "\n".join(lines) + "\n"


def client_config(root: str | Path) -> ClientConfig:
    """The configuration for the mirror at ``root`` (from its catalog: what it holds)."""
    base = Path(root).resolve()
    catalog = Catalog(base)
    wheels_only, buildable = [], []
    for project in catalog.projects():
        records = catalog.load(project)
        if any(r.entry.kind == "sdist" for r in records.values()):
            buildable.append(project)
        elif records:
            wheels_only.append(project)
    return ClientConfig((base / "simple").as_uri() + "/", tuple(wheels_only), tuple(buildable))


def write_client_config(root: str | Path) -> tuple[Path, Path]:
    """Write ``pip.conf`` and ``uv.toml`` into the mirror at ``root``; return their paths."""
    config = client_config(root)
    pip_path, uv_path = Path(root) / PIP_CONF, Path(root) / UV_TOML
    atomic_write_text(pip_path, config.pip_conf())
    atomic_write_text(uv_path, config.uv_toml())
    return pip_path, uv_path
