"""FHIR ``dateTime`` values in a ``Period`` as epoch milliseconds (pure).

FHIR allows a ``dateTime`` to be partial: ``2024``, ``2024-03``, ``2024-03-31`` (no time, no zone), or a
full instant with hours, minutes, seconds and a zone (a time without a zone is invalid FHIR). A partial
value names a whole year, month or day; the rule here (FHIR R4 2.24.0.1 "Period": the start is the
beginning and the end the last moment of the named span) is:

- a partial ``start`` is the first millisecond of that year/month/day in UK time (``Europe/London``,
  so GMT in winter and BST in summer);
- a partial ``end`` covers the whole of that span: the product's periods are half-open
  ``[start, end)``, so the exclusive end is the first millisecond of the *next* year/month/day, UK time;
- a full ``dateTime`` is the instant it names (its own zone); as an ``end`` it is exclusive, as the
  product's export writes it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from consent_wire.errors import FhirInvalidError

__all__ = ["UK_TIME", "period_bound_ms"]

UK_TIME = ZoneInfo("Europe/London")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def period_bound_ms(value: object, *, end: bool, where: str) -> int | None:
    """``value`` (as fhir.resources parsed it: str, date or datetime) as epoch ms; ``where`` names the element."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise FhirInvalidError(f"{where} has a time but no time zone (FHIR requires one)")
        return (value - _EPOCH) // _MS
    if isinstance(value, date):
        year, month, day = value.year, value.month, value.day
        return _local_ms(*_after(year, month, day) if end else (year, month, day))
    match = _PARTIAL.match(str(value))
    if match is None:
        raise FhirInvalidError(f"{where} {str(value)[:40]!r} is not a FHIR dateTime")
    year, month = int(match[1]), int(match[2] or 1)
    day = int(match[3] or 1)
    if not end:
        return _local_ms(year, month, day)
    if match[3]:
        return _local_ms(*_after(year, month, day))
    if match[2]:
        return _local_ms(year + month // 12, month % 12 + 1, 1)
    return _local_ms(year + 1, 1, 1)


def _after(year: int, month: int, day: int) -> tuple[int, int, int]:
    nxt = date(year, month, day) + timedelta(days=1)
    return nxt.year, nxt.month, nxt.day


def _local_ms(year: int, month: int, day: int) -> int:
    try:
        local = datetime(year, month, day, tzinfo=UK_TIME)
    except ValueError as exc:
        raise FhirInvalidError(f"date {year:04d}-{month:02d}-{day:02d} does not exist") from exc
    return (local.astimezone(UTC) - _EPOCH) // _MS
