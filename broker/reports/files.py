"""Writing a governance report to disk: ``<name>.csv`` and ``<name>.json`` beside each other (I/O shell)."""

from __future__ import annotations

from pathlib import Path

from broker.reports.render import render_csv, render_json, render_text
from broker.reports.table import Report

__all__ = ["write_report"]


def write_report(out: Path, name: str, report: Report) -> str:
    """Write the CSV and JSON files of ``report`` into ``out``; returns its terminal table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.csv").write_text(render_csv(report))
    (out / f"{name}.json").write_bytes(render_json(report))
    return render_text(report)
