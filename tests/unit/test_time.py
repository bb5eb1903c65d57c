"""``--exclude-newer`` values and PEP 700 upload times, parsed by one function."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pypidl._time import parse_cutoff, parse_iso_time, pep700_time
from pypidl.errors import BadInputError

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=timezone.utc)),
        ("2025-01-31T12:30:00Z", datetime(2025, 1, 31, 12, 30, tzinfo=timezone.utc)),
        ("2025-01-31T14:30:00+02:00", datetime(2025, 1, 31, 12, 30, tzinfo=timezone.utc)),
        ("7d", NOW - timedelta(days=7)),
        ("1d12h", NOW - timedelta(hours=36)),
        ("2w", NOW - timedelta(weeks=2)),
    ],
)
def test_cutoffs(text: str, expected: datetime) -> None:
    assert parse_cutoff(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "soon", "7", "d7", "2025-02-30", "7d garbage"])
def test_bad_cutoffs(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_cutoff(text, now=NOW)


def test_upload_times_compare_across_zones_and_precisions() -> None:
    a = parse_iso_time("2024-05-01T10:00:00.123456789Z")
    b = parse_iso_time("2024-05-01 12:00:00.123456+02:00")
    assert a == b
    assert parse_iso_time(None) is None
    assert pep700_time("2024-05-01T10:00:00") == "2024-05-01T10:00:00.000000Z"
