"""``pypidl audit DIR``: which releases a mirror holds are named by security advisories, offline."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from pypidl.errors import BadInputError

if TYPE_CHECKING:
    from pypidl.cli._output import UI

__all__ = ["register", "run"]

EXIT_OK = 0
EXIT_FOUND = 1


def register(sub: argparse._SubParsersAction, parents: SimpleNamespace) -> None:  # type: ignore[type-arg]
    """Add the ``audit`` command to ``sub``."""
    parser = sub.add_parser(
        "audit",
        parents=[parents.output],
        help="list the mirror's releases that OSV advisories name (malware, vulnerabilities)",
        description=(
            "Match every release the mirror in DIR holds against OSV advisories, offline: "
            "--advisories SOURCE (the PyPI export as a zip or a directory), or the snapshot a "
            "sync or an imported bundle left in the mirror. Exit code 0 when no advisory names a "
            "release, 1 when some do."
        ),
    )
    parser.add_argument("directory", metavar="DIR", help="the mirror (the --download-dir of sync)")
    parser.add_argument(
        "--advisories",
        metavar="SOURCE",
        help="OSV export: a zip or a directory of advisory JSON files (default: the mirror's "
        "snapshot, DIR/.pypidl/" + "advisories-osv.zip)",
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write every finding as JSON (release, ids, aliases, fixes)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    from pypidl.advisories import SNAPSHOT_NAME, findings, load_advisories
    from pypidl.cli._common import check_output_file
    from pypidl.cli._report import write_report
    from pypidl.store.catalog import STATE_DIR, Catalog

    if args.report:  # before any work, like every other command's outputs (issue 20)
        check_output_file(args.report, what="report")
    root = Path(args.directory)
    if not root.is_dir():
        raise BadInputError("not a directory", context=str(root), hint="give the mirror directory")
    source = args.advisories
    if source is None:
        snapshot = root / STATE_DIR / SNAPSHOT_NAME
        if not snapshot.is_file():
            raise BadInputError(
                "no advisories: give --advisories SOURCE (the mirror holds no snapshot)",
                context=str(root),
            )
        source = str(snapshot)
    if source.startswith(("https://", "http://")):
        raise BadInputError("audit works offline: give a zip or a directory", context=source)
    advisories = load_advisories(source)
    catalog = Catalog(root)
    releases = sorted(
        {
            (name, r.entry.version)
            for name in catalog.projects()
            for r in catalog.load(name).values()
        }
    )
    found = findings(advisories, releases)
    ui.info(
        "Audited %d release(s) of %d project(s) against %d advisories from %s",
        len(releases),
        len({n for n, _ in releases}),
        advisories.count,
        source,
    )
    ui.table(
        "Audit",
        ("Package", "Version", "Kind", "Advisories"),
        [
            (f.project, f.version, f.kind, "; ".join(a.describe() for a in f.advisories))
            for f in found
        ],
        footer=[f"{len(found)} of {len(releases)} release(s) named by an advisory"],
    )
    if args.report:
        data = {
            "schema": "pypidl-audit",
            "version": 1,
            "advisories": source,
            "releases": len(releases),
            "findings": [f.to_json() for f in found],
        }
        write_report(args.report, data)
    return EXIT_FOUND if found else EXIT_OK
