"""The "Package Synchronization Summary": one row per project, problems first, then totals.

On a terminal the table shows every project with a problem and a screenful of the others
(``-v`` shows all); without a terminal every row is printed.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pypidl.cli._output import format_bytes

if TYPE_CHECKING:
    from pypidl.cli._output import UI
    from pypidl.fetch.pool import RunReport
    from pypidl.manifest import Manifest, Problem

__all__ = ["print_summary"]


def print_summary(ui: UI, manifest: Manifest, report: RunReport | None) -> None:
    """The 'Package Synchronization Summary' the seed promised: one row per project."""
    results: dict[str, list[object]] = {}
    if report is not None:
        for result in report.results:
            results.setdefault(result.entry.project, []).append(result)
    problems = _grouped_problems(manifest.errors)
    grouped = manifest.by_project()
    rows: list[Sequence[object]] = []
    troubled: set[str] = set()
    for name in sorted(set(manifest.projects) | set(grouped) | set(problems)):
        entries = grouped.get(name, [])
        versions = manifest.projects.get(name) or tuple(sorted({e.version for e in entries}))
        size = sum(e.size or 0 for e in entries)
        status, detail = _status(entries, results.get(name, []), problems.get(name, []), report)
        if status not in _FINE:
            troubled.add(name)
        rows.append((name, _versions(versions), len(entries), format_bytes(size), status, detail))
    shown, hidden = _screenful(ui, rows, troubled)
    footer = []
    if hidden:
        footer.append(f"... and {hidden} more project(s) without problems (-v lists every one)")
    footer.append(
        f"Total: {len(rows)} project(s), {len(manifest.entries)} file(s), "
        f"{format_bytes(manifest.total_size)}; {len(troubled)} with problems"
    )
    title = "Package Synchronization Summary" if report is not None else "Plan Summary"
    ui.table(
        title, ("Package", "Version", "Files", "Size", "Status", "Details"), shown, footer=footer
    )
    _print_notes(ui, manifest)
    _print_checks(ui, manifest)
    if report is not None:
        stopped = f", {len(report.stopped)} interrupted" if report.stopped else ""
        ui.info(
            "Done: %d downloaded, %d already verified, %d failed%s; %s fetched",
            len(report.downloaded),
            len(report.skipped),
            len(report.failed),
            stopped,
            # what the mirrors sent, resumed and abandoned transfers included
            format_bytes(sum(stats.bytes for stats in report.mirrors.values())),
        )
        if report.mirrors:
            ui.table(
                "Mirrors",
                ("Mirror", "Files", "Size", "Failures", "Status"),
                [
                    (
                        name,
                        stats.files,
                        format_bytes(stats.bytes),
                        stats.failures,
                        ("set aside" if stats.set_aside else "ok")
                        + (f", {stats.rescued} rescued" if stats.rescued else ""),
                    )
                    for name, stats in sorted(report.mirrors.items())
                ],
            )


def _print_checks(ui: UI, manifest: Manifest) -> None:
    """The warnings of the checks before the gap (status, cooldown, advisories, provenance):
    the table above shows errors only, and these need a reader too."""
    checks = manifest.checks
    if any(checks.get(f"provenance_{k}") for k in ("verified", "unverified", "refused")):
        ui.info(
            "Provenance (PEP 740): %d verified, %d absent, %d refused%s",
            checks.get("provenance_verified", 0),
            checks.get("provenance_absent", 0),
            checks.get("provenance_refused", 0),
            f", {checks['provenance_unverified']} NOT verified (no pypi-attestations)"
            if checks.get("provenance_unverified")
            else "",
        )
    warnings = [p for p in manifest.problems if not p.is_error]
    if warnings:
        ui.table(
            "Warnings",
            ("Package", "Warning"),
            [(p.project, p.reason) for p in warnings],
        )


#: statuses that need no one's attention
_FINE = {"Synchronized", "Planned"}


#: lines around the table on a terminal: bars, the Done line, the mirrors table, the prompt
_SCREEN_MARGIN = 16


def _screenful(
    ui: UI, rows: Sequence[Sequence[object]], troubled: set[str]
) -> tuple[list[Sequence[object]], int]:
    """On a terminal (and without -v): every row with a problem, and as many of the others as
    fit on one screen. Elsewhere (logs, CI): every row.

    :returns: the rows to show, in order, and how many were left out.
    """
    if ui.verbose or not sys.stdout.isatty():
        return list(rows), 0
    room = max(5, shutil.get_terminal_size().lines - _SCREEN_MARGIN)
    fine = [r for r in rows if r[0] not in troubled]
    keep = {id(r) for r in fine[: max(0, room - len(troubled))]}
    shown = [r for r in rows if r[0] in troubled or id(r) in keep]
    return shown, len(rows) - len(shown)


def _versions(versions: Sequence[str]) -> str:
    if len(versions) <= 3:
        return ", ".join(versions) or "-"
    return f"{versions[-1]} (+{len(versions) - 1} more)"


def _grouped_problems(problems: Sequence[Problem]) -> dict[str, list[str]]:
    """Per project, each distinct reason once, with the targets it holds for.

    With 42 targets, one impossible pin is 42 problems that differ only in the target's name;
    the summary says it once ("... (6 targets: cp38-linux-x86_64, ...)"). The log and the
    manifest keep every problem.
    """
    by_project: dict[str, dict[str, list[str]]] = {}
    for p in problems:
        reason = p.reason
        if p.target:
            reason = reason.replace(f" on {p.target}", "").replace(p.target, "the target")
        by_project.setdefault(p.project, {}).setdefault(reason, [])
        if p.target:
            by_project[p.project][reason].append(p.target)
    grouped: dict[str, list[str]] = {}
    for project, reasons in by_project.items():
        for reason, targets in reasons.items():
            if not targets:
                where = ""
            elif len(targets) == 1:
                where = f" ({targets[0]})"
            else:
                shown = ", ".join(targets[:2]) + (", ..." if len(targets) > 2 else "")
                where = f" ({len(targets)} targets: {shown})"
            grouped.setdefault(project, []).append(reason + where)
    return grouped


def _status(entries: list, results: list, problems: list[str], report: object) -> tuple[str, str]:  # type: ignore[type-arg]
    detail_problems = "; ".join(problems[:2]) + (
        f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
    )
    if not entries:
        return ("Failed" if problems else "Empty"), detail_problems or "no file for any target"
    if report is None:
        return (
            "Planned with problems" if problems else "Planned"
        ), detail_problems or f"{len(entries)} file(s)"
    failed = [r for r in results if r.status == "failed"]
    done = [r for r in results if r.status in {"downloaded", "skipped"}]
    if getattr(report, "interrupted", False) and (len(done) < len(entries)):
        return (
            "Interrupted",
            f"{len(done)} of {len(entries)} file(s) processed; run again to resume",
        )
    if failed:
        reason = failed[0].error or "failed"
        more = f" ({len(failed)} of {len(entries)} file(s) failed)" if len(entries) > 1 else ""
        return ("Failed" if not done else "Partial"), reason + more
    if len(done) < len(entries):
        return "Interrupted", f"{len(done)} of {len(entries)} file(s) processed"
    status = "Synchronized" if not problems else "Synchronized with problems"
    return status, detail_problems or f"All {len(entries)} file(s) processed"


def _print_notes(ui: UI, manifest: Manifest) -> None:
    """The releases only one end of a family needed, and the sdists targets would build."""
    ends = [n for n in manifest.notes if n.kind in {"floor-only", "ceiling-only"}]
    if ends:
        ui.table(
            "Releases only one end of a platform family needed",
            ("Release", "Only for", "Targets"),
            [
                (
                    f"{n.project} {n.version}",
                    "the floor" if n.kind == "floor-only" else "the ceiling",
                    _some(n.targets),
                )
                for n in ends
            ],
        )
    builds = [n for n in manifest.notes if n.kind == "build"]
    if builds:
        ui.table(
            "sdists the targets would build (no wheel fits them)",
            ("Release", "Built by", "Building"),
            [(f"{n.project} {n.version}", _some(n.targets), n.detail) for n in builds],
            footer=[
                "Every other target installs from wheels alone. A machine that builds needs "
                "what the last column names."
            ],
        )


def _some(labels: Sequence[str], shown: int = 3) -> str:
    more = len(labels) - shown
    return ", ".join(labels[:shown]) + (f" and {more} more" if more > 0 else "")
