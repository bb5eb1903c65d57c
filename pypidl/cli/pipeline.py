"""``pypidl sync``, ``plan`` and ``download``: the pipeline's own commands."""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from pypidl.cli._common import check_output_file, prepare_download_dir, shard_from_args
from pypidl.cli._output import UI, format_bytes
from pypidl.cli._pipeline_flags import download_flags, plan_flags, report_flag, requirement_flags
from pypidl.cli._pipeline_settings import (
    DEFAULT_REQUIREMENTS,
    download_settings,
    download_sources,
    engine_options,
    plan_settings,
)
from pypidl.cli._summary import print_summary
from pypidl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BadInputError
from pypidl.manifest import Manifest, dump, load
from pypidl.sources import redact_url

if TYPE_CHECKING:
    from pypidl.cli._pipeline_settings import DownloadSettings, PlanSettings
    from pypidl.fetch.pool import EngineOptions, RunReport

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, parents: SimpleNamespace) -> None:  # type: ignore[type-arg]
    sync = sub.add_parser(
        "sync",
        parents=[parents.output, parents.network, parents.targets],
        help="plan, download and (with --build-index) index: the whole job",
        description=(
            "Resolve the requirements for every target environment, download every matching "
            "file verified against the index's sha256, and optionally build the index. "
            "'pypi-downloader' runs this command."
        ),
    )
    sync.add_argument(
        "requirements",
        nargs="*",
        metavar="REQUIREMENTS",
        help=f"requirements file(s) (default: ./{DEFAULT_REQUIREMENTS})",
    )
    requirement_flags(sync)
    report_flag(sync)
    plan_flags(sync)
    download_flags(sync)
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="plan only: write the URL list (and --manifest) and download nothing",
    )
    sync.add_argument(
        "--url-list-path",
        default="url_list.txt",
        metavar="PATH",
        help="where --dry-run writes the URL list (default ./url_list.txt)",
    )
    sync.add_argument(
        "--manifest",
        metavar="PATH",
        help="also write the manifest here (default: DOWNLOAD_DIR/.pypidl/manifest.json)",
    )
    sync.set_defaults(func=run_sync)

    plan = sub.add_parser(
        "plan",
        parents=[parents.output, parents.network, parents.targets],
        help="resolve and write a manifest of every file, download nothing",
        description="Resolve the requirements for every target and write the JSON manifest.",
    )
    plan.add_argument(
        "requirements", nargs="*", metavar="REQUIREMENTS", help="requirements file(s)"
    )
    requirement_flags(plan)
    report_flag(plan)
    plan_flags(plan)
    plan.add_argument(
        "-o",
        "--output",
        "--manifest",
        dest="manifest",
        default="manifest.json",
        metavar="PATH",
        help="where to write the manifest (default ./manifest.json; '-' for stdout)",
    )
    plan.set_defaults(func=run_plan)

    download = sub.add_parser(
        "download",
        parents=[parents.output, parents.network],
        help="download (or resume) exactly what a manifest lists",
        description=(
            "Download every file of MANIFEST into DOWNLOAD_DIR, verified; files already verified "
            "are skipped with a stat call, interrupted ones resume."
        ),
    )
    download.add_argument(
        "manifest", metavar="MANIFEST", help="a manifest written by 'pypidl plan'"
    )
    download_flags(download)
    download.add_argument(
        "--shard",
        metavar="K/N",
        help="only shard K of N (whole projects, balanced by bytes); 'auto': K and N from a "
        "Kubernetes Indexed Job or a Slurm job array (docs/schedulers.md)",
    )
    report_flag(download)
    download.set_defaults(func=run_download)


# -- commands -----------------------------------------------------------------------------------


def _make_plan(settings: PlanSettings, ui: UI) -> Manifest:
    """The plan of what ``settings`` were made from."""
    from pypidl.plan.planner import Planner

    sources, targets = settings.sources, settings.targets
    reqs = settings.requirements
    if reqs is None:
        locks = settings.locks
        named = sorted({url for lock in locks for url in lock.index_urls})
        if named and settings.lock_indexes_replaced:
            ui.info(
                "--index-url replaces the lock's index(es) %s (--keep-lock-indexes keeps them)",
                ", ".join(redact_url(u) for u in named),
            )
        ui.info(
            "Mirroring what %s pin%s: %d package(s), for %d target(s)",
            ", ".join(f"{lock.path} ({lock.format})" for lock in locks),
            "s" if len(locks) == 1 else "",
            sum(len(lock.packages) for lock in locks),
            len(targets),
        )
    else:
        ui.info("Planning %d requirement(s) for %d target(s)", len(reqs.requirements), len(targets))
        for project, name in sorted(sources.routing.pins.items()):
            ui.info("%s is read from index %s only", project, name)
    planner = Planner(
        sources.mirrors, sources.net, targets, settings.options, project_indexes=sources.routing
    )
    manifest = planner.plan(reqs) if reqs is not None else planner.plan_locks(settings.locks)
    return _announce(ui, manifest)


