"""``publish``: put a mirror's verified files into a repository, and prove they are served.

1. The files: every file the mirror's catalog holds verified (or a manifest's share of them);
   a file whose stat no longer matches its catalog line is rehashed first.
2. What the repository holds: its project pages, read once.  A file it lists with the same
   sha256 is already there; with another sha256 it is a conflict, named and never overwritten.
3. The rest is uploaded, concurrently, each with the engine's back-off between attempts.  An
   upload refused because the file exists (another upload won a race) is settled by reading
   the page again.
4. The pages of the projects that got uploads are read again: every file uploaded or already
   there must be listed with its sha256 (a listing without digests is checked by fetching the
   file); the other projects' files were just found there with theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests

from pypidl.config import NetworkSettings
from pypidl.errors import PypidlError, UnsafeFilenameError
from pypidl.fetch.retry import backoff_delay, http_reason, retry_after_seconds
from pypidl.hashing import file_sha256
from pypidl.manifest import Entry
from pypidl.publish.forms import MultipartBody, UploadForm, upload_form
from pypidl.publish.repository import Holdings, Repository, read_holdings, served_sha256
from pypidl.session import describe_error, new_session
from pypidl.sources import redact_url
from pypidl.stopping import _STOPPING, RequestCancelled, interrupt_waits
from pypidl.store.catalog import Catalog

__all__ = ["STATUSES", "FileOutcome", "PublishReport", "mirror_files", "publish"]

log = logging.getLogger(__name__)

#: what became of a file, in the order summaries list them
STATUSES = ("uploaded", "present", "conflict", "failed")

#: statuses of files the repository should serve afterwards
_SERVED = {"uploaded", "present"}


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file: ``status`` is one of :data:`STATUSES`; ``served`` is the
    read-back's verdict (None: not checked), ``reason`` says why it failed or conflicts."""

    entry: Entry
    status: str
    reason: str | None = None
    attempts: int = 0
    served: bool | None = None


@dataclass
class PublishReport:
    """The outcome of a publish run."""

    repository: Repository
    outcomes: list[FileOutcome] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def not_served(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.served is False]

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(
            o.status in _SERVED and o.served is not False for o in self.outcomes
        )


def mirror_files(
    root: Path, entries: Sequence[Entry] | None
) -> tuple[list[tuple[Entry, Path]], list[FileOutcome]]:
    """The files to publish, each with its path, and the ones that cannot be.

    :param entries: a manifest's share; ``None``: every file the catalog holds.
    """
    catalog = Catalog(root)
    ready: list[tuple[Entry, Path]] = []
    refused: list[FileOutcome] = []
    projects = sorted({e.project for e in entries}) if entries is not None else catalog.projects()
    for project in projects:
        try:
            records = catalog.load(project)
        except UnsafeFilenameError as exc:
            refused.extend(
                FileOutcome(e, "failed", str(exc)) for e in entries or () if e.project == project
            )
            continue
        wanted = (
            [e for e in entries if e.project == project]
            if entries is not None
            else [r.entry for _, r in sorted(records.items())]
        )
        for entry in wanted:
            record = records.get(entry.filename)
            if record is None:
                refused.append(FileOutcome(entry, "failed", "not in the mirror"))
                continue
            if record.entry.sha256 != entry.sha256:
                refused.append(FileOutcome(entry, "failed", "the mirror holds other bytes"))
                continue
            path = catalog.file_path(record.entry)
            problem = _unproven(catalog, record.entry, path, records)
            if problem:
                refused.append(FileOutcome(entry, "failed", problem))
            else:
                ready.append((record.entry, path))
    return ready, refused


def _unproven(catalog: Catalog, entry: Entry, path: Path, records: dict) -> str | None:  # type: ignore[type-arg]
    """Why the file at ``path`` cannot be published as ``entry`` (None: it can)."""
    if catalog.current(entry, records):
        return None
    try:
        actual = file_sha256(path)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if actual != entry.sha256:
        return f"changed since it was verified (sha256 {actual}); run 'pypidl verify'"
    return None


