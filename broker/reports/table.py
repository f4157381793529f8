"""The shape every governance report shares: a titled table of plain cells (pure).

Errors::

    ValidationError (consent_wire.errors)
    +-- ReportInputError     BAD_REPORT_INPUT
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from enum import StrEnum
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
    return Table(title, columns, tuple(tuple(_cell(v) for v in astuple(r)) for r in rows))


def _cell(value: object) -> Cell:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    raise TypeError(f"unsupported report cell {type(value).__name__}")
