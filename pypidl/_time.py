"""Moments in time as indexes write them (PEP 700 ``upload-time``) and as users give them
(``--exclude-newer``): one parser for both, so a cutoff and an upload time compare exactly."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from pypidl.errors import BadInputError

__all__ = ["parse_cutoff", "parse_iso_time", "pep700_time"]

_ISO_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?(Z|[+-]\d\d:?\d\d)?",
    re.IGNORECASE,
)
_DURATION = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_iso_time(value: object) -> datetime | None:
    """``value`` (an ISO 8601 date or timestamp) as an aware UTC datetime, or ``None``.

    A timestamp without a zone is UTC (PEP 700 times always are); a date alone is its midnight.
    """
    if not isinstance(value, str):
        return None
    m = _ISO_TIME.fullmatch(value.strip())
    if m is None:
        return None
    year, month, day = (int(g) for g in m.groups()[:3])
    hour, minute, second = (int(g or 0) for g in m.groups()[3:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    zone = m.group(8)
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc)


def pep700_time(value: str | None) -> str | None:
    """``value`` as PEP 700 writes it (``yyyy-mm-ddThh:mm:ss.ffffffZ``), or ``None``."""
    moment = parse_iso_time(value)
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_cutoff(text: str, *, now: datetime | None = None) -> datetime:
    """The moment ``--exclude-newer`` names: a date (``2025-01-31``), a timestamp
    (``2025-01-31T12:00:00Z``), or a duration back from now (``7d``, ``36h``, ``2w``, ``1d12h``).

    :raises BadInputError: for anything else.
    """
    stripped = text.strip()
    moment = parse_iso_time(stripped)
    if moment is not None:
        return moment
    parts = _DURATION.findall(stripped)
    if parts and "".join(f"{n}{u}" for n, u in parts) == stripped.replace(" ", ""):
        seconds = sum(int(n) * _UNITS[u.lower()] for n, u in parts)
        return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
    raise BadInputError(
        f"--exclude-newer {text!r} is not a date, a timestamp or a duration",
        hint="e.g. 2025-01-31, 2025-01-31T12:00:00Z, or 7d (also s, m, h, w)",
    )
