"""Settings: flags, pip's own configuration and packaged defaults, merged into frozen objects.

Everything here pickles, because settings travel to worker processes started with ``spawn``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pypidl import __version__
from pypidl.sources import Mirror, split_credentials

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRIES",
    "MAX_RETRY_AFTER",
    "NetworkSettings",
    "cache_dir",
    "default_index_url",
    "default_mirror",
    "pip_config_value",
    "user_agent",
]


#: The defaults of the network flags, written once: the flags, their help and the settings
#: objects a library caller builds without the CLI all read them from here.
DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_READ_TIMEOUT = 60.0
#: attempts per file per mirror round
DEFAULT_RETRIES = 4
#: download streams in total, and requests in flight while planning
DEFAULT_CONCURRENCY = 256
#: The longest ``Retry-After`` honoured, in seconds, by a request and by a file's download: a
#: server asking for a day gets a minute, then its answer.
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class NetworkSettings:
    """How to talk to indexes: identity, timeouts, TLS, credentials, retry policy."""

    user_agent: str = ""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    #: True, False (never the default), or the path of a CA bundle
    verify: bool | str = True
    client_cert: str | None = None
    #: (netloc, user, password) taken out of index URLs; never logged or written
    credentials: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)
    #: attempts per file per mirror round, and the base of the exponential back-off (seconds)
    retries: int = DEFAULT_RETRIES
    backoff: float = 0.5
    #: a transfer that receives no byte for this long is abandoned and retried
    stall_timeout: float = DEFAULT_READ_TIMEOUT

    def with_credentials_from(self, urls: list[str]) -> NetworkSettings:
        creds = list(self.credentials)
        for url in urls:
            clean, auth = split_credentials(url)
            if auth:
                creds.append((urlsplit(clean).netloc, auth[0], auth[1]))
        return NetworkSettings(**{**self.__dict__, "credentials": tuple(creds)})


def user_agent() -> str:
    """A pip-style User-Agent: some mirrors refuse clients they do not recognise."""
    try:
        from pip import __version__ as pip_version
    except ImportError:  # pragma: no cover - pip is a dependency
        pip_version = "24.0"
    data = {
        "installer": {"name": "pypidl", "version": __version__},
        "python": platform.python_version(),
        "implementation": {"name": sys.implementation.name, "version": platform.python_version()},
        "system": {"name": platform.system(), "release": platform.release()},
        "cpu": platform.machine(),
    }
    return f"pip/{pip_version} {json.dumps(data, separators=(',', ':'), sort_keys=True)}"


def pip_config_value(key: str) -> Any:
    """A value from pip's configuration (files and ``PIP_*`` variables), as pip would read it.

    :param key: a ``global.`` option name such as ``index-url`` or ``cert``.
    """
    env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
    if env:
        return env
    if os.environ.get("PIP_CONFIG_FILE") == os.devnull:
        # pip then reads no configuration file at all, only the variable checked above; its
        # configuration module (with pip's vendored rich) would cost 36 ms and 11 MiB at start
        return None
    try:
        from pip._internal.configuration import Configuration
    except ImportError:  # pragma: no cover - pip is a dependency
        return None
    try:
        config = Configuration(isolated=False)
        config.load()
    except Exception:
        return None
    # as pip ranks them: a command's section overrides [global], PIP_* variables override both;
    # within a rank, later files override earlier ones
    rank = {"global": 0, "download": 1, "install": 1, ":env:": 2}
    found: tuple[int, Any] | None = None
    for name, value in _flat_items(config.items()):
        section, _, option = name.partition(".")
        if option == key and section in rank and (found is None or rank[section] >= found[0]):
            found = (rank[section], value)
    return found[1] if found else None


def _flat_items(items: Any) -> list[tuple[str, Any]]:
    """``(section.option, value)`` pairs of pip's ``Configuration.items()``.

    Older pip yields those pairs; newer pip (26) yields ``(file, {section.option: value})``.
    """
    flat: list[tuple[str, Any]] = []
    for name, value in items:
        if isinstance(value, dict):
            flat.extend(value.items())
        else:
            flat.append((name, value))
    return flat


def default_index_url() -> str:
    """The index pip would use: ``PIP_INDEX_URL``, pip's configuration, then pip's built-in one."""
    configured = pip_config_value("index-url")
    if configured:
        return str(configured).split()[0]
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)


def default_mirror() -> Mirror:
    """The default index as a mirror; pip's built-in index also gets its file host's layout."""
    url = default_index_url()
    from pip._internal.models.index import PyPI

    if url.rstrip("/") == str(PyPI.simple_url).rstrip("/"):
        return Mirror(
            "default", url.rstrip("/") + "/", f"https://{PyPI.file_storage_domain}/packages/"
        )
    return Mirror.from_index_url(url, name="default")


def cache_dir() -> Path:
    """pypidl's cache: ``PYPIDL_CACHE_DIR``, else the platform's user cache directory."""
    configured = os.environ.get("PYPIDL_CACHE_DIR")
    if configured:
        return Path(configured)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "pypidl" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "pypidl"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pypidl"
