"""Rendering a report: a plain-text table for a terminal, RFC 4180 CSV, and JSON (pure)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from broker.reports.table import Cell, Report

__all__ = ["render_csv", "render_json", "render_text", "report_object"]


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_text(report: Report) -> str:
    """A plain-text table for a terminal: title, header, rule, rows (numbers right-aligned)."""
    t = report.table()
    cells = [[_text(v) for v in row] for row in t.rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(t.columns)]
    numeric = [bool(t.rows) and all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in t.rows)
               for i in range(len(t.columns))]  # fmt: skip

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [t.title, line(list(t.columns)), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(out) + "\n"


def render_csv(report: Report) -> str:
    """RFC 4180 CSV with a header row; floats in full precision, booleans as true/false."""
    t = report.table()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(t.columns)
    for row in t.rows:
        writer.writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row])
    return buf.getvalue()


def render_json(report: Report) -> bytes:
    """``{"title": ..., "columns": [...], "rows": [{column: value}, ...]}`` as UTF-8 JSON."""
    return orjson.dumps(report_object(report))


def report_object(report: Report) -> dict[str, Any]:
    """What :func:`render_json` encodes, as an object (an API answer adds to it without a decode and re-encode)."""
    t = report.table()
    rows = [dict(zip(t.columns, row, strict=True)) for row in t.rows]
    return {"title": t.title, "columns": list(t.columns), "rows": rows}
