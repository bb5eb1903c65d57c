"""A private certificate authority for tests, made with the ``openssl`` command.

:func:`make_pki` writes a CA, a server certificate for ``127.0.0.1`` (an IP subjectAltName, which
is what a TLS client checks for an address) and a client certificate signed by that CA;
:func:`server_context` turns them into the ``ssl.SSLContext`` an
:class:`~tests.lib.server.IndexServer` serves with.  Keys are EC P-256: quick to make.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PKI", "make_pki", "openssl_path", "server_context"]

_SERVER_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
_CLIENT_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class PKI:
    """Paths of the PEM files :func:`make_pki` wrote."""

    ca: Path  #: the CA certificate: what a client is told to trust (``--cert``)
    server_cert: Path
    server_key: Path
    client: Path  #: the client certificate and its key in one file (``--client-cert``)
    other_ca: Path  #: an unrelated CA, which trusts nothing the server presents


def openssl_path() -> str | None:
    return shutil.which("openssl")


def _run(openssl: str, *args: str, cwd: Path) -> None:
    subprocess.run(
        [openssl, *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60
    )


def _key(openssl: str, name: str, cwd: Path) -> str:
    path = f"{name}.key"
    _run(openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", path, cwd=cwd)  # fmt: skip
    return path


def _self_signed_ca(openssl: str, name: str, cwd: Path) -> tuple[str, str]:
    key = _key(openssl, name, cwd)
    cert = f"{name}.pem"
    _run(openssl, "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "2",
         "-subj", f"/CN=pypidl test {name}", "-sha256",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)  # fmt: skip
    return cert, key


def _signed(
    openssl: str, name: str, subject: str, ext: str, ca: tuple[str, str], serial: int, cwd: Path
) -> tuple[str, str]:
    key = _key(openssl, name, cwd)
    csr = f"{name}.csr"
    _run(openssl, "req", "-new", "-key", key, "-out", csr, "-subj", subject, cwd=cwd)
    (cwd / f"{name}.ext").write_text(ext, encoding="ascii")
    cert = f"{name}.pem"
    _run(openssl, "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
         "-set_serial", str(serial), "-days", "2", "-sha256", "-extfile", f"{name}.ext",
         "-out", cert, cwd=cwd)  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> PKI:
    """Write a CA, a server certificate for 127.0.0.1 and a client certificate into ``directory``.

    :raises FileNotFoundError: when there is no ``openssl`` command (tests skip then).
    """
    openssl = openssl_path()
    if openssl is None:
        raise FileNotFoundError("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca = _self_signed_ca(openssl, "ca", directory)
    other = _self_signed_ca(openssl, "other-ca", directory)
    server = _signed(openssl, "server", "/CN=127.0.0.1", _SERVER_EXT, ca, 1001, directory)
    client = _signed(openssl, "client", "/CN=pypidl test client", _CLIENT_EXT, ca, 1002, directory)
    bundle = directory / "client-bundle.pem"
    bundle.write_text(
        (directory / client[0]).read_text("ascii") + (directory / client[1]).read_text("ascii"),
        encoding="ascii",
    )
    return PKI(
        ca=directory / ca[0],
        server_cert=directory / server[0],
        server_key=directory / server[1],
        client=bundle,
        other_ca=directory / other[0],
    )


def server_context(pki: PKI, *, require_client_cert: bool = False) -> ssl.SSLContext:
    """A TLS server context presenting the 127.0.0.1 certificate.

    :param require_client_cert: refuse clients without a certificate signed by the test CA.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(pki.ca))
    return context
