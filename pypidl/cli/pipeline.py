"""``pypidl sync``, ``plan`` and ``download``: the pipeline's own commands."""

from __future__ import annotations

import argparse
import errno
import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from pypidl.cli._common import (
    check_output_file,
    network_from_args,
    prepare_download_dir,
    project_indexes_from_args,
    shard_from_args,
    targets_from_args,
)
from pypidl.cli._output import UI, format_bytes
from pypidl.cli._pipeline_flags import download_flags, plan_flags, report_flag, requirement_flags
from pypidl.cli._pipeline_settings import DEFAULT_REQUIREMENTS, input_paths
from pypidl.cli._summary import print_summary
from pypidl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BadInputError
from pypidl.manifest import Manifest, dump, load
from pypidl.sources import redact_url

if TYPE_CHECKING:
    from pypidl.config import NetworkSettings
    from pypidl.fetch.pool import RunReport
    from pypidl.plan.gate import GateOptions
    from pypidl.plan.lockfiles import Lock
    from pypidl.plan.options import PlanOptions
    from pypidl.plan.project_indexes import ProjectIndexes
    from pypidl.sources import Mirror

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


def _gate_options(args: argparse.Namespace, net: NetworkSettings) -> GateOptions:
    from pypidl._time import parse_cutoff
    from pypidl.advisories import load_advisories
    from pypidl.plan.gate import GateOptions

    if args.refuse_vulnerable and not args.advisories:
        raise BadInputError("--refuse-vulnerable needs --advisories")
    return GateOptions(
        exclude_newer=parse_cutoff(args.exclude_newer) if args.exclude_newer else None,
        advisories=load_advisories(args.advisories, net=net) if args.advisories else None,
        refuse_vulnerable=args.refuse_vulnerable,
    )


def _plan_options(args: argparse.Namespace, net: NetworkSettings) -> PlanOptions:
    from packaging.utils import canonicalize_name

    from pypidl.plan.options import PlanOptions
    from pypidl.plan.prefetch import DEFAULT_IN_FLIGHT

    return PlanOptions(
        gate=_gate_options(args, net),
        require_provenance=frozenset(canonicalize_name(p) for p in args.require_provenance),
        all_versions=args.all_versions,
        all_versions_limit=args.all_versions_limit,
        no_deps=args.no_deps,
        sdist=args.sdist,
        closure=not args.host_only,
        pre=args.pre,
        build_deps=not args.no_build_deps,
        pip_compile=args.pip_compile,
        prefer_newest=args.prefer_newest,
        workers=getattr(args, "concurrency", None) or DEFAULT_IN_FLIGHT,
        reuse=not args.refresh,
    )


def _plan_locks(
    args: argparse.Namespace, ui: UI, paths: Sequence[str]
) -> tuple[Manifest, NetworkSettings]:
    from pypidl.plan.lock_formats import read_lock
    from pypidl.plan.planner import Planner

    refused = [
        flag
        for flag, given in (
            ("--all-versions", args.all_versions),
            ("--no-deps", args.no_deps),
            ("--host-only", args.host_only),
        )
        if given
    ]
    if refused:
        raise BadInputError(
            f"{', '.join(refused)} does not apply to a lock: it already pins every version",
            context=paths[0],
        )
    locks = [read_lock(p) for p in paths]
    named = [url for lock in locks for url in lock.index_urls]
    mirrors, net = network_from_args(args, file_index_url=named[0] if named else None)
    routing = _lock_routing(args, locks, mirrors)
    # credentials of the lock's file URLs, which the manifest does not keep (issue 20)
    file_urls = [url for lock in locks for url in lock.file_urls if "@" in url]
    net = net.with_credentials_from([*routing.raw_urls, *dict.fromkeys(file_urls)])
    targets = targets_from_args(args)
    if named and _lock_indexes_replaced(args):
        ui.info(
            "--index-url replaces the lock's index(es) %s (--keep-lock-indexes keeps them)",
            ", ".join(redact_url(u) for u in sorted(set(named))),
        )
    ui.info(
        "Mirroring what %s pin%s: %d package(s), for %d target(s)",
        ", ".join(f"{lock.path} ({lock.format})" for lock in locks),
        "s" if len(locks) == 1 else "",
        sum(len(lock.packages) for lock in locks),
        len(targets),
    )
    options = _plan_options(args, net)
    planner = Planner(mirrors, net, targets, options, project_indexes=routing)
    return planner.plan_locks(locks), net


