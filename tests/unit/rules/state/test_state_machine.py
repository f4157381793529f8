"""A rule-based state machine for the merge: replicas that apply, redeliver, merge and restart.

Each replica must always equal the reference model of the events it has seen:
all of them sorted by stamp and replayed, each with the best source offset the replica has been told.
"""

from __future__ import annotations

from typing import TypeAlias

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from consent_rules.state import PatientState, Source, Stamp, apply, empty_state, merge
from consent_wire.model import Event

from .strategies import PATIENT, events

REPLICAS = 3  # enough for merges along different paths
replica_ids = st.integers(0, REPLICAS - 1)


Seen: TypeAlias = tuple[Event, Source | None]


def reference(seen: list[Seen]) -> PatientState:
    state = empty_state(PATIENT)
    for event, source in sorted(seen, key=lambda s: Stamp.of(s[0])):
        state = apply(state, event, source)
    return state


class MergeMachine(RuleBasedStateMachine):
    recorded = Bundle("recorded")

    @initialize()
    def start(self) -> None:
        self.replicas = [empty_state(PATIENT) for _ in range(REPLICAS)]
        # per replica: event id -> (event, best source known for it, None if delivered without one)
        self.seen: list[dict[str, Seen]] = [{} for _ in range(REPLICAS)]
        self.sources: dict[str, Source] = {}

    def _see(self, i: int, event: Event, source: Source | None) -> None:
        known = self.seen[i].get(event.event_id)
        kept = known[1] if known is not None and known[1] is not None else source
        self.seen[i][event.event_id] = (event, kept)

    @rule(target=recorded, event=events())
    def record(self, event: Event) -> Event:
        self.sources.setdefault(event.event_id, (len(self.sources) % 6, len(self.sources)))
        return event

    @rule(event=recorded, i=replica_ids, with_source=st.booleans())
    def deliver(self, event: Event, i: int, with_source: bool) -> None:
        source = self.sources[event.event_id] if with_source else None
        self.replicas[i] = apply(self.replicas[i], event, source)
        self._see(i, event, source)

    @rule(event=recorded, i=replica_ids)
    def deliver_twice(self, event: Event, i: int) -> None:
        source = self.sources[event.event_id]
        self.replicas[i] = apply(apply(self.replicas[i], event, source), event, source)
        self._see(i, event, source)

    @rule(src=replica_ids, dst=replica_ids)
    def merge_into(self, src: int, dst: int) -> None:
        self.replicas[dst] = merge(self.replicas[dst], self.replicas[src])
        for event, source in list(self.seen[src].values()):
            self._see(dst, event, source)

    @rule(i=replica_ids)
    def restart_from_state_topic(self, i: int) -> None:
        self.replicas[i] = PatientState.from_bytes(self.replicas[i].to_bytes())

    @invariant()
    def each_replica_matches_the_reference(self) -> None:
        for state, seen in zip(self.replicas, self.seen, strict=True):
            assert state.to_bytes() == reference(list(seen.values())).to_bytes()


MergeMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_merge_machine = MergeMachine.TestCase
