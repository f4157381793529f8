"""The bounded record of which events a patient's state has folded in (pure).

A state used to keep the id of every event ever applied: a patient with 30,000 events had a 1 MiB
record, and each event copied the growing set (issue 16). The ledger keeps instead:

- ``recent``: the last :data:`WINDOW` applied events as ``(agent_id, seq, event_id)``, so a
  redelivery is recognised and a second copy of an event id (a retried POST that an agent
  enqueued under another seq and a later HLC, issue 13 item 1) is refused;
- ``marks``: per agent a high-water mark ``(seq, events)``: every state event of that agent for
  this patient with a seq at or below ``seq`` has been folded in, ``events`` of them. Events leave
  ``recent`` into their agent's mark oldest first. The verifier delivers each agent's events
  exactly once and in seq order (dedupe and gap hold on ``(agent, seq)``), and the events topic is
  keyed by patient, so a patient's events of one agent reach the reconciler in seq order: an
  event at or below its agent's mark is a redelivery.
- at most :data:`MAX_AGENTS` marks: beyond that the agents with the fewest events are retired
  into the pseudo-agent ``""`` (count only), which also holds the ids of format-2 records.

``version`` (events folded in) is ``sum(events) + len(recent)``: exact for the in-order streams the
verifier produces. The join (:func:`join`) is pointwise: the larger mark per agent, the union of
``recent`` above the marks, then :func:`normalise` moves the excess into the marks, so it stays
commutative, associative and idempotent for states built from such streams (property tests),
and the record's size is bounded whatever the history: ``WINDOW`` ids plus ``MAX_AGENTS`` marks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

__all__ = ["LEGACY_AGENT", "MAX_AGENTS", "WINDOW", "Applied", "Mark", "admit", "join", "normalise", "version_of"]

# 32 recent ids cover a burst of retries with margin: an agent's outbox is idempotent on event_id
# (issue 13), so a second copy can only come from the same agent's in-flight window, which is far
# smaller; 32 x ~60 B of JSON = ~2 KiB of the 16 KiB record budget (issue 16).
WINDOW = 32
# 64 agents (a site's agent per organisation that ever recorded a consent fact about the patient)
# x ~40 B = ~2.5 KiB; beyond, the smallest are retired into LEGACY_AGENT (count kept).
MAX_AGENTS = 64
LEGACY_AGENT = ""  # no real agent id is empty (consent_wire validates agent ids)


class Applied(NamedTuple):
    """One applied event still in the window (a tuple: hashed and ordered in C, see :func:`admit`)."""

    agent_id: str
    seq: int
    event_id: str


class Mark(NamedTuple):
    """Every event of the agent at or below ``seq`` is folded in; ``events`` of them."""

    seq: int
    events: int


def version_of(marks: Mapping[str, Mark], recent: Iterable[Applied]) -> int:
    return sum(m.events for m in marks.values()) + sum(1 for _ in recent)


def admit(
    marks: Mapping[str, Mark], recent: frozenset[Applied], entry: Applied
) -> tuple[Mapping[str, Mark], frozenset[Applied]] | None:
    """The ledger with ``entry`` added, or ``None`` when it is already folded in (a redelivery)."""
    mark = marks.get(entry.agent_id)
    if entry in recent or (mark is not None and entry.seq <= mark.seq):
        return None
    if len(recent) < WINDOW:
        return marks, recent | {entry}
    if len(recent) == WINDOW:
        return _shift(marks, recent, entry)
    return normalise(marks, recent | {entry})


def _shift(
    marks: Mapping[str, Mark], recent: frozenset[Applied], entry: Applied
) -> tuple[Mapping[str, Mark], frozenset[Applied]]:
    """:func:`normalise` of a full window plus one entry, in one pass (the hot path of a busy patient)."""
    counts = Counter(e.agent_id for e in recent)
    counts[entry.agent_id] += 1
    most = max(counts.values())
    agent = min(a for a, n in counts.items() if n == most)
    oldest = min(e for e in (*recent, entry) if e.agent_id == agent)
    mark = marks.get(agent, Mark(0, 0))
    out = dict(marks)
    out[agent] = Mark(max(mark.seq, oldest.seq), mark.events + 1)
    kept = (recent | {entry}) - {oldest}
    if len(out) > MAX_AGENTS:
        _retire(out, {e.agent_id for e in kept})
    return out, kept


def join(
    a: tuple[Mapping[str, Mark], frozenset[Applied]], b: tuple[Mapping[str, Mark], frozenset[Applied]]
) -> tuple[Mapping[str, Mark], frozenset[Applied]]:
    """The ledger of the union of two states' events (see the module docstring)."""
    marks = dict(a[0])
    for agent, mark in b[0].items():
        current = marks.get(agent)
        if current is None or mark > current:
            marks[agent] = mark
    return normalise(marks, a[1] | b[1])


def normalise(marks: Mapping[str, Mark], recent: frozenset[Applied]) -> tuple[Mapping[str, Mark], frozenset[Applied]]:
    """Drop entries under their agent's mark, then move the oldest entries into the marks until
    ``recent`` fits :data:`WINDOW` and the marks fit :data:`MAX_AGENTS`. Deterministic."""
    kept = frozenset(e for e in recent if (m := marks.get(e.agent_id)) is None or e.seq > m.seq)
    if len(kept) <= WINDOW and len(marks) <= MAX_AGENTS:
        return marks, kept
    out = dict(marks)
    by_agent: dict[str, list[Applied]] = {}
    for e in sorted(kept):
        by_agent.setdefault(e.agent_id, []).append(e)
    excess = len(kept) - WINDOW
    while excess > 0:
        # the agent holding the most of the window gives up its oldest entry (ties: lowest agent id)
        agent = min(by_agent, key=lambda a: (-len(by_agent[a]), a))
        oldest = by_agent[agent].pop(0)
        if not by_agent[agent]:
            del by_agent[agent]
        mark = out.get(agent, Mark(0, 0))
        out[agent] = Mark(max(mark.seq, oldest.seq), mark.events + 1)
        excess -= 1
    _retire(out, by_agent.keys())
    return out, frozenset(e for entries in by_agent.values() for e in entries)


def _retire(marks: dict[str, Mark], in_window: Collection[str]) -> None:
    """Fold the marks of the agents with the fewest events (no entry in the window) into LEGACY_AGENT."""
    while len(marks) > MAX_AGENTS:
        candidates = [a for a in marks if a != LEGACY_AGENT and a not in in_window]
        if not candidates:
            return  # every mark has an entry in the window: WINDOW < MAX_AGENTS makes this unreachable
        agent = min(candidates, key=lambda a: (marks[a].events, a))
        retired = marks.pop(agent)
        legacy = marks.get(LEGACY_AGENT, Mark(0, 0))
        marks[LEGACY_AGENT] = Mark(0, legacy.events + retired.events)
