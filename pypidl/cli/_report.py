"""``--report FILE``: the outcome of a run as JSON, for CI and other programs.

The format is documented in ``docs/report.md``; :data:`REPORT_VERSION` changes when a field
changes meaning or goes away (new fields may be added without a change).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pypidl import __version__
from pypidl._fs import open_output

if TYPE_CHECKING:
    from pypidl.fetch.pool import RunReport
    from pypidl.manifest import Manifest

__all__ = ["REPORT_SCHEMA", "REPORT_VERSION", "build_report", "now", "write_report"]

REPORT_SCHEMA = "pypidl-report"
REPORT_VERSION = 1

#: file statuses, in the order the totals list them
STATUSES = ("downloaded", "skipped", "failed", "interrupted", "not-attempted", "planned")


def now() -> str:
    """The current UTC time as the report writes it (``2026-01-31T12:00:00Z``)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def build_report(
    *,
    command: str,
    manifest: Manifest,
    run: RunReport | None,
    exit_code: int,
    started: str,
    download_dir: str | None = None,
    shard: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The report of one run.

    :param run: what the download engine did; ``None`` for ``plan`` and ``sync --dry-run``
        (every file is then ``planned``).
    :param shard: ``(K, N)`` when the run downloaded one shard.
    """
    results = {} if run is None else {(r.entry.project, r.entry.filename): r for r in run.results}
    files: list[dict[str, Any]] = []
    for entry in manifest.entries:
        result = results.get((entry.project, entry.filename))
        if run is None:
            status, got, mirror, reason, attempts = "planned", 0, None, None, 0
        elif result is None:
            status, got, mirror, reason, attempts = "not-attempted", 0, None, None, 0
        else:
            status = result.status
            got, mirror, reason, attempts = (
                result.bytes,
                result.mirror,
                result.error,
                result.attempts,
            )
        files.append(
            {
                "project": entry.project,
                "version": entry.version,
                "filename": entry.filename,
                "kind": entry.kind,
                "path": entry.relpath,
                "sha256": entry.sha256,
                "size": entry.size,
                "status": status,
                "bytes": got,
                "mirror": mirror,
                "reason": reason,
                "attempts": attempts,
            }
        )
    counts = dict.fromkeys(STATUSES, 0)
    for item in files:
        counts[item["status"]] += 1
    failed_projects = sorted({f["project"] for f in files if f["status"] == "failed"})
    problem_projects = sorted({p.project for p in manifest.errors} | set(failed_projects))
    return {
        "schema": REPORT_SCHEMA,
        "version": REPORT_VERSION,
        "pypidl_version": __version__,
        "command": command,
        "started": started,
        "finished": now(),
        "exit_code": exit_code,
        "interrupted": bool(run is not None and run.interrupted),
        "download_dir": download_dir,
        "shard": list(shard) if shard else None,
        "targets": list(manifest.targets),
        "totals": {
            "projects": len(set(manifest.projects) | {e.project for e in manifest.entries}),
            "files": len(files),
            "size": sum(e.size or 0 for e in manifest.entries),
            **{status.replace("-", "_"): n for status, n in counts.items()},
            "fetched_bytes": 0
            if run is None
            else sum(stats.bytes for stats in run.mirrors.values()),
            "problem_projects": len(problem_projects),
        },
        "problem_projects": problem_projects,
        "checks": dict(manifest.checks),
        "project_status": dict(manifest.project_status),
        "problems": [
            {
                "project": p.project,
                "reason": p.reason,
                "severity": p.severity,
                "target": p.target,
                "requirement": p.requirement,
            }
            for p in manifest.problems
        ],
        "notes": [n.to_json() for n in manifest.notes],
        "mirrors": {}
        if run is None
        else {
            name: {
                "files": stats.files,
                "bytes": stats.bytes,
                "failures": stats.failures,
                "set_aside": stats.set_aside,
            }
            for name, stats in sorted(run.mirrors.items())
        },
        "files": files,
    }


def write_report(path: str, report: dict[str, Any]) -> None:
    """Write ``report`` to ``path`` (atomically, or through a device or FIFO)."""
    with open_output(path, what="report") as fh:
        fh.write(json.dumps(report, indent=1) + "\n")
