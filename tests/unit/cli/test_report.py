"""``--report`` JSON: every manifest file gets one status, totals add up, nothing but the
manifest's files appear, and a plan without a download says "planned"."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pypidl.cli._report import REPORT_SCHEMA, REPORT_VERSION, build_report, write_report
from pypidl.fetch.pool import RunReport
from pypidl.fetch.results import DOWNLOADED, FAILED, SKIPPED, FileResult
from pypidl.fetch.retry import MirrorStats
from pypidl.manifest import Entry, Manifest


def _entry(project: str, filename: str) -> Entry:
    return Entry(
        project=project,
        version="1.0",
        filename=filename,
        urls=(f"http://127.0.0.1:1/{filename}",),
        sha256=hashlib.sha256(filename.encode()).hexdigest(),
        size=100,
    )


A, B, C, D = (
    _entry("alpha", "alpha-1.0-py3-none-any.whl"),
    _entry("beta", "beta-1.0.tar.gz"),
    _entry("gamma", "gamma-1.0-py3-none-any.whl"),
    _entry("delta", "delta-1.0-py3-none-any.whl"),
)
MANIFEST = Manifest(entries=(A, B, C, D), projects={"epsilon": ()})


def test_each_file_gets_its_status_and_the_totals_add_up() -> None:
    run = RunReport(
        results=[
            FileResult(A, DOWNLOADED, 100, "127.0.0.1:1", None, 1),
            FileResult(B, FAILED, 0, None, "HTTP 404", 3),
            FileResult(C, SKIPPED),
        ],
        mirrors={"127.0.0.1:1": MirrorStats(files=1, bytes=100)},
    )
    report = build_report(
        command="download", manifest=MANIFEST, run=run, exit_code=1, started="2026-01-01T00:00:00Z"
    )
    assert (report["schema"], report["version"]) == (REPORT_SCHEMA, REPORT_VERSION)
    by_name = {f["filename"]: f for f in report["files"]}
    assert by_name[A.filename]["status"] == "downloaded"
    assert by_name[A.filename]["bytes"] == 100
    assert by_name[B.filename]["status"] == "failed"
    assert by_name[B.filename]["reason"] == "HTTP 404"
    assert by_name[B.filename]["attempts"] == 3
    assert by_name[C.filename]["status"] == "skipped"
    assert by_name[D.filename]["status"] == "not-attempted"
    totals = report["totals"]
    assert totals["files"] == 4
    assert totals["projects"] == 5  # epsilon has no file but is part of the plan
    assert (totals["downloaded"], totals["failed"], totals["skipped"]) == (1, 1, 1)
    assert totals["not_attempted"] == 1
    assert totals["fetched_bytes"] == 100
    assert report["problem_projects"] == ["beta"]
    assert report["exit_code"] == 1


def test_a_plan_without_a_download_is_all_planned(tmp_path: Path) -> None:
    report = build_report(command="plan", manifest=MANIFEST, run=None, exit_code=0, started="x")
    assert {f["status"] for f in report["files"]} == {"planned"}
    assert report["totals"]["planned"] == 4
    assert report["interrupted"] is False
    out = tmp_path / "report.json"
    write_report(str(out), report)
    assert json.loads(out.read_text(encoding="utf-8")) == report
