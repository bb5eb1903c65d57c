"""``pypidl index DIR`` and ``pypidl serve DIR``: build the simple index, and serve it."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from pypidl.errors import EXIT_OK
from pypidl.store.index_builder import BACKENDS
from pypidl.store.render import SIMPLE_DIR

if TYPE_CHECKING:
    from pypidl.cli._output import UI

__all__ = ["register"]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 65535")
    return value


def register(sub: argparse._SubParsersAction, parents: SimpleNamespace) -> None:  # type: ignore[type-arg]
    """Add the ``index`` and ``serve`` commands to ``sub``."""
    from pypidl.store.serve import DEFAULT_BIND, DEFAULT_PORT

    index = sub.add_parser(
        "index",
        parents=[parents.output],
        help="build the PEP 503/691 simple index of a mirror from its catalog",
        description=(
            "Write DIR/simple/ (HTML and JSON pages, PEP 658 metadata files beside the wheels) "
            "for every file the mirror's catalog holds, across all earlier runs. Only changed "
            "pages are rewritten; files deleted from DIR/packages/ are dropped."
        ),
    )
    index.add_argument("directory", metavar="DIR", help="the mirror (the --download-dir of sync)")
    index.add_argument(
        "--index-backend",
        choices=BACKENDS,
        default="pypidl",
        help=(
            "index writer: pypidl (default: HTML + JSON + metadata files) or dir2pi (pip2pi's "
            "plain HTML, needs the 'dir2pi' extra; see docs/index.md for what it lacks)"
        ),
    )
    index.set_defaults(func=run_index)

    serve = sub.add_parser(
        "serve",
        parents=[parents.output],
        help="serve a mirror over HTTP with PEP 691 content negotiation (for quick use)",
        description=(
            "Serve DIR with a small threaded HTTP server: simple pages as JSON or HTML by the "
            "Accept header, files with their content types. Ctrl-C stops it. For production, "
            "use a real web server (docs/nginx.conf)."
        ),
    )
    serve.add_argument("directory", metavar="DIR", help="the mirror to serve")
    serve.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--bind",
        default=DEFAULT_BIND,
        metavar="ADDR",
        help=f"address to listen on (default {DEFAULT_BIND}: this machine only)",
    )
    serve.set_defaults(func=run_serve)


def run_index(args: argparse.Namespace, ui: UI) -> int:
    from pypidl.cli._common import require_mirror
    from pypidl.store.index_builder import build_index

    require_mirror(args.directory)
    root = Path(args.directory)
    report = build_index(root, backend=args.index_backend)
    ui.info("%s in %s", report.summary(), root / SIMPLE_DIR)
    from pypidl.store.client_config import write_client_config

    pip_conf, uv_toml = write_client_config(root)
    ui.info("Client configuration: %s, %s (see docs/index.md)", pip_conf, uv_toml)
    return EXIT_OK


def run_serve(args: argparse.Namespace, ui: UI) -> int:
    from pypidl.store.serve import serve

    def ready(url: str) -> None:
        ui.info("Serving %s at %s (Ctrl-C stops)", args.directory, url)
        ui.info("Install with: pip install --index-url %s PROJECT", url)

    try:
        serve(args.directory, bind=args.bind, port=args.port, on_ready=ready)
    except KeyboardInterrupt:
        ui.info("Stopped")
    return EXIT_OK