@dataclass(frozen=True)
class PublishOptions:
    """How to publish: uploads in flight, and what to call for each file's outcome."""

    concurrency: int = 8
    on_outcome: Callable[[FileOutcome], None] | None = None


def publish(
    repository: Repository,
    files: Sequence[tuple[Entry, Path]],
    net: NetworkSettings,
    *,
    options: PublishOptions | None = None,
) -> PublishReport:
    """Upload what ``repository`` lacks of ``files`` and check it serves them all afterwards."""
    options = options or PublishOptions()
    report = PublishReport(repository)
    session = new_session(net, pool_size=options.concurrency)
    projects = {e.project for e, _ in files}
    holdings = read_holdings(
        repository, net, projects, session=session, workers=options.concurrency
    )
    todo: list[tuple[Entry, Path]] = []
    for entry, path in files:
        held = holdings[entry.project]
        outcome = _compare(session, net, entry, held)
        if outcome is None:
            todo.append((entry, path))
        else:
            _record(report, options, outcome)
    uploader = _Uploader(session, repository, net)
    pool = ThreadPoolExecutor(max_workers=max(1, min(options.concurrency, len(todo) or 1)))
    try:
        futures = [pool.submit(uploader.upload, entry, path) for entry, path in todo]
        for future in futures:
            _record(report, options, future.result())
    except (KeyboardInterrupt, RequestCancelled):
        # uploads in flight finish (or time out); none starts, no wait for a retry goes on
        interrupt_waits()
        report.interrupted = True
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if not report.interrupted:
        _read_back(report, session, net, options.concurrency)
    return report


def _record(report: PublishReport, options: PublishOptions, outcome: FileOutcome) -> None:
    report.outcomes.append(outcome)
    if options.on_outcome is not None:
        options.on_outcome(outcome)


def _compare(
    session: requests.Session, net: NetworkSettings, entry: Entry, held: Holdings
) -> FileOutcome | None:
    """The outcome for a file the repository already has (or whose page failed); None: upload."""
    if held.error is not None:
        return FileOutcome(entry, "failed", held.error)
    listed = held.files.get(entry.filename)
    if listed is None:
        return None
    digest, url = listed
    if digest is None:  # a listing without digests: the served bytes decide
        try:
            digest = served_sha256(session, url, net)
        except requests.RequestException as exc:
            return FileOutcome(
                entry, "failed", f"listed, but cannot be fetched: {describe_error(exc)}"
            )
    if digest == entry.sha256:
        return FileOutcome(entry, "present")
    return FileOutcome(
        entry,
        "conflict",
        f"the repository holds {entry.filename} with sha256 {digest}, the mirror {entry.sha256}; "
        "not overwritten",
    )


