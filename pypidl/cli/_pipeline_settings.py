"""The pipeline commands' arguments turned into what they do: the input files, and the
download engine's settings (its indexes, the projects pinned to one, credentials, TLS)."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

from pypidl.cli._common import network_from_args, project_indexes_from_args
from pypidl.errors import BadInputError
from pypidl.sources import strip_credentials

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from pypidl.fetch.pool import EngineOptions
    from pypidl.manifest import Manifest
    from pypidl.sources import Mirror

__all__ = ["DEFAULT_REQUIREMENTS", "engine_options", "input_paths"]

DEFAULT_REQUIREMENTS = "requirements.txt"


def input_paths(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """``(requirements files, lockfiles)`` the command was given; a lock is recognised by its
    name or content wherever a requirements file is accepted."""
    from pypidl.plan.lock_formats import is_lock_file

    given = list(args.requirements or []) + list(args.requirement_files or [])
    locks = [p for p in given if is_lock_file(p)] + list(getattr(args, "lock_files", None) or [])
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


def engine_options(
    args: argparse.Namespace,
    manifest: Manifest,
    credentials: Sequence[tuple[str, str, str]] = (),
) -> EngineOptions:
    """The download engine's settings for ``manifest``, from the command's arguments.

    :param credentials: what the plan of this run used (``sync``), in memory only.
    :raises BadInputError: for an unusable value.
    """
    from pypidl.fetch.pool import EngineOptions

    named_urls = list(project_indexes_from_args(args).raw_urls)
    mirrors, net = network_from_args(args, tls=_may_use_tls(args, manifest, named_urls))
    # credentials of the named indexes travel with their files' hosts too
    net = net.with_credentials_from(named_urls)
    if credentials:
        net = replace(net, credentials=tuple(dict.fromkeys((*credentials, *net.credentials))))
    if args.lock_timeout < 0:
        raise BadInputError("--lock-timeout must not be negative")
    indexes, pins = _rescue_indexes(args, manifest, mirrors)
    return EngineOptions(
        concurrency=args.concurrency,
        processes=args.processes,
        net=net,
        lock_timeout=args.lock_timeout,
        indexes=indexes,
        pins=pins,
    )


def _rescue_indexes(
    args: argparse.Namespace, manifest: Manifest, mirrors: Sequence[Mirror]
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The indexes whose project pages may rescue a file every listed URL failed, and, for each
    project pinned to an index (the manifest's ``pins``, ``--project-index``, ``# pypidl:
    project-index``), that index alone: a pinned project's files never come from another
    index, rescued or not.

    The indexes named on the command line come first, then the ones the plan was made from
    (a manifest's index URLs hold "****" at most: credentials come from the network settings,
    by host).  Indexes declared only for pinned projects serve only those.
    """
    files: list[str] = []
    if getattr(args, "requirements", None) is not None or getattr(args, "requirement_files", None):
        with contextlib.suppress(BadInputError):
            files = input_paths(args)[0]
    routing = project_indexes_from_args(args, files)
    named = bool(getattr(args, "index_url", None) or getattr(args, "cn", False))
    candidates = [m.simple_url for m in mirrors] if named else []
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
    if not getattr(args, "index_url", None) or getattr(args, "cn", False):
        return True
    urls = [*args.index_url, *manifest.index_urls, *named_urls]
    if any(not u.startswith("http://") for u in urls):
        return True
    return any(not u.startswith("http://") for e in manifest.entries for u in e.urls)
