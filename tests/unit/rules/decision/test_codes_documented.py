"""Every decision code is documented (issue 14 acceptance: docs/decision-rules.md names the codes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent_rules.decision import Code

DOCS = Path(__file__).resolve().parents[4] / "docs"


@pytest.mark.parametrize("doc", ["reason-codes.md", "decision-rules.md"])
def test_every_decision_code_is_documented(doc: str) -> None:
    text = (DOCS / doc).read_text(encoding="utf-8")
    missing = [c.value for c in Code if f"`{c.value}`" not in text]
    assert missing == []
