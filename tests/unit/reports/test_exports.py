"""The reports package exports exactly its modules' public names, sorted as ruff RUF022 sorts them."""

from __future__ import annotations

import importlib

import broker.reports

MODULES = ["breaches", "disclosures", "files", "funnel", "objections", "render", "table"]


def _isort_style(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))


def test_reports_public_api_is_sorted_and_complete() -> None:
    names = broker.reports.__all__
    assert names == _isort_style(names)
    exported: set[str] = set()
    for name in MODULES:
        module = importlib.import_module(f"broker.reports.{name}")
        assert module.__all__ == _isort_style(module.__all__), name
        exported |= set(module.__all__)
    exported.discard("table_of")  # the modules' shared builder, not part of the package's surface
    assert set(names) == exported
    assert all(hasattr(broker.reports, n) for n in names)
