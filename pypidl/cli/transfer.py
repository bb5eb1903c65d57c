"""``pypidl export``, ``merge``, ``bundle`` and ``import``: manifests and mirrors between hosts."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import SimpleNamespace

from pypidl._fs import open_output
from pypidl.cli._common import check_output_file, shard_from_args
from pypidl.cli._output import UI, format_bytes
from pypidl.errors import EXIT_FAILED, EXIT_OK, BadInputError
from pypidl.manifest import Manifest, dump, load

__all__ = ["register", "run_bundle", "run_export", "run_import", "run_merge"]

DEFAULT_DOWNLOAD_DIR = "./pypi"


def register(sub: argparse._SubParsersAction, parents: SimpleNamespace) -> None:  # type: ignore[type-arg]
    from pypidl.exporters import EXPORTERS

    export = sub.add_parser(
        "export",
        parents=[parents.output],
        help="write a manifest as an aria2c input file, a URL list or hashed requirements",
        description=(
            "Render MANIFEST for another tool. aria2c: every mirror URL of a file on one line, "
            "dir=/out= in pypidl's mirror layout and checksum=sha-256 (see docs/manifest.md for "
            "the aria2c command line); urls: one URL a line; requirements: name==version with "
            "every file's --hash, for pip install --require-hashes; pylock: a PEP 751 pylock.toml "
            "whose files are the mirror's (--base-url, or paths relative to the lock)."
        ),
    )
    export.add_argument("manifest", metavar="MANIFEST", help="a manifest written by 'pypidl plan'")
    export.add_argument(
        "--format", "-f", required=True, choices=sorted(EXPORTERS), help="output format"
    )
    export.add_argument(
        "-o", "--output", default="-", metavar="PATH", help="where to write (default: stdout)"
    )
    export.add_argument(
        "--shard",
        metavar="K/N",
        help="only shard K of N (whole projects, balanced by bytes); 'auto': from a Kubernetes "
        "Indexed Job or a Slurm job array",
    )
    export.add_argument(
        "--download-dir",
        default=DEFAULT_DOWNLOAD_DIR,
        metavar="DIR",
        help=f"mirror directory aria2c writes into (dir=; default {DEFAULT_DOWNLOAD_DIR})",
    )
    export.add_argument(
        "--all-urls",
        action="store_true",
        help="urls format: list every mirror's URL of each file, not only the first",
    )
    export.add_argument(
        "--base-url",
        metavar="URL",
        help="pylock format: the URL the mirror is served at (files become URL/packages/...); "
        "without it, files are paths relative to the lock's directory",
    )
    export.set_defaults(func=run_export)

    merge = sub.add_parser(
        "merge",
        parents=[parents.output],
        help="combine manifests into one",
        description=(
            "Union of the files of every MANIFEST (matched by project and file name; a file "
            "with two different sha256 digests is an error), with their requirements, targets "
            "and index URLs."
        ),
    )
    merge.add_argument("manifests", nargs="+", metavar="MANIFEST")
    merge.add_argument("-o", "--output", required=True, metavar="OUT", help="merged manifest")
    merge.set_defaults(func=run_merge)

    bundle = sub.add_parser(
        "bundle",
        parents=[parents.output],
        help="pack the files new since an older manifest into a tar for the air gap",
        description=(
            "Pack the files of MANIFEST that OLD_MANIFEST did not have (all of them without "
            "--since) from the mirror in DOWNLOAD_DIR, each verified while packed, with the "
            "manifest, into one tar that 'pypidl import' checks and unpacks on the inside."
        ),
    )
    bundle.add_argument("manifest", metavar="MANIFEST")
    bundle.add_argument(
        "--since", metavar="OLD_MANIFEST", help="manifest of the last crossing (default: none)"
    )
    bundle.add_argument(
        "-o", "--output", default="delta.tar", metavar="PATH", help="default ./delta.tar"
    )
    bundle.add_argument(
        "--download-dir",
        default=DEFAULT_DOWNLOAD_DIR,
        metavar="DIR",
        help=f"the mirror the files come from (default {DEFAULT_DOWNLOAD_DIR})",
    )
    bundle.add_argument(
        "--advisories",
        metavar="SOURCE",
        help="carry this OSV export (zip or directory) for 'pypidl audit' inside (default: the "
        "snapshot a sync with --advisories left in the mirror, when there is one)",
    )
    bundle.set_defaults(func=run_bundle)

    imp = sub.add_parser(
        "import",
        parents=[parents.output],
        help="add a bundle (or a directory another tool filled) to a mirror and index it",
        description=(
            "BUNDLE is a tar from 'pypidl bundle': it is checked as a whole before anything is "
            "written, every file's sha256 is verified, and the index is rebuilt. BUNDLE may also "
            "be a directory of downloaded files (aria2c, wget; in the mirror layout or flat), "
            "with --manifest saying what they should be; DIR itself adopts files in place."
        ),
    )
    imp.add_argument("bundle", metavar="BUNDLE", help="a bundle tar, or a directory of files")
    imp.add_argument("--into", required=True, metavar="DIR", help="the mirror to add to")
    imp.add_argument(
        "--manifest", metavar="PATH", help="what a directory BUNDLE holds (required for one)"
    )
    imp.add_argument("--no-index", action="store_true", help="do not rebuild the index afterwards")
    imp.add_argument(
        "--force",
        action="store_true",
        help=(
            "replace files the mirror holds verified with other bytes (without it such a "
            "bundle is refused as a whole)"
        ),
    )
    imp.set_defaults(func=run_import)


def run_export(args: argparse.Namespace, ui: UI) -> int:
    from pypidl._shards import shard_manifest
    from pypidl.exporters import get_exporter

    check_output_file(args.output, what="output")
    manifest = load(args.manifest)
    if args.shard:
        k, n = shard_from_args(args.shard, ui)
        total = len(manifest.entries)
        manifest = shard_manifest(manifest, k, n)
        ui.info("Shard %d/%d: %d of %d file(s)", k, n, len(manifest.entries), total)
    options: dict[str, object] = {"all_urls": True} if args.all_urls else {}
    if args.all_urls and args.format != "urls":
        raise BadInputError("--all-urls only applies to --format urls")
    if args.base_url and args.format != "pylock":
        raise BadInputError("--base-url only applies to --format pylock")
    if args.format == "pylock":
        options["base_url"] = args.base_url
        # paths are relative to where the lock is written
        options["lock_dir"] = (
            os.path.dirname(os.path.abspath(args.output)) if args.output != "-" else None
        )
    exporter = get_exporter(args.format, **options)
    # render fully before opening the output, so a bad URL leaves no half-written file
    chunks = list(exporter.render(manifest, root=args.download_dir))
    with open_output(args.output, what="output") as fh:
        fh.writelines(chunks)
    if args.output != "-":
        ui.info("Exported %d file(s) as %s to %s", len(manifest.entries), args.format, args.output)
    return EXIT_OK


def run_merge(args: argparse.Namespace, ui: UI) -> int:
    from pypidl._shards import merge_manifests

    check_output_file(args.output, what="merged manifest")
    manifests = [load(path) for path in args.manifests]
    merged = merge_manifests(manifests)
    dump(merged, args.output)
    ui.info(
        "Merged %d manifest(s): %d file(s), %s, written to %s",
        len(manifests),
        len(merged.entries),
        format_bytes(merged.total_size),
        args.output,
    )
    return EXIT_OK


def run_bundle(args: argparse.Namespace, ui: UI) -> int:
    from pypidl.bundle import bundle

    check_output_file(args.output, what="bundle")
    manifest = load(args.manifest)
    since: Manifest | None = load(args.since) if args.since else None
    state = None
    if args.advisories:
        from pypidl.advisories import SNAPSHOT_NAME, snapshot

        state = {SNAPSHOT_NAME: snapshot(args.advisories)}
    report = bundle(
        manifest, Path(args.download_dir), since=since, out=Path(args.output), state=state
    )
    ui.info(
        "Bundled %d new file(s) (%s) into %s; %d unchanged since %s",
        len(report.files),
        format_bytes(report.size),
        report.path,
        report.unchanged,
        args.since or "(no older manifest)",
    )
    return EXIT_OK


def run_import(args: argparse.Namespace, ui: UI) -> int:
    from pypidl.bundle import import_bundle
    from pypidl.store.adopt import adopt

    source = Path(args.bundle)
    into = Path(args.into)
    if source.is_dir():
        if not args.manifest:
            raise BadInputError(
                f"{source} is a directory: say what it should hold with --manifest",
            )
        manifest = load(args.manifest)
        report = adopt(
            into, manifest, source=source, build_index=not args.no_index, force=args.force
        )
        ui.info(
            "Adopted %d file(s) into %s; %d already there, %d missing, %d with a wrong sha256",
            len(report.added),
            into,
            len(report.present),
            len(report.missing),
            len(report.mismatched),
        )
        for entry in report.mismatched:
            ui.warning("sha256 mismatch, not adopted: %s", entry.relpath)
        for entry in report.kept:
            ui.warning("holds other verified bytes, not replaced (see --force): %s", entry.relpath)
        for entry in report.missing[:20]:
            ui.warning("missing: %s", entry.relpath)
        if report.index is not None:
            ui.info("%s", report.index.summary())
        return EXIT_OK if report.ok else EXIT_FAILED
    if not source.is_file():
        raise BadInputError(f"{source} does not exist")
    if args.manifest:
        raise BadInputError("--manifest is only for a directory; a bundle carries its own")
    result = import_bundle(source, into, build_index=not args.no_index, force=args.force)
    ui.info(
        "Imported %d file(s) into %s; %d already there",
        len(result.added),
        into,
        len(result.present),
    )
    if result.index is not None:
        ui.info("%s", result.index.summary())
    return EXIT_OK
