"""PEP 740 provenance, checked before a file may cross: fetched, verified offline, or refused.

Where a page names a file's provenance, the planner fetches it and verifies every attestation in
it against the file's name and sha256 (the digest the download later checks every byte against)
and against the publisher identity the provenance names (a GitHub, GitLab, Google or CircleCI
trusted publisher), with ``pypi-attestations`` and the Sigstore trust root that ships with
``sigstore`` (offline: no TUF refresh).  A file whose provenance fails is refused; one whose
provenance verified carries the provenance's sha256 in the manifest, and the download keeps
exactly those bytes beside it as ``<file>.provenance``.

Without the ``provenance`` extra the documents are still fetched and kept, but marked
``unverified``, and the run says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import requests

from pypidl.hashing import bytes_sha256
from pypidl.manifest import Problem
from pypidl.session import describe_error

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from pypidl.config import NetworkSettings
    from pypidl.manifest import Entry, Manifest

__all__ = [
    "MAX_PROVENANCE_BYTES",
    "ProvenanceCheck",
    "check_all",
    "verifier_available",
    "verify_document",
    "with_provenance",
]

log = logging.getLogger(__name__)

#: a provenance holds a few attestations of a few KiB each; anything this large is not one
MAX_PROVENANCE_BYTES = 4 * 1024 * 1024

VERIFIED, UNVERIFIED, REFUSED, ABSENT = "verified", "unverified", "refused", "absent"


@dataclass(frozen=True)
class ProvenanceCheck:
    """What became of one file's provenance."""

    status: str  # verified | unverified | refused | absent
    sha256: str | None = None  # of the provenance document that was checked
    reason: str | None = None  # why it was refused
    publisher: str | None = None  # the identity it names, for the log and report


def verifier_available() -> bool:
    """Whether ``pypi-attestations`` (the ``provenance`` extra) is installed."""
    import importlib.util

    # found, not imported: importing it loads sigstore and cryptography (seconds)
    return importlib.util.find_spec("pypi_attestations") is not None


def verify_document(data: bytes, filename: str, sha256: str) -> tuple[str | None, str | None]:
    """Verify a PEP 740 provenance document offline.

    :returns: ``(None, publisher)`` when every attestation verifies for ``filename`` with
        ``sha256`` and the publisher each bundle names, else ``(reason, publisher)``.
    """
    import pypi_attestations as pa
    from pydantic import ValidationError

    # sigstore says at every call that offline mode skips the TUF refresh; that is the point
    logging.getLogger("sigstore").setLevel(logging.ERROR)
    try:
        provenance = pa.Provenance.model_validate_json(data)
        dist = pa.Distribution(name=filename, digest=sha256)
    except (ValidationError, ValueError) as exc:
        return f"not a PEP 740 provenance ({_first_line(exc)})", None
    publishers: list[str] = []
    checked = 0
    for bundle in provenance.attestation_bundles:
        publisher = _describe(bundle.publisher)
        publishers.append(publisher)
        for attestation in bundle.attestations:
            try:
                attestation.verify(bundle.publisher, dist, offline=True)
            except Exception as exc:
                return f"does not verify for {publisher}: {_first_line(exc)}", publisher
            checked += 1
    named = ", ".join(publishers) or None
    if checked == 0:
        return "holds no attestation", named
    return None, named


def _describe(publisher: Any) -> str:
    fields = publisher.model_dump(exclude_none=True)
    kind = fields.pop("kind", "publisher")
    return f"{kind} " + " ".join(f"{k}={v}" for k, v in sorted(fields.items()))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def check_all(
    files: Iterable[tuple[str, str, str]],
    session: requests.Session,
    net: NetworkSettings,
    *,
    workers: int = 16,
) -> dict[str, ProvenanceCheck]:
    """Fetch and check the provenance of each ``(filename, sha256, provenance URL)``.

    :returns: filename -> its check (refused when it cannot be fetched, is too large, or fails).
    """
    items: Sequence[tuple[str, str, str]] = list(files)
    if not items:
        return {}
    verify = verifier_available()

    def one(item: tuple[str, str, str]) -> tuple[str, ProvenanceCheck]:
        filename, sha256, url = item
        try:
            data = _fetch(url, session, net)
        except (requests.RequestException, ValueError) as exc:
            return filename, ProvenanceCheck(REFUSED, reason=f"cannot fetch: {describe_error(exc)}")
        digest = bytes_sha256(data)
        if not verify:
            return filename, ProvenanceCheck(UNVERIFIED, sha256=digest)
        reason, publisher = verify_document(data, filename, sha256)
        if reason is not None:
            return filename, ProvenanceCheck(REFUSED, digest, reason, publisher)
        return filename, ProvenanceCheck(VERIFIED, digest, None, publisher)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return dict(pool.map(one, items))


def _fetch(url: str, session: requests.Session, net: NetworkSettings) -> bytes:
    with session.get(url, timeout=(net.connect_timeout, net.read_timeout), stream=True) as resp:
        resp.raise_for_status()
        chunks: list[bytes] = []
        total = 0
        for chunk in resp.iter_content(64 * 1024):
            total += len(chunk)
            if total > MAX_PROVENANCE_BYTES:
                raise ValueError("larger than 4 MiB")
            chunks.append(chunk)
    return b"".join(chunks)


def with_provenance(
    manifest: Manifest, results: Mapping[str, ProvenanceCheck], require: Collection[str]
) -> Manifest:
    """``manifest`` without the files whose provenance check refused them (or that have none
    while their project is in ``require``), the others marked with what the check said, and
    the counts in its checks.

    :param results: filename -> the check of its provenance (:func:`check_all`)
    """
    counts = dict.fromkeys(("verified", "unverified", "absent", "refused"), 0)
    kept: list[Entry] = []
    problems: list[Problem] = []
    for e in manifest.entries:
        found = results.get(e.filename) if e.provenance_url else None
        if found is None:
            counts["absent"] += 1
            if e.project in require:
                counts["refused"] += 1
                problems.append(
                    Problem(
                        e.project,
                        f"{e.filename}: refused, the index serves no "
                        "provenance for it (--require-provenance)",
                    )
                )
                continue
            kept.append(e)
            continue
        counts[found.status] += 1
        if found.status == "refused":
            problems.append(
                Problem(e.project, f"{e.filename}: refused, its provenance {found.reason}")
            )
            continue
        kept.append(replace(e, provenance_sha256=found.sha256, provenance=found.status))
    if counts["unverified"]:
        problems.append(
            Problem(
                "(provenance)",
                f"{counts['unverified']} provenance document(s) kept but NOT verified: "
                "install pypidl[provenance] (pypi-attestations) to verify them",
                severity="warning",
            )
        )
    checks = {f"provenance_{k}": n for k, n in counts.items()}
    return replace(
        manifest,
        entries=tuple(kept),
        problems=(*manifest.problems, *problems),
        checks={**manifest.checks, **checks},
    )
