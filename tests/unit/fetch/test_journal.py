"""The journal records a batch in the catalog only after the batch's files are durable."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from pypidl.fetch.journal import Journal
from pypidl.manifest import Entry
from pypidl.store.catalog import Catalog, Record


class Spy(Catalog):
    def __init__(self, root: Path, calls: list[str]):
        super().__init__(root)
        self.calls = calls

    def add_records(self, project: str, records: list[Record]) -> None:
        self.calls.append(f"record {project} {len(records)}")
        super().add_records(project, records)


class SpyJournal(Journal):
    def __init__(self, catalog: Spy, **kwargs: object):
        super().__init__(catalog, **kwargs)  # type: ignore[arg-type]
        self.spy = catalog

    def _make_durable(self, paths: list[Path]) -> None:
        self.spy.calls.append(f"durable {len(paths)}")
        super()._make_durable(paths)


def published(root: Path, project: str, name: str) -> tuple[Entry, Path]:
    path = root / "packages" / project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = name.encode() * 10
    path.write_bytes(data)
    entry = Entry(
        project=project,
        version="1.0",
        filename=name,
        urls=("http://127.0.0.1:9/x",),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    return entry, path


def test_a_batch_is_durable_before_the_catalog_records_it(tmp_path):
    calls: list[str] = []
    catalog = Spy(tmp_path, calls)
    journal = SpyJournal(catalog, max_batch=3, max_delay=60)
    try:
        for i in range(2):
            entry, path = published(tmp_path, "a", f"a-1.{i}-py3-none-any.whl")
            journal.add(entry, path, os.stat(path))
        assert calls == []  # not a full batch yet, and the timer is far away
        assert Catalog(tmp_path).load("a") == {}
        entry, path = published(tmp_path, "b", "b-1.0-py3-none-any.whl")
        journal.add(entry, path, os.stat(path))  # the third file fills the batch
        assert calls == ["durable 3", "record a 2", "record b 1"]
    finally:
        journal.close()
    records = Catalog(tmp_path).load("a")
    assert sorted(records) == ["a-1.0-py3-none-any.whl", "a-1.1-py3-none-any.whl"]
    assert records["a-1.0-py3-none-any.whl"].proves(
        records["a-1.0-py3-none-any.whl"].entry,
        os.stat(tmp_path / "packages" / "a" / "a-1.0-py3-none-any.whl"),
    )


def test_files_synced_by_their_thread_are_not_synced_again_and_close_commits(tmp_path):
    calls: list[str] = []
    journal = SpyJournal(Spy(tmp_path, calls), max_batch=100, max_delay=60)
    entry, path = published(tmp_path, "big", "big-1.0-py3-none-any.whl")
    journal.add(entry, path, os.stat(path), synced=True)
    journal.close()
    assert calls == ["durable 0", "record big 1"]
    assert list(Catalog(tmp_path).load("big")) == [entry.filename]


def test_the_timer_commits_a_partial_batch(tmp_path):
    calls: list[str] = []
    journal = SpyJournal(Spy(tmp_path, calls), max_batch=100, max_delay=0.05)
    try:
        entry, path = published(tmp_path, "a", "a-1.0-py3-none-any.whl")
        journal.add(entry, path, os.stat(path))
        for _ in range(100):
            if Catalog(tmp_path).load("a"):
                break
            time.sleep(0.05)
        assert list(Catalog(tmp_path).load("a")) == [entry.filename]
    finally:
        journal.close()
