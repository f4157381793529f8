"""The subscriber contract: a committed JSON Schema (2020-12) per topic a subscriber reads (package data).

``<topic>/v<N>.json`` for ``state``, ``shielding``, ``audit``, ``deadletter`` (the headers, as the subscriber
decodes them), ``replica`` (a site feed's signed payload) and ``reports`` (the report aggregates, issue 16).
Evolution is FULL_TRANSITIVE, as for the Avro event schemas: every version reads every other version's records (same
required properties, same types and enums of shared properties; a new property is optional; readers ignore unknown
properties). A test checks every pair of committed versions, and that what the product writes validates against the
latest (``tests/unit/wire``). Pure: reading package data only; validation itself is the caller's
(``broker.subscribe`` uses jsonschema)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["TOPICS", "latest", "versions"]

TOPICS = ("state", "shielding", "audit", "deadletter", "replica", "reports")


def versions(topic: str) -> dict[int, dict[str, Any]]:
    """Every committed version of ``topic``'s schema, by version number."""
    if topic not in TOPICS:
        raise ValueError(f"no schema for topic {topic!r}; topics are {', '.join(TOPICS)}")
    folder = resources.files(__name__) / topic
    found: dict[int, dict[str, Any]] = {}
    for item in folder.iterdir():
        if item.name.startswith("v") and item.name.endswith(".json"):
            found[int(item.name[1:-5])] = json.loads(item.read_text(encoding="utf-8"))
    return dict(sorted(found.items()))


def latest(topic: str) -> dict[str, Any]:
    """The newest committed schema of ``topic``."""
    return list(versions(topic).values())[-1]
