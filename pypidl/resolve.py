"""Host resolution with pip-compile (pip-tools), the resolver users already trust.

pip-compile resolves the requirements for the interpreter pypidl runs on.  Its pins are the
preferred versions for every other target too (see :mod:`pypidl.resolver`, which completes the
closure for targets whose markers differ from the host's).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from pypidl.errors import ResolutionError
from pypidl.mirrors import redact_url

if TYPE_CHECKING:
    from pypidl.config import NetworkSettings

__all__ = ["HostResolution", "cache_dir", "compile_host"]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class HostResolution:
    pins: dict[NormalizedName, str]


def _isolated_env(
    index_url: str, extra_index_urls: list[str], *, ca_bundle: str | None = None
) -> dict[str, str]:
    """pip reads its configuration from files and ``PIP_*`` variables; pypidl decides instead.

    The index URL (possibly with credentials) goes through the environment, not argv, so it does
    not show in process listings.

    :param ca_bundle: the CA bundle pypidl verifies with.  pip (through requests) lets
        ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` override its ``--cert``, so they are set to
        the same file.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    if ca_bundle:
        env["REQUESTS_CA_BUNDLE"] = env["CURL_CA_BUNDLE"] = ca_bundle
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["PIP_INDEX_URL"] = index_url
    if extra_index_urls:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(extra_index_urls)
    return env


def compile_host(
    requirements_in: str,
    *,
    index_url: str,
    net: NetworkSettings,
    constraints_in: str = "",
    extra_index_urls: list[str] | None = None,
    python: str | None = None,
) -> HostResolution:
    """Resolve ``requirements_in`` (requirements.in text) with pip-compile against ``index_url``.

    :param index_url: the primary index, credentials included when it needs them.
    :raises ResolutionError: with pip-compile's own explanation when it cannot resolve.
    """
    with tempfile.TemporaryDirectory(prefix="pypidl-compile-") as tmp:
        tmpdir = Path(tmp)
        infile = tmpdir / "requirements.in"
        text = requirements_in
        if constraints_in.strip():
            (tmpdir / "constraints.txt").write_text(constraints_in, encoding="utf-8")
            text += "\n-c constraints.txt\n"
        infile.write_text(text, encoding="utf-8")
        outfile = tmpdir / "requirements.txt"
        cmd = [
            python or sys.executable,
            "-m",
            "piptools",
            "compile",
            "--quiet",
            "--no-header",
            "--no-annotate",
            "--no-emit-index-url",
            "--no-emit-trusted-host",
            "--allow-unsafe",
            "--strip-extras",
            "--no-config",
            "--resolver=backtracking",
            "--cache-dir",
            str(cache_dir() / "pip-tools"),
            "--output-file",
            str(outfile),
        ]
        pip_args = [f"--timeout={net.read_timeout:g}", f"--retries={net.retries}"]
        if isinstance(net.verify, str):
            cmd += ["--cert", net.verify]
        if net.client_cert:
            cmd += ["--client-cert", net.client_cert]
        cmd += ["--pip-args", " ".join(pip_args), str(infile)]
        log.info("Resolving dependencies with pip-compile against %s", redact_url(index_url))
        proc = subprocess.run(
            cmd,
            cwd=tmpdir,
            env=_isolated_env(
                index_url,
                extra_index_urls or [],
                ca_bundle=net.verify if isinstance(net.verify, str) else None,
            ),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            check=False,
        )
        if proc.returncode != 0 or not outfile.exists():
            raise ResolutionError(
                _explain(proc.stderr or proc.stdout, index_url),
                context="pip-compile",
                hint="check the requirements for conflicts; -vv shows pip-compile's full output",
            )
        log.debug("pip-compile said: %s", _redact_all(proc.stderr, index_url))
        return HostResolution(pins=parse_pins(outfile.read_text(encoding="utf-8")))


def parse_pins(text: str) -> dict[NormalizedName, str]:
    """``name==version`` lines of a compiled requirements file."""
    pins: dict[NormalizedName, str] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            log.debug("ignoring pip-compile output line %r", line)
            continue
        spec = next((s for s in req.specifier if s.operator in {"==", "==="}), None)
        if spec is not None:
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def _redact_all(text: str, index_url: str) -> str:
    redacted = redact_url(index_url)
    return text.replace(index_url, redacted) if redacted != index_url else text


def _explain(output: str, index_url: str) -> str:
    """The useful lines of pip-compile's error output, credentials redacted."""
    lines = [ln.strip() for ln in _redact_all(output, index_url).splitlines() if ln.strip()]
    keep = [
        ln
        for ln in lines
        if not ln.startswith(("Traceback", "File ", "WARNING:", "Looking in"))
        and "Location '" not in ln
    ]
    tail = keep[-6:] if keep else ["pip-compile failed without output"]
    return "cannot resolve the requirements: " + " | ".join(tail)
