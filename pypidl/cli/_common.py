"""Options shared by several commands, and turning them into settings objects."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from pypidl._fs import check_output
from pypidl.config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRIES,
    NetworkSettings,
    default_mirror,
    pip_config_value,
    user_agent,
)
from pypidl.errors import BadInputError
from pypidl.sources import Mirror, check_index_url, load_mirror_sets, redact_url

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pypidl.cli._output import UI
    from pypidl.plan.project_indexes import ProjectIndexes
    from pypidl.plan.targets import Target

__all__ = [
    "check_output_file",
    "connection_from_args",
    "network_from_args",
    "parent_parsers",
    "positive_int",
    "prepare_download_dir",
    "project_indexes_from_args",
    "require_mirror",
    "shard_from_args",
    "targets_from_args",
]

log = logging.getLogger("pypidl.cli")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def parent_parsers() -> SimpleNamespace:
    """argparse parents: ``output``, ``network``, ``targets``, ``connection``."""
    output = argparse.ArgumentParser(add_help=False)
    g = output.add_argument_group("output")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="say more: skipped files, debug details (twice: also the planner's HTTP requests)",
    )
    g.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings, errors and the summary"
    )
    g.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    network = argparse.ArgumentParser(add_help=False)
    g = network.add_argument_group("indexes and network")
    g.add_argument(
        "--index-url",
        "-i",
        action="append",
        metavar="URL",
        help=(
            "simple index to read (repeatable: the first is the primary, the others are "
            "fall-backs). Default: the index pip is configured to use (PIP_INDEX_URL, pip.conf), "
            "else pip's built-in default"
        ),
    )
    g.add_argument(
        "--index",
        dest="named_indexes",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="declare a named index for --project-index (repeatable); it serves the projects "
        "pinned to it and no others",
    )
    g.add_argument(
        "--project-index",
        dest="project_indexes",
        action="append",
        default=[],
        metavar="PROJECT=NAME",
        help="read PROJECT only from the index NAME, never from the others (repeatable); also "
        "'# pypidl: index NAME=URL' and '# pypidl: project-index PROJECT=NAME' lines in a "
        "requirements file",
    )
    g.add_argument(
        "--cn",
        action="store_true",
        help="put the Chinese mirror set in front (automatic fall-back; the index URLs come last)",
    )
    g.add_argument(
        "--mirrors-file",
        metavar="FILE",
        help="JSON file of mirror sets replacing the packaged ones (see docs/mirrors.md)",
    )
    _connection_flags(g)

    targets = argparse.ArgumentParser(add_help=False)
    g = targets.add_argument_group(
        "target environments",
        "Each flag is repeatable; the targets are their product. Default: CPython 3.8 to 3.14 on "
        "Linux, Windows and macOS, x86_64 and arm64 (win-arm64 from 3.11), each Linux and macOS "
        "family at its oldest and newest OS release (see docs/targets.md).",
    )
    g.add_argument(
        "--python-version",
        action="append",
        default=[],
        metavar="VER",
        help="3.11, 311 or cp311; py3 for every supported 3.x",
    )
    g.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="PLAT",
        help="a pip platform tag (manylinux_2_17_x86_64, win_amd64, macosx_11_0_arm64, any) or a "
        "family: linux-x86_64, linux-aarch64, musllinux-x86_64, musllinux-aarch64, win-amd64, "
        "win-arm64, win32, macos-x86_64, macos-arm64. A Linux, musl or macOS family is "
        "resolved at its floor and ceiling machine (glibc 2.17-2.39, musl 1.1-1.2, macOS 12-15); "
        "move them with FAMILY:glibc=2.28 or FAMILY:glibc=2.28-2.35 (musl=, macos=)",
    )
    g.add_argument("--abi", action="append", default=[], metavar="ABI", help="cp311, abi3, none")
    g.add_argument(
        "--implementation", action="append", default=[], metavar="IMPL", help="cp (default)"
    )
    g.add_argument(
        "--targets-file",
        metavar="FILE",
        help="targets, one set per line (python=3.8,3.11 platform=linux-x86_64); adds to the flags",
    )
    # the same TLS, timeout and retry flags without the indexes to read (publish)
    connection = argparse.ArgumentParser(add_help=False)
    _connection_flags(connection.add_argument_group("network"))
    return SimpleNamespace(output=output, network=network, targets=targets, connection=connection)


def _connection_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--cert",
        metavar="PATH",
        help="CA bundle to verify TLS with (default: REQUESTS_CA_BUNDLE, pip's 'cert' setting, certifi)",
    )
    g.add_argument(
        "--client-cert", metavar="PATH", help="client certificate (PEM with key) for TLS"
    )
    g.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="S",
        help=f"seconds (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    g.add_argument(
        "--timeout",
        "--read-timeout",
        dest="read_timeout",
        type=positive_float,
        default=DEFAULT_READ_TIMEOUT,
        metavar="S",
        help="seconds without a byte before a read is abandoned and retried "
        f"(default {DEFAULT_READ_TIMEOUT:g})",
    )
    g.add_argument(
        "--stall-timeout",
        type=positive_float,
        metavar="S",
        help="abandon and retry a transfer that makes no progress for S seconds (default: --timeout)",
    )
    g.add_argument(
        "--retries",
        type=positive_int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"attempts per file per mirror (default {DEFAULT_RETRIES})",
    )


def network_from_args(
    args: argparse.Namespace,
    *,
    file_index_url: str | None = None,
    file_extra_index_urls: Sequence[str] = (),
    tls: bool = True,
) -> tuple[list[Mirror], NetworkSettings]:
    """The ordered mirrors and the network settings a command's index flags ask for.

    :param tls: see :func:`connection_from_args`.

    Index precedence: ``--index-url`` flags, then an ``--index-url`` inside the requirements file,
    then pip's configuration, then pip's built-in default.  The ``--extra-index-url`` lines of
    the requirements files come after all of them, as pip asks its extra indexes too: a project
    only an extra index has is found there, one the indexes before it have is taken from them.
    """
    urls: list[str] = list(args.index_url or [])
    used_file_index = [file_index_url] if file_index_url and not urls else []  # -i replaces it
    for url in [*urls, *file_extra_index_urls, *used_file_index]:
        check_index_url(url)
    mirrors: list[Mirror]
    if urls:
        mirrors = [
            Mirror.from_index_url(u, name=f"index{n + 1}" if n else "primary")
            for n, u in enumerate(urls)
        ]
    elif file_index_url:
        mirrors = [Mirror.from_index_url(file_index_url, name="primary")]
    else:
        mirrors = [default_mirror()]
    if args.mirrors_file and not args.cn:
        log.warning("--mirrors-file %s is not used without --cn", args.mirrors_file)
    if args.cn:
        sets = load_mirror_sets(args.mirrors_file)
        if "cn" not in sets:
            raise BadInputError("the mirror sets have no 'cn' set", context=args.mirrors_file)
        mirrors = list(sets["cn"]) + mirrors
    known = {m.simple_url for m in mirrors}
    for n, url in enumerate(file_extra_index_urls, start=1):
        extra = Mirror.from_index_url(url, name=f"extra{n}")
        if extra.simple_url not in known:
            known.add(extra.simple_url)
            mirrors.append(extra)
            log.debug("Extra index from the requirements: %s", redact_url(extra.simple_url))
    net = connection_from_args(args, tls=tls)
    raw = urls or ([file_index_url] if file_index_url else [])
    return mirrors, net.with_credentials_from([*raw, *file_extra_index_urls])


def connection_from_args(args: argparse.Namespace, *, tls: bool = True) -> NetworkSettings:
    """The network settings of the connection flags (TLS, timeouts, retries), no credentials.

    :param tls: whether the command may talk TLS at all; ``False`` (every URL it will use is
        plain http) spares reading pip's configuration for its ``cert`` settings, a module of
        about 13 MB that would otherwise be loaded for nothing.  Flags are still checked.
    """
    verify: bool | str = True
    cert = (
        args.cert
        or os.environ.get("REQUESTS_CA_BUNDLE")
        or (pip_config_value("cert") if tls else None)
    )
    if cert:
        if not os.path.exists(cert):
            raise BadInputError(f"CA bundle {cert!r} does not exist")
        verify = str(cert)
    client_cert = args.client_cert or (pip_config_value("client-cert") if tls else None)
    if client_cert and not os.path.exists(client_cert):
        raise BadInputError(f"client certificate {client_cert!r} does not exist")
    return NetworkSettings(
        user_agent=user_agent(),
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        stall_timeout=args.read_timeout if args.stall_timeout is None else args.stall_timeout,
        verify=verify,
        client_cert=str(client_cert) if client_cert else None,
        retries=args.retries,
    )


def targets_from_args(args: argparse.Namespace) -> tuple[Target, ...]:
    from pypidl.plan.targets import load_targets_file, parse_targets

    from_file = load_targets_file(args.targets_file) if args.targets_file else ()
    flags_given = args.python_version or args.platform or args.abi or args.implementation
    from_flags = (
        parse_targets(
            python_versions=args.python_version,
            platforms=args.platform,
            abis=args.abi,
            implementations=args.implementation,
            spans=True,
        )
        if flags_given or not from_file
        else ()
    )
    unique = {t.label: t for t in (*from_file, *from_flags)}
    return tuple(unique.values())


def project_indexes_from_args(
    args: argparse.Namespace, files: Sequence[str] = ()
) -> ProjectIndexes:
    """``--index``/``--project-index`` and the ``# pypidl:`` lines of requirements ``files``."""
    from pypidl.plan.project_indexes import parse_project_indexes, read_directives

    indexes, pins = read_directives(files)
    flags_indexes = [(v, None) for v in args.named_indexes]
    flag_pins = [(v, None) for v in args.project_indexes]
    return parse_project_indexes([*flags_indexes, *indexes], [*flag_pins, *pins])