def _announce(ui: UI, manifest: Manifest) -> Manifest:
    ui.info(
        "Plan: %d file(s), %s, from %d project(s)",
        len(manifest.entries),
        format_bytes(manifest.total_size),
        len(manifest.projects),
    )
    for problem in manifest.problems:
        where = f" [{problem.target}]" if problem.target else ""
        say = ui.error if problem.is_error else ui.warning
        say("%s%s: %s", problem.project, where, problem.reason)
    return manifest


def _check_report(args: argparse.Namespace) -> str:
    """Refuse an unusable --report path before any work; return the start time."""
    from pypidl.cli._report import now

    if args.report:
        if args.report == "-":
            raise BadInputError("--report needs a file name (standard output holds the summary)")
        check_output_file(args.report, what="report")
    return now()


def _finish(
    args: argparse.Namespace,
    ui: UI,
    code: int,
    manifest: Manifest,
    report: RunReport | None,
    *,
    started: str,
    root: Path | None = None,
    shard: tuple[int, int] | None = None,
) -> int:
    """Write --report (when asked) and return the exit code.

    :param started: when the command started (:func:`_check_report`), for the report.
    """
    if args.report:
        from pypidl.cli._report import build_report, write_report

        write_report(
            args.report,
            build_report(
                command=args.command,
                manifest=manifest,
                run=report,
                exit_code=code,
                started=started,
                download_dir=str(root) if root is not None else None,
                shard=shard,
            ),
        )
        ui.info("Report written to %s", os.path.abspath(args.report))
    return code


def run_plan(args: argparse.Namespace, ui: UI) -> int:
    check_output_file(args.manifest, what="manifest")
    started = _check_report(args)
    manifest = _make_plan(plan_settings(args), ui)
    dump(manifest, args.manifest)
    if args.manifest != "-":
        ui.info("Manifest written to %s", os.path.abspath(args.manifest))
    print_summary(ui, manifest, None)
    return _finish(
        args, ui, EXIT_FAILED if manifest.errors else EXIT_OK, manifest, None, started=started
    )


def run_sync(args: argparse.Namespace, ui: UI) -> int:
    download = download_settings(args, advisories=args.advisories)
    root = download.root
    if args.manifest:
        check_output_file(args.manifest, what="manifest")
    if args.dry_run:
        check_output_file(args.url_list_path, what="URL list")
    started = _check_report(args)
    if not args.dry_run:
        ui.info("Packages will be downloaded to %s", root)
        prepare_download_dir(args.download_dir)
    settings = plan_settings(args, workers=download.concurrency)
    manifest = _make_plan(settings, ui)
    if args.dry_run:
        _write_url_list(manifest, args.url_list_path, root)
        ui.info(
            "Dry run: %d URL(s) written to %s",
            len(manifest.entries),
            os.path.abspath(args.url_list_path),
        )
        if args.manifest:
            dump(manifest, args.manifest)
            ui.info("Manifest written to %s", os.path.abspath(args.manifest))
        print_summary(ui, manifest, None)
        return _finish(
            args, ui, EXIT_FAILED if manifest.errors else EXIT_OK, manifest, None, started=started
        )
    from pypidl.plan._gc import give_back_plan_memory

    give_back_plan_memory()  # the download may take hours: hold what it needs, not the plan's
    # the plan's sources serve the download: an index URL with credentials inside a
    # requirements file or a lock serves its files too (issue 20)
    engine = engine_options(download, manifest, settings.sources)
    manifest_path = Path(args.manifest) if args.manifest else root / ".pypidl" / "manifest.json"
    try:
        dump(manifest, manifest_path)
    except OSError as exc:
        # the plan is in memory: download what still fits, and say what was not kept
        ui.error("Cannot write the manifest %s: %s", manifest_path, exc.strerror or exc)
        return max(
            _download_and_index(
                args, ui, manifest, download, engine, started=started, disk_error=exc
            ),
            EXIT_FAILED,
        )
    ui.debug("Manifest written to %s", manifest_path)
    return _download_and_index(args, ui, manifest, download, engine, started=started)