def _lock_indexes_replaced(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "index_url", None)) and not getattr(args, "keep_lock_indexes", False)


def _lock_routing(
    args: argparse.Namespace, locks: Sequence[Lock], mirrors: Sequence[Mirror]
) -> ProjectIndexes:
    """The flags' per-project indexes, plus one for each package a lock took from another index
    than the ones being read: it is read from that index only, as the lock's tool did.

    ``--index-url`` replaces the lock's indexes (a lock is mirrored through an internal proxy of
    them) unless ``--keep-lock-indexes`` keeps them.
    """
    from pypidl.plan.project_indexes import parse_project_indexes

    flagged = project_indexes_from_args(args)
    if _lock_indexes_replaced(args):
        return flagged
    usual = {m.simple_url.rstrip("/") for m in mirrors}
    declared: dict[str, str] = {}
    pins: list[tuple[str, str | None]] = []
    for lock in locks:
        for pkg in lock.packages:
            if not pkg.index or pkg.index.rstrip("/") in usual or pkg.name in flagged.pins:
                continue
            name = declared.setdefault(pkg.index, f"lock-index-{len(declared) + 1}")
            pins.append((f"{pkg.name}={name}", pkg.where))
    if not pins:
        return flagged
    indexes = [(f"{name}={url}", lock.path) for url, name in declared.items()]
    flag_indexes = [(v, None) for v in args.named_indexes or []]
    flag_pins = [(v, None) for v in args.project_indexes or []]
    return parse_project_indexes([*flag_indexes, *indexes], [*flag_pins, *pins])


def _make_plan(args: argparse.Namespace, ui: UI) -> tuple[Manifest, NetworkSettings]:
    """The plan, and the network settings it was made with: a ``sync`` downloads with their
    credentials, which may come from inside the requirements or the lock (issue 20)."""
    from pypidl.plan.planner import plan
    from pypidl.plan.requirements import parse_requirement_files

    req_paths, lock_paths = input_paths(args)
    if lock_paths:
        manifest, net = _plan_locks(args, ui, lock_paths)
        return _announce(ui, manifest), net
    reqs = parse_requirement_files(req_paths)
    routing = project_indexes_from_args(args, reqs.files)
    if not reqs.requirements:
        raise BadInputError("no requirements to mirror", context=", ".join(reqs.files))
    mirrors, net = network_from_args(
        args, file_index_url=reqs.index_url, file_extra_index_urls=reqs.extra_index_urls
    )
    targets = targets_from_args(args)
    ui.info("Planning %d requirement(s) for %d target(s)", len(reqs.requirements), len(targets))
    if routing:
        net = net.with_credentials_from(list(routing.raw_urls))
        for project, name in sorted(routing.pins.items()):
            ui.info("%s is read from index %s only", project, name)
    manifest = plan(
        reqs,
        mirrors=mirrors,
        net=net,
        targets=targets,
        options=_plan_options(args, net),
        project_indexes=routing,
    )
    return _announce(ui, manifest), net


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

    if getattr(args, "report", None):
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
    if getattr(args, "report", None):
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
    manifest, _ = _make_plan(args, ui)
    dump(manifest, args.manifest)
    if args.manifest != "-":
        ui.info("Manifest written to %s", os.path.abspath(args.manifest))
    print_summary(ui, manifest, None)
    return _finish(
        args, ui, EXIT_FAILED if manifest.errors else EXIT_OK, manifest, None, started=started
    )