def shard_from_args(value: str, ui: UI) -> tuple[int, int]:
    """``--shard K/N``, or ``--shard auto``: K and N from the scheduler that started us.

    :raises BadInputError: a malformed value, or ``auto`` outside a known scheduler.
    """
    from pypidl._shards import parse_shard

    if value != "auto":
        return parse_shard(value)
    from pypidl.scheduler import shard_from_environment

    k, n, source = shard_from_environment(os.environ)
    ui.info("--shard auto: share %d of %d, from the %s", k, n, source)
    return k, n


def check_output_file(path: str, *, what: str) -> None:
    """Refuse, before any work is done, an output path that cannot be written
    (:func:`pypidl._fs.check_output`: a link, a directory, a socket, an unwritable directory).

    ``-`` (stdout), a character device and a FIFO pass. A missing parent directory is fine (it
    is created on write) when the nearest one that exists is writable.

    :param what: what the file is, for the message ("manifest", "URL list").
    :raises BadInputError: naming ``path``.
    """
    check_output(path, what=what)


def prepare_download_dir(path: str) -> Path:
    """Create the download directory (with parents) and prove that files can be written in it.

    Run before planning, so a typo or a read-only disk costs one line, not a plan and one failed
    download per file.

    :returns: the absolute path.
    :raises BadInputError: it is a file, or it cannot be created or written to.
    """
    root = Path(path).resolve()
    if root.exists() and not root.is_dir():
        raise BadInputError(f"download directory {str(root)!r} is a file, not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(prefix=".pypidl-", dir=root):
            pass
    except OSError as exc:
        raise BadInputError(
            f"cannot write to the download directory {str(root)!r}: {exc.strerror or exc}"
        ) from None
    return root


def require_mirror(path: str) -> None:
    """Refuse a directory that holds no mirror: a typo must not produce an empty index or a
    clean verify.

    Anything that is not a directory is left to the command, which says so itself.

    :raises BadInputError: ``path`` has neither ``.pypidl/catalog/`` nor ``packages/``.
    """
    from pypidl.store.catalog import STATE_DIR

    root = Path(path)
    has_mirror = (root / STATE_DIR / "catalog").is_dir() or (root / "packages").is_dir()
    if root.is_dir() and not has_mirror:
        raise BadInputError(
            f"{path} is not a pypidl mirror: it has neither {STATE_DIR}/catalog/ nor packages/",
            hint="give the --download-dir of a sync or download",
        )
