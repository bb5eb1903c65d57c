"""Host resolution with pip-compile (pip-tools), the resolver users already trust.

pip-compile resolves the requirements for the interpreter pypidl runs on.  Its pins are the
preferred versions for every other target too (see :mod:`pypidl.plan.closure`, which completes the
closure for targets whose markers differ from the host's).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from pypidl.errors import ResolutionError
from pypidl.sources import Mirror, redact_url, split_credentials

if TYPE_CHECKING:
    from pypidl.config import NetworkSettings

__all__ = ["HostResolution", "compile_host", "pins_from_mirrors"]

log = logging.getLogger(__name__)


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
    cache_dir: Path | None = None,
) -> HostResolution:
    """Resolve ``requirements_in`` (requirements.in text) with pip-compile against ``index_url``.

    :param index_url: the primary index, credentials included when it needs them.
    :param cache_dir: pypidl's cache, where pip-tools keeps its own (``pip-tools/``); None: a
        temporary one, gone when pip-compile is done.
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
            # not --quiet: pip tells why a resolution is impossible ("The conflict is caused
            # by: ...") only at this level, and the output is captured either way
            "--verbose",
            "--no-header",
            "--no-annotate",
            "--no-emit-index-url",
            "--no-emit-trusted-host",
            "--allow-unsafe",
            "--strip-extras",
            "--no-config",
            "--resolver=backtracking",
            "--cache-dir",
            str((cache_dir or tmpdir) / "pip-tools"),
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
        # the temporary directory means nothing to a user: "-r requirements.in (line 2)"
        output = _redact_all(f"{proc.stderr}\n{proc.stdout}", index_url).replace(
            f"{tmpdir}{os.sep}", ""
        )
        log.debug("pip-compile said: %s", output)
        if proc.returncode != 0 or not outfile.exists():
            raise ResolutionError(
                _explain(output),
                context="pip-compile",
                hint="check the requirements for conflicts; -vv shows pip-compile's full output",
            )
        return HostResolution(pins=parse_pins(outfile.read_text(encoding="utf-8")))


def parse_pins(text: str) -> dict[NormalizedName, str]:
    """``name==version`` lines of a compiled requirements file."""
    pins: dict[NormalizedName, str] = {}
    for raw in text.splitlines():
        # cut comments and per-requirement options ("name==1.0 --hash=sha256:...")
        line = re.split(r"\s(?:#|--)", raw, maxsplit=1)[0].strip().rstrip("\\").strip()
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
    """``text`` without the index's credentials, in the URL or anywhere else pip may echo them."""
    redacted = redact_url(index_url)
    if redacted != index_url:
        text = text.replace(index_url, redacted)
    _, creds = split_credentials(index_url)
    if creds:
        secret = creds[1] or creds[0]  # a lone user is a token
        # a very short secret would blank out ordinary words; its URL is redacted above
        if len(secret) >= 4:
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, "****")
    return text


_TRACEBACK = "Traceback (most recent call last):"
_NETWORK_HINTS = ("connection broken", "Could not fetch URL", "Max retries exceeded")


def _explain(output: str) -> str:
    """pip's own words on why it failed, without the tracebacks pip-compile adds.

    Kept: ``ERROR:`` lines, the "conflict is caused by" block, the first network warning and
    the message of the last exception.  Without any of those, the last lines of the output.
    """
    errors: list[str] = []
    network: list[str] = []
    final: str | None = None
    in_traceback = in_conflict = False
    lines = output.splitlines()
    for raw in lines:
        line = raw.strip()
        if line.startswith(_TRACEBACK):
            in_traceback = True
        elif in_traceback:
            if line and not raw[:1].isspace():  # "package.SomeError: message" ends the block
                in_traceback = False
                final = line.split(": ", 1)[-1]
        elif in_conflict:
            in_conflict = bool(line)
            if line:
                errors.append(line)
        elif line.startswith("The conflict is caused by"):
            in_conflict = True
            errors.append(line)
        elif line.startswith(("ERROR:", "Error:")):
            errors.append(line)
        elif any(hint in line for hint in _NETWORK_HINTS):
            network.append(line)
    keep = list(dict.fromkeys(errors + network[:1]))
    if final and not final.startswith("[") and final not in " ".join(keep):
        keep.append(final)
    if not keep:
        plain = [ln.strip() for ln in lines if ln.strip() and not ln[:1].isspace()]
        keep = [ln for ln in plain if not ln.startswith(_TRACEBACK)][-6:]
    return "cannot resolve the requirements: " + (
        " | ".join(keep) or "pip-compile failed without output"
    )


def _with_credentials(url: str, net: NetworkSettings) -> str:

    parts = urlsplit(url)
    for netloc, user, password in net.credentials:
        if netloc == parts.netloc:
            auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
            return urlunsplit(
                (parts.scheme, f"{auth}@{parts.netloc}", parts.path, parts.query, parts.fragment)
            )
    return url


def _looks_like_network_failure(message: str) -> bool:
    lowered = message.lower()
    return any(
        s in lowered
        for s in (
            "connection",
            "could not fetch",
            "max retries",
            "timed out",
            "ssl",
            "name resolution",
        )
    )


def pins_from_mirrors(
    requirements: str,
    mirrors: Sequence[Mirror],
    *,
    net: NetworkSettings,
    constraints: str = "",
    extra_index_urls: Sequence[str] = (),
    cache_dir: Path | None = None,
) -> dict[NormalizedName, str]:
    """pip-compile's pins for this host from the first of ``mirrors`` that it can reach.

    A mirror that fails with what looks like a network failure is skipped for the next; any
    other failure (no solution) is final.

    :param cache_dir: see :func:`compile_host`.

    :raises ResolutionError: the first failure, when no mirror gave pins.
    """
    errors: list[ResolutionError] = []
    for mirror in mirrors:
        try:
            result = compile_host(
                requirements,
                index_url=_with_credentials(mirror.simple_url, net),
                net=net,
                constraints_in=constraints,
                # pip's own reading of the requirements' --extra-index-url lines
                extra_index_urls=[
                    u
                    for u in extra_index_urls
                    if Mirror.from_index_url(u).simple_url != mirror.simple_url
                ],
                cache_dir=cache_dir,
            )
        except ResolutionError as exc:
            errors.append(exc)
            if not _looks_like_network_failure(exc.message):
                raise
            log.warning("pip-compile could not reach %s; trying the next index", mirror.name)
            continue
        log.info("pip-compile pinned %d project(s) for this host", len(result.pins))
        return result.pins
    raise errors[0]
