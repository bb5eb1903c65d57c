"""``pypidl publish DIR --to URL``: a mirror's verified files into an artifact repository."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pypidl.cli._common import check_output_file, positive_int
from pypidl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

if TYPE_CHECKING:
    from pypidl.cli._output import UI
    from pypidl.publish.publisher import FileOutcome, PublishReport

__all__ = ["register", "run"]

DEFAULT_CONCURRENCY = 8
PUBLISH_REPORT_SCHEMA = "pypidl-publish-report"
#: changes when a field of the publish report changes meaning or goes away
PUBLISH_REPORT_VERSION = 1

#: statuses that need no one's attention
_FINE = {"uploaded", "present"}


def register(sub: argparse._SubParsersAction, parents: SimpleNamespace) -> None:  # type: ignore[type-arg]
    """Add the ``publish`` command to ``sub``."""
    parser = sub.add_parser(
        "publish",
        parents=[parents.output, parents.connection],
        help="upload a mirror's files into devpi, pypiserver, Nexus or Artifactory",
        description=(
            "Read the repository's simple index, upload (as twine does) every verified file of "
            "the mirror DIR it lacks, and read the index back to check each file is served "
            "with its sha256. A file the repository holds with other bytes is a conflict: "
            "named, never overwritten. Credentials: in the URL, .netrc, or TWINE_USERNAME and "
            "TWINE_PASSWORD. Exit 0 when every file is served, 1 when some are not."
        ),
    )
    parser.add_argument("directory", metavar="DIR", help="the mirror (the --download-dir of sync)")
    parser.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the repository's upload URL (docs/publish.md gives each server's)",
    )
    parser.add_argument(
        "--simple-url",
        metavar="URL",
        help="the repository's simple index (default: found beside --to: simple/ or +simple/)",
    )
    parser.add_argument(
        "--manifest",
        metavar="PATH",
        help="publish only the files of this manifest (default: every file the mirror holds)",
    )
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="with --manifest: only shard K of N (as download and export); 'auto': from a "
        "Kubernetes Indexed Job or a Slurm job array",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"uploads in flight (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write the outcome as JSON: every file with its status (uploaded, present, "
        "conflict, failed), reason and whether it is served (docs/publish.md)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    from pypidl._shards import shard_manifest
    from pypidl.cli._common import connection_from_args, require_mirror, shard_from_args
    from pypidl.cli._report import now
    from pypidl.errors import BadInputError
    from pypidl.manifest import load
    from pypidl.publish.publisher import PublishOptions, mirror_files, publish
    from pypidl.publish.repository import credentials, locate_repository
    from pypidl.session import new_session
    from pypidl.sources import check_index_url, strip_credentials

    started = now()
    if args.report:  # '-' too: the summary's tables then go to stderr (cli._output.UI)
        check_output_file(args.report, what="report")
    root = Path(args.directory)
    if not root.is_dir():
        raise BadInputError(f"{args.directory} is not a directory")
    require_mirror(args.directory)
    entries = None
    if args.manifest:
        manifest = load(args.manifest)
        if args.shard:
            k, n = shard_from_args(args.shard, ui)
            manifest = shard_manifest(manifest, k, n)
            ui.info("Shard %d/%d: %d file(s)", k, n, len(manifest.entries))
        entries = manifest.entries
    elif args.shard:
        raise BadInputError("--shard needs --manifest: a share is a share of a manifest")
    urls = [args.to, *([args.simple_url] if args.simple_url else [])]
    tls = any(not u.startswith("http://") for u in urls)
    check_index_url(strip_credentials(args.to))
    net = connection_from_args(args, tls=tls)
    upload_url, net = credentials(args.to, net)
    if args.simple_url:
        net = net.with_credentials_from([args.simple_url])
    repository = locate_repository(new_session(net), upload_url, net, args.simple_url)
    ready, refused = mirror_files(root, entries)
    ui.info(
        "Publishing %d file(s) of %s to %s (its index: %s)",
        len(ready) + len(refused),
        root,
        repository.upload_url,
        repository.simple_url,
    )
    for outcome in refused:
        ui.error("%s: %s", outcome.entry.filename, outcome.reason)

    def said(outcome: FileOutcome) -> None:
        if outcome.status == "uploaded":
            ui.debug("Uploaded: %s", outcome.entry.filename)
        elif outcome.status == "present":
            ui.debug("Already there: %s", outcome.entry.filename)
        elif outcome.status == "conflict":
            ui.error("Conflict: %s", outcome.reason)
        else:
            ui.error("Failed: %s: %s", outcome.entry.filename, outcome.reason)

    report = publish(
        repository,
        ready,
        net,
        options=PublishOptions(concurrency=args.concurrency, on_outcome=said),
    )
    report.outcomes[:0] = refused
    code = EXIT_INTERRUPTED if report.interrupted else EXIT_OK if report.ok else EXIT_FAILED
    _summary(ui, report)
    if args.report:
        from pypidl.cli._report import write_report

        write_report(args.report, _report_json(report, code, started, root))
        ui.info("Report written to %s", os.path.abspath(args.report))
    return code


def _summary(ui: UI, report: PublishReport) -> None:
    troubled = [o for o in report.outcomes if o.status not in _FINE or o.served is False]
    if troubled:
        ui.table(
            "Publish Problems",
            ("File", "Status", "Details"),
            [
                (o.entry.filename, "not served" if o.served is False else o.status, o.reason or "")
                for o in sorted(troubled, key=lambda o: o.entry.filename)
            ],
        )
    checked = [o for o in report.outcomes if o.served is not None]
    ui.info(
        "Done: %d uploaded, %d already there, %d conflict(s), %d failed%s; %s",
        report.count("uploaded"),
        report.count("present"),
        report.count("conflict"),
        report.count("failed"),
        ", interrupted" if report.interrupted else "",
        f"read back: {len(checked) - len(report.not_served)} of {len(checked)} served with "
        "their sha256"
        if checked
        else "nothing to read back",
    )


def _report_json(report: PublishReport, code: int, started: str, root: Path) -> dict[str, Any]:
    from pypidl import __version__
    from pypidl.cli._report import now

    files = [
        {
            "project": o.entry.project,
            "version": o.entry.version,
            "filename": o.entry.filename,
            "sha256": o.entry.sha256,
            "size": o.entry.size,
            "status": o.status,
            "reason": o.reason,
            "attempts": o.attempts,
            "served": o.served,
        }
        for o in sorted(report.outcomes, key=lambda o: (o.entry.project, o.entry.filename))
    ]
    return {
        "schema": PUBLISH_REPORT_SCHEMA,
        "version": PUBLISH_REPORT_VERSION,
        "pypidl_version": __version__,
        "command": "publish",
        "started": started,
        "finished": now(),
        "exit_code": code,
        "interrupted": report.interrupted,
        "mirror": str(root.resolve()),
        "repository": report.repository.upload_url,
        "simple_url": report.repository.simple_url,
        "totals": {
            "files": len(files),
            **{status: report.count(status) for status in ("uploaded", "present", "conflict")},
            "failed": report.count("failed"),
            "not_served": len(report.not_served),
        },
        "files": files,
    }