class _Uploader:
    """Uploads one file at a time per thread, retrying what may succeed later."""

    def __init__(self, session: requests.Session, repository: Repository, net: NetworkSettings):
        self.session = session
        self.repository = repository
        self.net = net

    def upload(self, entry: Entry, path: Path) -> FileOutcome:
        try:
            form = upload_form(path, entry.filename, entry.sha256)
        except PypidlError as exc:
            return FileOutcome(entry, "failed", exc.message)
        attempt = 0
        while True:
            attempt += 1
            reason, retry_after, exists = self._attempt(form, entry, path)
            if reason is None:
                return FileOutcome(entry, "uploaded", attempts=attempt)
            if exists:
                return self._settle(entry, reason, attempt)
            if retry_after is False or attempt >= self.net.retries:
                return FileOutcome(entry, "failed", reason, attempts=attempt)
            delay = backoff_delay(attempt, self.net.backoff, retry_after=retry_after or None)
            log.debug("upload of %s failed (%s); again in %.1f s", entry.filename, reason, delay)
            if _STOPPING.wait(delay):
                raise RequestCancelled("the run is stopping")

    def _attempt(
        self, form: UploadForm, entry: Entry, path: Path
    ) -> tuple[str | None, float | bool | None, bool]:
        """One POST: ``(failure reason or None, retry-after seconds / False: final, exists)``."""
        body = MultipartBody(form, path, entry.sha256)
        try:
            resp = self.session.post(
                self.repository.upload_url,
                data=body,
                headers={"Content-Type": body.content_type},
                timeout=(self.net.connect_timeout, self.net.read_timeout),
                allow_redirects=False,
            )
        except PypidlError as exc:  # the file changed under the upload
            return exc.message, False, False
        except requests.RequestException as exc:
            return describe_error(exc), None, False
        finally:
            body.close()
        with resp:
            status = resp.status_code
            if 200 <= status < 300:
                return None, None, False
            text = _excerpt(resp)
            reason = f"{http_reason(resp)}{': ' + text if text else ''}"
            if status == 409 or (status == 400 and "exist" in text.lower()):
                return reason, False, True
            if 300 <= status < 400:
                where = redact_url(resp.headers.get("Location", "?"))
                return (
                    f"{http_reason(resp)}: the upload URL redirects to {where}; give that URL",
                    False,
                    False,
                )
            if status in (401, 403):
                return (
                    f"{reason} (credentials: in the URL, .netrc, or TWINE_USERNAME and "
                    "TWINE_PASSWORD)",
                    False,
                    False,
                )
            if status == 429 or status >= 500 or status == 408:
                return reason, retry_after_seconds(resp.headers.get("Retry-After")), False
            return reason, False, False

    def _settle(self, entry: Entry, reason: str, attempts: int) -> FileOutcome:
        """The repository says the file exists: its page says whether with these bytes."""
        held = read_holdings(
            self.repository, self.net, [entry.project], session=self.session, workers=1
        )
        outcome = _compare(self.session, self.net, entry, held[entry.project])
        if outcome is None:  # refused as existing, yet not listed
            return FileOutcome(entry, "failed", reason, attempts=attempts)
        return replace(outcome, attempts=attempts)


def _excerpt(resp: requests.Response, limit: int = 200) -> str:
    """The first line of a refusal's body, short and printable (servers explain themselves
    there: "File already exists", a layout rule)."""
    try:
        head = next(resp.iter_content(4096), b"")
    except requests.RequestException:
        return ""
    text = head.decode("utf-8", errors="replace")
    if "<" in text and ">" in text:  # an HTML page: its title, when it has one
        start, end = text.lower().find("<title>"), text.lower().find("</title>")
        text = text[start + 7 : end] if 0 <= start < end else ""
    line = " ".join(text.split())
    return line[:limit]


def _read_back(
    report: PublishReport, session: requests.Session, net: NetworkSettings, workers: int
) -> None:
    """Read again the pages of the projects that got uploads: each of their files must be
    served with its sha256.  A project nothing was uploaded to was read moments ago, and its
    files found there with their sha256: reading it again would prove nothing more (and a
    re-run over a complete repository would pay every page twice)."""
    touched = {o.entry.project for o in report.outcomes if o.status == "uploaded"}
    holdings = read_holdings(report.repository, net, touched, session=session, workers=workers)
    for n, outcome in enumerate(report.outcomes):
        if outcome.status not in _SERVED:
            continue
        if outcome.entry.project not in touched:
            report.outcomes[n] = replace(outcome, served=True)
            continue
        again = _compare(session, net, outcome.entry, holdings[outcome.entry.project])
        if again is not None and again.status == "present":
            report.outcomes[n] = replace(outcome, served=True)
        else:
            why = "not listed" if again is None else again.reason
            report.outcomes[n] = replace(
                outcome, served=False, reason=f"not served afterwards: {why}"
            )
