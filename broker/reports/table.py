"""The shape every governance report shares: a titled table of plain cells (pure).

Errors::

    ValidationError (consent_wire.errors)
    +-- ReportInputError     BAD_REPORT_INPUT
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from enum import StrEnum
from operator import attrgetter
from typing import Any, Protocol, TypeAlias

from consent_wire.errors import ValidationError

__all__ = ["Cell", "Report", "ReportInputError", "Table", "table_of"]

Cell: TypeAlias = str | int | float | bool | None


class ReportInputError(ValidationError):
    reason = "BAD_REPORT_INPUT"


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


class Report(Protocol):
    def table(self) -> Table: ...


def table_of(title: str, row_type: type[Any], rows: Iterable[Any]) -> Table:
    """A :class:`Table` whose columns are ``row_type``'s dataclass fields, one row per item."""
    columns = tuple(f.name for f in fields(row_type))
    # the fields read shallowly, not with dataclasses.astuple: that deep-copies every value, and a report's rows
    # are plain cells (_cell refuses anything else); profiled at 2,500 disclosure rows it was most of the answer
    cells = attrgetter(*columns) if len(columns) > 1 else (lambda r: (getattr(r, columns[0]),))
    return Table(title, columns, tuple(tuple(map(_cell, cells(r))) for r in rows))


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _cell(value: object) -> Cell:
    if type(value) in _PLAIN:  # the usual cell, at one set lookup (a report of thousands of rows has many)
        return value  # type: ignore[return-value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    raise TypeError(f"unsupported report cell {type(value).__name__}")
