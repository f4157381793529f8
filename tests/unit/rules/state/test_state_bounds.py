"""Issue 16: a state record is bounded whatever the patient's history, and the merge stays a join.

The verifier delivers each agent's events exactly once and in seq order, and the events topic is
keyed by patient, so the streams here are per-agent in seq order (gaps: an agent's seq counts its
events about every patient), interleaved arbitrarily, with redeliveries.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from functools import reduce
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consent_io.kafka import MAX_REQUEST_BYTES
from consent_rules.state import PatientState, apply, empty_state, ledger, merge
from consent_rules.state.ledger import MAX_AGENTS, WINDOW, Applied
from consent_wire.codes import ConsentDirective, DataClass, ObjectionAction, ObjectionKind, PurposeOfUse
from consent_wire.model import ConsentDecision, Event, Objection

from .strategies import BASE_MS, PATIENT, events, hlc_of

MAX_RECORD_BYTES = 16 * 1024  # issue 16 goal: largest state record <= 16 KiB whatever the history
BOUND_SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def agent_streams(draw: st.DrawFn, max_agents: int = 5, max_len: int = 30) -> list[list[Event]]:
    """Per agent, its events about PATIENT in seq order (seqs increase with gaps)."""
    streams = []
    for n in range(draw(st.integers(1, max_agents))):
        seq = 0
        stream = []
        for e in draw(st.lists(events(), max_size=max_len, unique_by=lambda e: e.event_id)):
            seq += draw(st.integers(1, 5))
            stream.append(replace(e, agent_id=f"agent-{n}", seq=seq))
        streams.append(stream)
    return streams


def interleave(
    draw: Callable[[st.SearchStrategy[Any]], Any], streams: list[list[Event]], *, redeliver: bool = True
) -> list[Event]:
    """Any interleaving that keeps each stream's order; redeliveries of already-delivered events."""
    cursors = [0] * len(streams)
    out: list[Event] = []
    while any(c < len(s) for c, s in zip(cursors, streams, strict=True)):
        open_ = [i for i, s in enumerate(streams) if cursors[i] < len(s)]
        i = draw(st.sampled_from(open_))
        out.append(streams[i][cursors[i]])
        cursors[i] += 1
        if redeliver and out and draw(st.integers(0, 9)) == 0:
            out.append(draw(st.sampled_from(out)))
    return out


def fold(evs: list[Event]) -> PatientState:
    return reduce(apply, evs, empty_state(PATIENT))


def accepted(streams: list[list[Event]]) -> int:
    state_events = [e for s in streams for e in s]
    return sum(1 for e in state_events if apply(empty_state(PATIENT), e).version == 1)


@BOUND_SETTINGS
@given(st.data(), agent_streams())
def test_any_interleaving_of_in_order_streams_gives_identical_bytes_and_counts_every_event(
    data: st.DataObject, streams: list[list[Event]]
) -> None:
    one = fold(interleave(data.draw, streams))
    other = fold(interleave(data.draw, streams))
    assert one.to_bytes() == other.to_bytes()
    assert one.version == accepted(streams)
    assert len(one.recent) <= WINDOW


@BOUND_SETTINGS
@given(st.data(), agent_streams())
def test_merge_of_states_of_stream_prefixes_is_a_join(data: st.DataObject, streams: list[list[Event]]) -> None:
    def prefix_state() -> tuple[PatientState, list[int]]:
        cuts = [data.draw(st.integers(0, len(s))) for s in streams]
        return fold(interleave(data.draw, [s[:c] for s, c in zip(streams, cuts, strict=True)])), cuts

    (a, ca), (b, cb), (c, cc) = prefix_state(), prefix_state(), prefix_state()
    longest = [s[: max(x, y, z)] for s, x, y, z in zip(streams, ca, cb, cc, strict=True)]
    assert merge(a, b).to_bytes() == merge(b, a).to_bytes()
    assert merge(merge(a, b), c).to_bytes() == merge(a, merge(b, c)).to_bytes()
    assert merge(merge(a, b), c).to_bytes() == fold(interleave(data.draw, longest, redeliver=False)).to_bytes()
    assert merge(a, a) == a


@BOUND_SETTINGS
@given(st.data(), agent_streams(max_agents=3, max_len=60))
def test_a_second_copy_of_a_recent_event_id_is_refused(data: st.DataObject, streams: list[list[Event]]) -> None:
    state = fold(interleave(data.draw, streams, redeliver=False))
    if not state.recent:
        return
    original = data.draw(st.sampled_from(sorted(state.recent)))
    copy = replace(
        next(e for s in streams for e in s if e.event_id == original.event_id),
        seq=max(e.seq for s in streams for e in s) + 1,
        hlc=hlc_of(BASE_MS + 10 * 3_600_000),  # later than anything: it would win every register
    )
    assert apply(state, copy) == state


def test_a_30000_event_patient_has_a_small_record_that_fits_one_kafka_request() -> None:
    rng = random.Random(16)
    agents = [f"agent-{i:03d}" for i in range(200)]  # more agents than MAX_AGENTS: some are retired
    seqs = dict.fromkeys(agents, 0)
    recipients = [f"R{i:02d}" for i in range(10)]
    state = empty_state(PATIENT)
    largest = 0
    for n in range(30_000):
        agent = rng.choice(agents)
        seqs[agent] += rng.randint(1, 50)
        if n % 5 == 0:
            payload: ConsentDecision | Objection = Objection(ObjectionKind.NDOP, rng.choice(list(ObjectionAction)))
        else:
            payload = ConsentDecision(
                rng.choice(list(ConsentDirective)), PurposeOfUse.TREAT, DataClass.GENERAL, rng.choice(recipients)
            )
        event = Event(
            f"{n:032x}", agent, "A81001", seqs[agent], bytes(32), hlc_of(BASE_MS + n), BASE_MS + n, PATIENT, payload
        )
        state = apply(state, event)
        if n % 1000 == 999:
            largest = max(largest, len(state.to_bytes()))
    record = state.to_bytes()
    assert state.version == 30_000
    assert len(state.marks) <= MAX_AGENTS
    assert len(state.recent) == WINDOW
    assert max(largest, len(record)) <= MAX_RECORD_BYTES < MAX_REQUEST_BYTES
    assert PatientState.from_bytes(record) == state


def test_a_redelivery_of_an_event_below_its_agents_mark_changes_nothing() -> None:
    events_ = [
        Event(
            f"{n:032x}",
            "agent-a",
            "A81001",
            n + 1,
            bytes(32),
            hlc_of(BASE_MS + n),
            BASE_MS + n,
            PATIENT,
            ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.GENERAL, f"R{n}"),
        )
        for n in range(WINDOW + 10)
    ]
    state = fold(events_)
    assert events_[0].event_id not in state.applied
    assert state.marks["agent-a"].events == 10
    assert apply(state, events_[0]) == state


@BOUND_SETTINGS
@given(st.data(), agent_streams(max_agents=4, max_len=25))
def test_admitting_one_event_is_the_normal_form_of_the_ledger_with_it(
    data: st.DataObject, streams: list[list[Event]]
) -> None:
    state = fold(interleave(data.draw, streams, redeliver=False))
    entry = Applied(data.draw(st.sampled_from(["agent-0", "agent-9"])), 10_000, "f" * 32)
    assert ledger.admit(state.marks, state.recent, entry) == ledger.normalise(state.marks, state.recent | {entry})
