"""Real artifact repositories on 127.0.0.1 for the publish tests: pypiserver and devpi-server.

Each is started as its own process from the test environment's scripts, on a free port, with
its data in a temporary directory, never reaching beyond loopback (pypiserver without its
fall-back index, devpi without its mirror of the default index), and stopped by the caller.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

__all__ = ["Devpi", "PypiServer", "free_port", "server_script"]

_START_TIMEOUT = 120.0
_CHEAP_ARGON2 = (
    "--argon2-memory-cost",
    "8",
    "--argon2-time-cost",
    "1",
    "--argon2-parallelism",
    "1",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_script(name: str) -> str | None:
    """A console script installed beside the running interpreter (the test venv's)."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PIP_", "TWINE_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited: {log.read_text(errors='replace')}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {_START_TIMEOUT:g} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


@dataclass
class PypiServer:
    """pypiserver serving (and accepting uploads into) ``packages``, without authentication."""

    packages: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def simple_url(self) -> str:
        return f"{self.url}simple/"

    def start(self) -> PypiServer:
        script = server_script("pypi-server")
        if script is None:
            raise RuntimeError("pypiserver is not installed")
        self.packages.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = self.packages.parent / f"pypiserver-{self.port}.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    script,
                    "run",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--authenticate",
                    ".",
                    "--passwords",
                    ".",
                    "--disable-fallback",
                    "--hash-algo",
                    "sha256",
                    str(self.packages),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(),
            )
        _wait_ready(self.proc, self.simple_url, log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


@dataclass
class Devpi:
    """devpi-server with its data in ``serverdir``; users and indexes made through its API."""

    serverdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    root_password: str = "root-secret"  # noqa: S105 - a throwaway server's

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> Devpi:
        init, server = server_script("devpi-init"), server_script("devpi-server")
        if init is None or server is None:
            raise RuntimeError("devpi-server is not installed")
        log = self.serverdir.parent / "devpi.log"
        subprocess.run(
            [
                init,
                "--serverdir",
                str(self.serverdir),
                "--no-root-pypi",
                "--root-passwd",
                self.root_password,
            ],
            check=True,
            capture_output=True,
            env=_env(),
            timeout=120,
        )
        self.port = free_port()
        command = [
            server,
            "--serverdir",
            str(self.serverdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--offline-mode",
        ]
        # devpi derives its login secret with argon2 at 512 MiB and 16 passes (half a minute
        # on a busy machine); a throwaway server takes the cheapest parameters, where the
        # server knows the (hidden) options
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [*command, *_CHEAP_ARGON2], stdout=out, stderr=subprocess.STDOUT, env=_env()
            )
        time.sleep(0.5)
        if self.proc.poll() is not None:
            with open(log, "wb") as out:
                self.proc = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, env=_env()
                )
        _wait_ready(self.proc, f"{self.url}+api", log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def _auth(self, user: str, password: str) -> dict[str, str]:
        resp = requests.post(
            f"{self.url}+login",
            json={"user": user, "password": password},
            headers={"Accept": "application/json"},
            timeout=30,
        )
        resp.raise_for_status()
        token = resp.json()["result"]["password"]
        return {"X-Devpi-Auth": base64.b64encode(f"{user}:{token}".encode()).decode()}

    def make_index(self, user: str, password: str, index: str) -> str:
        """Create ``user`` (when new) and their ``index`` (no bases); return its upload URL."""
        requests.put(
            f"{self.url}{user}",
            json={"password": password},
            headers={"Accept": "application/json"},
            timeout=30,
        )
        resp = requests.put(
            f"{self.url}{user}/{index}",
            json={"bases": [], "volatile": False},
            headers={"Accept": "application/json", **self._auth(user, password)},
            timeout=30,
        )
        resp.raise_for_status()
        return f"{self.url}{user}/{index}/"
