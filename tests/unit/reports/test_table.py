"""broker.reports.table: rows read field by field, shallowly; cells are plain values or string enums only."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from broker.reports.table import table_of
from consent_wire.codes import PurposeOfUse


@dataclass(frozen=True, slots=True)
class _Row:
    name: str
    count: int
    share: float | None
    flagged: bool
    purpose: PurposeOfUse


@dataclass(frozen=True, slots=True)
class _One:
    name: str


@dataclass(frozen=True, slots=True)
class _Nested:
    name: str
    inner: tuple[str, ...]


def test_each_field_is_a_column_and_each_row_its_values_in_field_order() -> None:
    table = table_of(
        "T", _Row, [_Row("a", 2, None, True, PurposeOfUse.TREAT), _Row("b", 0, 0.5, False, PurposeOfUse.HRESCH)]
    )
    assert table.columns == ("name", "count", "share", "flagged", "purpose")
    assert table.rows == (("a", 2, None, True, "TREAT"), ("b", 0, 0.5, False, "HRESCH"))
    assert type(table.rows[0][4]) is str  # the enum's value, not the member


def test_a_one_column_row_type_still_gives_one_cell_tuples() -> None:
    assert table_of("T", _One, [_One("x"), _One("y")]).rows == (("x",), ("y",))


def test_a_value_that_is_not_a_plain_cell_is_refused() -> None:
    with pytest.raises(TypeError, match="unsupported report cell tuple"):
        table_of("T", _Nested, [_Nested("x", ("a",))])
