"""Choosing the events a report counts: each event once, in merge order, within a period (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from consent_wire.model import Event

__all__ = ["merge_order", "unique", "within"]


def unique(events: Iterable[Event]) -> list[Event]:
    """Each event id once (a replayed or duplicated event counts once)."""
    return list({e.event_id: e for e in events}.values())


def merge_order(e: Event) -> tuple[int, str, str]:
    """The order the state merge applies events in: ``(hlc, agent_id, event_id)``."""
    return (e.hlc, e.agent_id, e.event_id)


def within(ms: int, from_ms: int | None, to_ms: int | None) -> bool:
    """``ms`` in ``[from_ms, to_ms)``; an open end when ``None``."""
    return (from_ms is None or ms >= from_ms) and (to_ms is None or ms < to_ms)