def run_sync(args: argparse.Namespace, ui: UI) -> int:
    root = Path(args.download_dir).resolve()
    if args.manifest:
        check_output_file(args.manifest, what="manifest")
    if args.dry_run:
        check_output_file(args.url_list_path, what="URL list")
    started = _check_report(args)
    if not args.dry_run:
        ui.info("Packages will be downloaded to %s", root)
        prepare_download_dir(args.download_dir)
    manifest, planned = _make_plan(args, ui)
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
    manifest_path = Path(args.manifest) if args.manifest else root / ".pypidl" / "manifest.json"
    try:
        dump(manifest, manifest_path)
    except OSError as exc:
        # the plan is in memory: download what still fits, and say what was not kept
        ui.error("Cannot write the manifest %s: %s", manifest_path, exc.strerror or exc)
        return max(
            _download_and_index(
                args,
                ui,
                manifest,
                root,
                started=started,
                disk_error=exc,
                credentials=planned.credentials,
            ),
            EXIT_FAILED,
        )
    ui.debug("Manifest written to %s", manifest_path)
    return _download_and_index(
        args, ui, manifest, root, started=started, credentials=planned.credentials
    )


def run_download(args: argparse.Namespace, ui: UI) -> int:
    started = _check_report(args)
    manifest = load(args.manifest)
    shard = None
    if args.shard:
        from pypidl._shards import shard_manifest

        k, n = shard = shard_from_args(args.shard, ui)
        total = len(manifest.entries)
        manifest = shard_manifest(manifest, k, n)
        ui.info("Shard %d/%d: %d of %d file(s)", k, n, len(manifest.entries), total)
    root = Path(args.download_dir).resolve()
    ui.info("Packages will be downloaded to %s", root)
    prepare_download_dir(args.download_dir)
    return _download_and_index(args, ui, manifest, root, started=started, shard=shard)


def _download_and_index(
    args: argparse.Namespace,
    ui: UI,
    manifest: Manifest,
    root: Path,
    *,
    started: str,
    disk_error: OSError | None = None,
    shard: tuple[int, int] | None = None,
    credentials: Sequence[tuple[str, str, str]] = (),
) -> int:
    """Download, index (with --build-index), summarize, write --report.

    :param disk_error: a write that already failed (the manifest), for the closing line.
    :param shard: ``(K, N)`` when only one shard is downloaded (for the report).
    :param credentials: what the plan of this run used (``sync``): an index URL with
        credentials inside a requirements file or a lock serves its files too. In memory only.
    """
    from pypidl.cli._pipeline_settings import engine_options
    from pypidl.cli._progress import ProgressEvents
    from pypidl.fetch import pool as engine

    options = engine_options(args, manifest, credentials)
    net = options.net
    with ProgressEvents(quiet=ui.quiet, verbose=ui.verbose) as events:
        report = engine.run(manifest.entries, root, options=options, events=events)
    from pypidl.store.provenance import keep_provenance
    from pypidl.store.status import record_statuses

    record_statuses(root, manifest.project_status, manifest.projects)
    kept = keep_provenance(manifest.entries, root, net)
    if kept.failed:
        for filename, reason in kept.failed:
            ui.error("%s: its provenance was not kept: %s", filename, reason)
    if getattr(args, "advisories", None):  # sync: keep the snapshot for audit and bundle
        from pypidl._fs import atomic_write_bytes
        from pypidl.advisories import SNAPSHOT_NAME, snapshot

        atomic_write_bytes(root / ".pypidl" / SNAPSHOT_NAME, snapshot(args.advisories, net=net))
    index_failed = False
    if args.build_index and not report.interrupted:
        from pypidl.store.index_builder import build_index

        try:
            result = build_index(root, backend=args.index_backend)
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
    if args.build_index and not report.interrupted and not index_failed:
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