def run_download(args: argparse.Namespace, ui: UI) -> int:
    download = download_settings(args)
    started = _check_report(args)
    manifest = load(args.manifest)
    shard = None
    if args.shard:
        from pypidl._shards import shard_manifest

        k, n = shard = shard_from_args(args.shard, ui)
        total = len(manifest.entries)
        manifest = shard_manifest(manifest, k, n)
        ui.info("Shard %d/%d: %d of %d file(s)", k, n, len(manifest.entries), total)
    ui.info("Packages will be downloaded to %s", download.root)
    prepare_download_dir(args.download_dir)
    engine = engine_options(download, manifest, download_sources(args, manifest))
    return _download_and_index(args, ui, manifest, download, engine, started=started, shard=shard)


def _download_and_index(
    args: argparse.Namespace,
    ui: UI,
    manifest: Manifest,
    settings: DownloadSettings,
    options: EngineOptions,
    *,
    started: str,
    disk_error: OSError | None = None,
    shard: tuple[int, int] | None = None,
) -> int:
    """Download, index (with --build-index), summarize, write --report.

    :param disk_error: a write that already failed (the manifest), for the closing line.
    :param shard: ``(K, N)`` when only one shard is downloaded (for the report).
    """
    from pypidl.cli._progress import ProgressEvents
    from pypidl.fetch import pool as engine

    root, net = settings.root, options.net
    with ProgressEvents(quiet=ui.quiet, verbose=ui.verbose) as events:
        report = engine.run(manifest.entries, root, options=options, events=events)
    from pypidl.store.provenance import keep_provenance
    from pypidl.store.status import record_statuses

    record_statuses(root, manifest.project_status, manifest.projects)
    kept = keep_provenance(manifest.entries, root, net)
    if kept.failed:
        for filename, reason in kept.failed:
            ui.error("%s: its provenance was not kept: %s", filename, reason)
    if settings.advisories:  # sync: keep the snapshot for audit and bundle
        from pypidl._fs import atomic_write_bytes
        from pypidl.advisories import SNAPSHOT_NAME, snapshot

        atomic_write_bytes(root / ".pypidl" / SNAPSHOT_NAME, snapshot(settings.advisories, net=net))
    index_failed = False
    if settings.build_index and not report.interrupted:
        from pypidl.store.index_builder import build_index

        try:
            result = build_index(root, backend=settings.index_backend)
        except OSError as exc:  # a full disk: the files are fine, the pages could not be written
            index_failed = True
            disk_error = disk_error or exc
            ui.error("The index was not built: %s: %s", exc.filename, exc.strerror or exc)
        else:
            ui.info(
                "Index: %d project(s), %d file(s) in %s (%d page(s) written)",
                result.projects,
                result.files,
                root / "simple",
                result.pages_written,
            )
    print_summary(ui, manifest, report)
    if settings.build_index and not report.interrupted and not index_failed:
        _client_config(ui, root)
    if report.interrupted:
        ui.error("Interrupted: partial downloads are kept and resume on the next run")
        code = EXIT_INTERRUPTED
    else:
        if _disk_full(disk_error, report):
            ui.error(
                "The disk holding %s is full: free some space and run again (every file that "
                "reached its final name is verified and kept)",
                root,
            )
        failed = report.failed or manifest.errors or index_failed or kept.failed
        code = EXIT_FAILED if failed else EXIT_OK
        if disk_error is not None:  # something was not kept: the run cannot be a success
            code = EXIT_FAILED
    return _finish(args, ui, code, manifest, report, started=started, root=root, shard=shard)


def _client_config(ui: UI, root: Path) -> None:
    """Write pip.conf and uv.toml beside the index and say how to use them."""
    from pypidl.store.client_config import write_client_config

    try:
        pip_conf, uv_toml = write_client_config(root)
    except OSError as exc:
        ui.error("The client configuration was not written: %s", exc.strerror or exc)
        return
    ui.info("Clients: PIP_CONFIG_FILE=%s pip install PROJECT", pip_conf)
    ui.info("         uv pip install --config-file %s PROJECT", uv_toml)
    ui.info("(index URL and wheels-only settings; see docs/index.md to serve it over HTTP)")


def _disk_full(error: OSError | None, report: RunReport) -> bool:
    """Whether ``error`` or any file's failure was the disk (or the user's quota) running out."""
    full = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    if error is not None and error.errno in full:
        return True
    reasons = {os.strerror(code) for code in full}
    return any(any(r in (f.error or "") for r in reasons) for f in report.failed)


def _write_url_list(manifest: Manifest, path: str, root: Path) -> None:
    from pypidl._fs import open_output
    from pypidl.exporters import get_exporter

    text = "".join(get_exporter("urls").render(manifest, root=str(root)))
    with open_output(path, what="URL list") as fh:
        fh.write(text)
