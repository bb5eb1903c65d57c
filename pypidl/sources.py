"""Named mirror sets, per-mirror file URLs, and keeping credentials out of everything we write.

A :class:`Mirror` is a simple index (``simple_url``) and, for mirrors that copy the upstream file
layout, the base under which ``packages/...`` paths resolve (``packages_url``).  The ``--cn`` set
ships as data in ``pypidl/data/mirrors.json``; ``--mirrors-file`` replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from pypidl import _json as untrusted_json
from pypidl._fs import read_input
from pypidl.errors import BadInputError

__all__ = [
    "Mirror",
    "check_index_url",
    "derive_file_url",
    "load_mirror_sets",
    "redact_url",
    "split_credentials",
    "strip_credentials",
]


@dataclass(frozen=True)
class Mirror:
    """One place projects and files can be fetched from."""

    name: str
    simple_url: str  # always ends with "/"
    packages_url: str | None = None  # ends with "/": where "<packages>/<hash path>/<file>" lives

    @classmethod
    def from_index_url(cls, url: str, name: str | None = None) -> Mirror:
        clean = _slash(strip_credentials(url))  # credentials travel in NetworkSettings only
        return cls(
            name=name or urlsplit(clean).netloc or clean,
            simple_url=clean,
            packages_url=_sibling_packages(clean),
        )

    @classmethod
    def from_base(cls, name: str, base: str) -> Mirror:
        """A mirror in the bandersnatch layout: ``<base>/web/simple/`` and ``<base>/web/packages/``."""
        base = base.rstrip("/")
        return cls(
            name=name, simple_url=f"{base}/web/simple/", packages_url=f"{base}/web/packages/"
        )


def check_index_url(url: str, *, context: str | None = None) -> str:
    """Return ``url`` if it is an http(s) URL a session can fetch pages from.

    Refused up front, as bad input, rather than as a failure of every page later: another
    scheme (``file://`` included: pages are read over HTTP only; serve a directory with
    ``pypidl serve``), and what :func:`urllib.parse.urlsplit` or ``requests`` cannot take apart
    (``http://[::1/simple/``, no host, a port out of range).

    :raises BadInputError: naming the URL (credentials hidden) and ``context``.
    """
    shown = _redact_text(url)
    if url.startswith("file:"):
        raise BadInputError(
            f"index URL {shown!r}: pypidl reads indexes over http(s) only",
            context=context,
            hint="serve the directory (pypidl serve DIR) and give its http://127.0.0.1 URL",
        )
    if not url.startswith(("https://", "http://")):
        raise BadInputError(
            f"index URL {shown!r} must start with https:// or http://", context=context
        )
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number in 0..65535
    except ValueError as exc:
        raise BadInputError(f"index URL {shown!r} is malformed: {exc}", context=context) from None
    if not parts.hostname or port == 0:
        raise BadInputError(f"index URL {shown!r} has no host to connect to", context=context)
    return url


def _redact_text(url: str) -> str:
    """:func:`redact_url` for a URL that may not even split."""
    try:
        return redact_url(url)
    except ValueError:
        return url.rpartition("@")[2] if "@" in url else url


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _sibling_packages(simple_url: str) -> str | None:
    """``<root>/packages/`` for an index at ``<root>/simple/``, the layout bandersnatch and
    pypidl's own mirrors use, so files another mirror listed can fall back to this index too.

    A guess: on an index that keeps its files elsewhere it costs one 404, and only after every
    mirror before it failed.
    """
    parts = urlsplit(simple_url)
    if parts.scheme not in ("http", "https") or not parts.path.endswith("/simple/"):
        return None
    path = parts.path[: -len("simple/")] + "packages/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def load_mirror_sets(path: str | Path | None = None) -> dict[str, tuple[Mirror, ...]]:
    """Mirror sets by name, from ``path`` or the packaged defaults.

    The file is JSON: ``{"<set>": [{"name": ..., "base": ...} | {"name": ..., "simple_url": ...,
    "packages_url": ...}]}``.

    :raises BadInputError: when the file is unreadable or malformed.
    """
    where = str(path) if path else "pypidl/data/mirrors.json"
    try:
        if path is None:
            text = resources.files("pypidl").joinpath("data/mirrors.json").read_text("utf-8")
        else:
            text = read_input(path).decode("utf-8")
        data = untrusted_json.loads(text)
    except (OSError, UnicodeDecodeError, untrusted_json.UntrustedJSONError) as exc:
        raise BadInputError(f"cannot read mirror sets: {exc}", context=where) from None
    if not isinstance(data, dict):
        raise BadInputError("expected an object of mirror sets", context=where)
    sets: dict[str, tuple[Mirror, ...]] = {}
    for set_name, items in data.items():
        if set_name.startswith("_"):
            continue  # comments
        if not isinstance(items, list):
            raise BadInputError(f"mirror set {set_name!r} must be a list", context=where)
        sets[set_name] = tuple(_mirror_from_json(item, f"{where}: {set_name}") for item in items)
    return sets


def _mirror_from_json(item: Any, where: str) -> Mirror:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise BadInputError("each mirror needs a 'name'", context=where)
    for key in ("base", "simple_url", "packages_url"):
        value = item.get(key)
        if value is not None and not (
            isinstance(value, str) and value.startswith(("https://", "http://"))
        ):
            raise BadInputError(f"{item['name']}: {key} must be an http(s) URL", context=where)
    if isinstance(item.get("base"), str):
        return Mirror.from_base(item["name"], item["base"])
    if isinstance(item.get("simple_url"), str):
        packages = item.get("packages_url")
        return Mirror(
            item["name"], _slash(item["simple_url"]), _slash(packages) if packages else None
        )
    raise BadInputError(f"{item['name']}: needs 'base' or 'simple_url'", context=where)


def derive_file_url(file_url: str, mirror: Mirror) -> str | None:
    """The URL of ``file_url``'s file on ``mirror``, when both share the ``packages/`` layout."""
    if mirror.packages_url is None:
        return None
    path = urlsplit(file_url).path
    marker = "/packages/"
    at = path.find(marker)
    if at < 0:
        return None
    return mirror.packages_url + path[at + len(marker) :]


def _hostport(parts: SplitResult) -> str:
    """The ``host[:port]`` of ``parts`` as written (host lower-cased, as requests sends it).

    Taken from the text rather than rebuilt from ``.port``, which raises on a malformed port:
    that URL then fails where it is fetched, with a message, instead of here.
    """
    return parts.netloc.rpartition("@")[2].lower()


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``(url without user:password, (user, password) or None)``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    clean = urlunsplit(
        SplitResult(parts.scheme, _hostport(parts), parts.path, parts.query, parts.fragment)
    )
    return clean, (unquote(parts.username or ""), unquote(parts.password or ""))


def strip_credentials(url: str) -> str:
    return split_credentials(url)[0]


def redact_url(url: str) -> str:
    """``url`` with its password (or a lone token user) replaced by ``****``, for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    # "token@host" and "token:@host" both carry the secret in the user part
    user = "****" if not parts.password else f"{parts.username}:****"
    return urlunsplit(
        SplitResult(
            parts.scheme, f"{user}@{_hostport(parts)}", parts.path, parts.query, parts.fragment
        )
    )
