"""The pipeline commands' arguments turned into settings, once, at the boundary: what a plan
reads (:class:`PlanSettings`), where pages and files come from (:class:`Sources`), how the
download runs (:class:`DownloadSettings`), and from those the engine's ``EngineOptions``.

``sync`` plans and then downloads with the same :class:`Sources`: the indexes, the network
settings (credentials from the requirements or the lock included, issue 20) and the projects
kept to one index are worked out once, and nothing below reads the ``argparse.Namespace``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pypidl._fs import inputs_read_once
from pypidl.cli._common import network_from_args, project_indexes_from_args, targets_from_args
from pypidl.errors import BadInputError
from pypidl.sources import strip_credentials

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from pypidl.config import NetworkSettings
    from pypidl.fetch.pool import EngineOptions
    from pypidl.manifest import Manifest
    from pypidl.plan.gate import GateOptions
    from pypidl.plan.lockfiles import Lock
    from pypidl.plan.options import PlanOptions
    from pypidl.plan.project_indexes import ProjectIndexes
    from pypidl.plan.requirements import RequirementSet
    from pypidl.plan.targets import Target
    from pypidl.sources import Mirror

__all__ = [
    "DEFAULT_REQUIREMENTS",
    "DownloadSettings",
    "PlanSettings",
    "Sources",
    "download_settings",
    "download_sources",
    "engine_options",
    "input_paths",
    "plan_settings",
]

DEFAULT_REQUIREMENTS = "requirements.txt"


@dataclass(frozen=True)
class Sources:
    """Where pages and files come from."""

    #: the indexes to read, in order
    mirrors: tuple[Mirror, ...]
    #: the network settings, with the credentials of every index and file URL given
    net: NetworkSettings
    #: ``--index``/``--project-index`` (and the inputs' own): projects kept to one index
    routing: ProjectIndexes
    #: whether the command line named the indexes (``--index-url``, ``--cn``)
    flagged: bool


@dataclass(frozen=True)
class PlanSettings:
    """What ``plan`` and ``sync`` plan: requirements or locks, read once, and how."""

    sources: Sources
    targets: tuple[Target, ...]
    options: PlanOptions
    #: the requirements files read (None: the input is ``locks``)
    requirements: RequirementSet | None = None
    locks: tuple[Lock, ...] = ()
    #: ``--index-url`` replaces the indexes the locks name (no ``--keep-lock-indexes``)
    lock_indexes_replaced: bool = False


@dataclass(frozen=True)
class DownloadSettings:
    """What ``sync`` and ``download`` download into, and what they do after."""

    root: Path
    concurrency: int
    processes: int | None
    lock_timeout: float
    build_index: bool
    index_backend: str
    #: ``sync --advisories``: the source whose snapshot is kept in the mirror
    advisories: str | None = None


def input_paths(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """``(requirements files, lockfiles)`` the command was given; a lock is recognised by its
    name or content wherever a requirements file is accepted."""
    from pypidl.plan.lock_formats import is_lock_file

    given = list(args.requirements or []) + list(args.requirement_files or [])
    locks = [p for p in given if is_lock_file(p)] + list(args.lock_files or [])
    reqs = [p for p in given if p not in locks]
    if locks and reqs:
        raise BadInputError(
            f"give requirements files or lockfiles, not both: {reqs[0]} is a requirements file "
            f"and {locks[0]} a lock",
            hint="a lock already pins every version; plan the requirements in a separate run",
        )
    if not locks and not reqs:
        reqs = [DEFAULT_REQUIREMENTS]
    return reqs, locks


def plan_settings(args: argparse.Namespace, *, workers: int | None = None) -> PlanSettings:
    """Read the command's requirements (or locks) and turn its flags into the plan's settings.

    :param workers: requests in flight while planning (``sync``: its ``--concurrency``);
        None: :class:`~pypidl.plan.options.PlanOptions`' default.
    Each input file is read once (:func:`pypidl._fs.inputs_read_once`): recognising a lock,
    the requirements and their ``# pypidl:`` lines all read it, and ``-r /dev/stdin`` can be
    read only once.

    :raises BadInputError: for unusable input, naming the file.
    """
    with inputs_read_once():
        return _plan_settings(args, workers)


def _plan_settings(args: argparse.Namespace, workers: int | None) -> PlanSettings:
    from pypidl.config import cache_dir
    from pypidl.plan.requirements import parse_requirement_files

    req_paths, lock_paths = input_paths(args)
    reqs: RequirementSet | None = None
    locks: tuple[Lock, ...] = ()
    if lock_paths:
        locks, mirrors, net, routing = _lock_sources(args, lock_paths)
    else:
        reqs = parse_requirement_files(req_paths)
        routing = project_indexes_from_args(args, reqs.files)
        if not reqs.requirements:
            raise BadInputError("no requirements to mirror", context=", ".join(reqs.files))
        mirrors, net = network_from_args(
            args, file_index_url=reqs.index_url, file_extra_index_urls=reqs.extra_index_urls
        )
        net = net.with_credentials_from(list(routing.raw_urls))
    return PlanSettings(
        sources=Sources(tuple(mirrors), net, routing, flagged=bool(args.index_url or args.cn)),
        targets=targets_from_args(args),
        options=_plan_options(args, net, workers, cache_dir()),
        requirements=reqs,
        locks=locks,
        lock_indexes_replaced=bool(locks) and _lock_indexes_replaced(args),
    )


def _lock_sources(
    args: argparse.Namespace, paths: Sequence[str]
) -> tuple[tuple[Lock, ...], list[Mirror], NetworkSettings, ProjectIndexes]:
    """The locks at ``paths``, and the indexes, network settings and routing to read them."""
    from pypidl.plan.lock_formats import read_lock

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
    locks = tuple(read_lock(p) for p in paths)
    named = [url for lock in locks for url in lock.index_urls]
    mirrors, net = network_from_args(args, file_index_url=named[0] if named else None)
    routing = _lock_routing(args, locks, mirrors)
    # credentials of the lock's file URLs, which the manifest does not keep (issue 20)
    file_urls = [url for lock in locks for url in lock.file_urls if "@" in url]
    net = net.with_credentials_from([*routing.raw_urls, *dict.fromkeys(file_urls)])
    return locks, mirrors, net, routing


def _lock_indexes_replaced(args: argparse.Namespace) -> bool:
    return bool(args.index_url) and not args.keep_lock_indexes


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
    flag_indexes = [(v, None) for v in args.named_indexes]
    flag_pins = [(v, None) for v in args.project_indexes]
    return parse_project_indexes([*flag_indexes, *indexes], [*flag_pins, *pins])


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


def _plan_options(
    args: argparse.Namespace, net: NetworkSettings, workers: int | None, cache: Path
) -> PlanOptions:
    from packaging.utils import canonicalize_name

    from pypidl.plan.options import PlanOptions

    options = PlanOptions(
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
        reuse=not args.refresh,
        cache_dir=cache,
    )
    return options if workers is None else replace(options, workers=workers)


def download_settings(
    args: argparse.Namespace, *, advisories: str | None = None
) -> DownloadSettings:
    """The download flags of ``sync`` and ``download``.

    :param advisories: ``sync --advisories``, kept as a snapshot in the mirror.
    :raises BadInputError: for an unusable value.
    """
    if args.lock_timeout < 0:
        raise BadInputError("--lock-timeout must not be negative")
    return DownloadSettings(
        root=Path(args.download_dir).resolve(),
        concurrency=args.concurrency,
        processes=args.processes,
        lock_timeout=args.lock_timeout,
        build_index=args.build_index,
        index_backend=args.index_backend,
        advisories=advisories,
    )


def download_sources(args: argparse.Namespace, manifest: Manifest) -> Sources:
    """``download``'s sources: its flags' indexes and network settings, for ``manifest``."""
    routing = project_indexes_from_args(args)
    named_urls = list(routing.raw_urls)
    mirrors, net = network_from_args(args, tls=_may_use_tls(args, manifest, named_urls))
    # credentials of the named indexes travel with their files' hosts too
    net = net.with_credentials_from(named_urls)
    return Sources(tuple(mirrors), net, routing, flagged=bool(args.index_url or args.cn))


def engine_options(
    settings: DownloadSettings, manifest: Manifest, sources: Sources
) -> EngineOptions:
    """The download engine's settings for ``manifest``.

    :param sources: the plan's (``sync``), or :func:`download_sources` (``download``).
    """
    from pypidl.fetch.pool import EngineOptions

    indexes, pins = _rescue_indexes(sources, manifest)
    return EngineOptions(
        concurrency=settings.concurrency,
        processes=settings.processes,
        net=sources.net,
        lock_timeout=settings.lock_timeout,
        indexes=indexes,
        pins=pins,
    )


def _rescue_indexes(
    sources: Sources, manifest: Manifest
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The indexes whose project pages may rescue a file every listed URL failed, and, for each
    project pinned to an index (the manifest's ``pins``, ``--project-index``, ``# pypidl:
    project-index``), that index alone: a pinned project's files never come from another
    index, rescued or not.

    The indexes named on the command line come first, then the ones the plan was made from
    (a manifest's index URLs hold "****" at most: credentials come from the network settings,
    by host).  Indexes declared only for pinned projects serve only those.
    """
    routing = sources.routing
    candidates = [m.simple_url for m in sources.mirrors] if sources.flagged else []
    candidates += [strip_credentials(u) for u in manifest.index_urls]
    declared = {m.simple_url.rstrip("/") for m in routing.indexes.values()}
    declared |= {url.rstrip("/") for url in manifest.pins.values()}
    indexes: list[str] = []
    for url in candidates:
        clean = url if url.endswith("/") else url + "/"
        usable = clean.startswith(("https://", "http://")) and clean.rstrip("/") not in declared
        if usable and clean not in indexes:
            indexes.append(clean)
    # what the plan pinned (and checked the files against) first, then the flags
    pins: dict[str, tuple[str, ...]] = {p: (url,) for p, url in manifest.pins.items()}
    for project, name in routing.pins.items():
        pins.setdefault(str(project), (routing.indexes[name].simple_url,))
    return tuple(indexes), pins


def _may_use_tls(args: argparse.Namespace, manifest: Manifest, named_urls: Sequence[str]) -> bool:
    """Whether a download may talk TLS: any index or file URL that is not plain http (the
    default index and the packaged mirror sets are https)."""
    if not args.index_url or args.cn:
        return True
    urls = [*args.index_url, *manifest.index_urls, *named_urls]
    if any(not u.startswith("http://") for u in urls):
        return True
    return any(not u.startswith("http://") for e in manifest.entries for u in e.urls)
