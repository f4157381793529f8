"""The verifier's pure core: chain rules, replay vs regression, gap holding, cursor persistence."""

from __future__ import annotations

import pytest

from broker.verifier import HASH_WINDOW, MAX_CURSOR_BYTES, MAX_FUTURE_MS, Cursor, VerifierCore
from consent_io.kafka import MAX_REQUEST_BYTES
from consent_wire.codes import ConsentDirective, DataClass, PurposeOfUse
from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.model import ConsentDecision
from tests.factories import BASE_MS, SimAgent, consent, patient


@pytest.fixture
def setup() -> tuple[VerifierCore, SimAgent]:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create()
    registry.apply(agent.register(root))
    return VerifierCore(registry, gap_timeout_ms=1000, max_held=2), agent


def _batch(agent: SimAgent, n: int) -> bytes:
    return agent.batch([agent.event(patient(i), consent(), BASE_MS + agent.seq) for i in range(n)])


def test_in_order_batches_are_accepted_and_advance_the_cursor(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    first = core.process(_batch(agent, 3), 0, BASE_MS)
    second = core.process(_batch(agent, 2), 1, BASE_MS)
    assert [ve.event.seq for ve in first.accepted + second.accepted] == [1, 2, 3, 4, 5]
    assert first.rejected == second.rejected == []
    assert core.cursors[agent.agent_id].next_seq == 6


def test_same_batch_twice_is_a_replay_and_nothing_is_accepted_twice(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    batch = _batch(agent, 3)
    core.process(batch, 0, BASE_MS)
    again = core.process(batch, 1, BASE_MS)
    assert again.accepted == []
    assert [(d.reason, d.offset, d.data) for d in again.rejected] == [("REPLAY", 1, batch)]


def test_overlapping_resend_accepts_only_the_new_events(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    events = [agent.event(patient(i), consent(), BASE_MS + i) for i in range(4)]
    core.process(agent.batch(events[:2]), 0, BASE_MS)
    result = core.process(agent.batch(events), 1, BASE_MS)  # an agent re-sending after a crash, re-batched
    assert [ve.event.seq for ve in result.accepted] == [3, 4]
    assert [d.reason for d in result.rejected] == ["REPLAY"]


def test_different_content_at_an_accepted_seq_is_a_regression(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    core.process(_batch(agent, 1), 0, BASE_MS)
    agent.seq, agent.last_hash = 0, bytes(32)
    result = core.process(_batch(agent, 1), 1, BASE_MS)
    assert result.accepted == []
    assert [d.reason for d in result.rejected] == ["SEQUENCE_REGRESSION"]


def test_wrong_prev_hash_is_a_chain_break(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    core.process(_batch(agent, 1), 0, BASE_MS)
    agent.last_hash = b"\x01" * 32
    result = core.process(_batch(agent, 1), 1, BASE_MS)
    assert [d.reason for d in result.rejected] == ["CHAIN_BREAK"]
    assert core.cursors[agent.agent_id].next_seq == 2


def test_gap_is_held_then_released_in_order_when_filled(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    first, second = _batch(agent, 2), _batch(agent, 2)
    held = core.process(second, 1, BASE_MS)
    assert held.accepted == [] and held.rejected == []
    released = core.process(first, 0, BASE_MS)
    assert [ve.event.seq for ve in released.accepted] == [1, 2, 3, 4]
    assert core.cursors[agent.agent_id].held == []


def test_open_gap_is_reported_once_after_the_timeout_and_stays_held(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    _batch(agent, 1)  # lost in transit
    core.process(_batch(agent, 1), 5, BASE_MS)
    assert core.expire(BASE_MS + 999).rejected == []
    report = core.expire(BASE_MS + 1000).rejected
    assert [(d.reason, d.offset) for d in report] == [("GAP_TIMEOUT", 5)]
    assert core.expire(BASE_MS + 5000).rejected == []
    assert len(core.cursors[agent.agent_id].held) == 1


def test_held_batches_beyond_the_bound_are_dead_lettered_as_gaps(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    _batch(agent, 1)
    outcomes = [core.process(_batch(agent, 1), i, BASE_MS) for i in range(3)]
    assert [d.reason for o in outcomes for d in o.rejected] == ["SEQUENCE_GAP"]


def test_cursor_survives_a_restart_and_still_tells_replay_from_regression(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    early = _batch(agent, 2)
    core.process(early, 0, BASE_MS)
    core.process(_batch(agent, 2), 1, BASE_MS)
    restarted = VerifierCore(core.registry)
    restarted.restore(core.cursors[agent.agent_id].to_bytes())
    assert [d.reason for d in restarted.process(early, 2, BASE_MS).rejected] == ["REPLAY"]
    assert restarted.process(_batch(agent, 1), 3, BASE_MS).accepted[0].event.seq == 5


def test_cursor_keeps_only_the_recent_hash_window(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    core.process(_batch(agent, HASH_WINDOW + 10), 0, BASE_MS)
    cursor = Cursor.from_bytes(core.cursors[agent.agent_id].to_bytes())
    assert sorted(cursor.recent) == list(range(11, HASH_WINDOW + 11))


def test_malformed_bytes_are_dead_lettered_with_the_decoder_reason(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, _ = setup
    result = core.process(b"\xc3\x01" + b"\x00" * 4, 9, BASE_MS)
    assert [(d.reason, d.offset) for d in result.rejected] == [("TRUNCATED", 9)]


def test_events_recorded_far_after_their_arrival_are_future_dated(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    batch = agent.batch([agent.event(patient(1), consent(), BASE_MS + MAX_FUTURE_MS + 1)])
    result = core.process(batch, 0, BASE_MS)
    assert [d.reason for d in result.rejected] == ["FUTURE_DATED"]
    assert core.cursors == {}


def test_a_skewed_clock_within_the_bound_is_accepted(setup: tuple[VerifierCore, SimAgent]) -> None:
    core, agent = setup
    batch = agent.batch([agent.event(patient(1), consent(), BASE_MS + 5 * 3600 * 1000)])
    assert len(core.process(batch, 0, BASE_MS).accepted) == 1


def _revoked_setup() -> tuple[VerifierCore, SimAgent]:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create()
    registry.apply(agent.register(root))
    registry.apply(root.revoke(agent.agent_id, agent.signer.public_key_bytes, BASE_MS + 1000))
    return VerifierCore(registry), agent


def test_events_arriving_before_revocation_are_accepted() -> None:
    core, agent = _revoked_setup()
    batch = agent.batch([agent.event(patient(1), consent(), BASE_MS)])
    assert len(core.process(batch, 0, BASE_MS + 999).accepted) == 1


def test_back_dated_events_arriving_after_revocation_are_rejected() -> None:
    # key validity is decided by arrival time (issue 12 item 6): no grace after a revocation
    core, agent = _revoked_setup()
    batch = agent.batch([agent.event(patient(1), consent(), BASE_MS)])
    result = core.process(batch, 0, BASE_MS + 1000)
    assert [d.reason for d in result.rejected] == ["REVOKED_KEY"]


def _big_batch(agent: SimAgent, n: int) -> bytes:
    """A batch of ``n`` ~60 KB events (a long free-text role), as large as a batch honestly gets."""
    role = "R" * 60_000
    payload = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.ALL, "*", None, None, role)
    return agent.batch([agent.event(patient(i), payload, BASE_MS + agent.seq) for i in range(n)])


def test_held_gap_cursor_record_stays_below_the_producers_max_request_size() -> None:
    """Issue 12 item 3: held batches made the cursor record tens of MB; its transaction aborted for ever."""
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create()
    registry.apply(agent.register(root))
    core = VerifierCore(registry)
    missing = _batch(agent, 1)  # seq 1 never arrives: every later batch waits behind the gap
    held = [core.process(_big_batch(agent, 10), i, BASE_MS) for i in range(4)]  # 4 x ~600 KB
    cursor = core.cursors[agent.agent_id]
    assert len(cursor.to_bytes()) <= MAX_CURSOR_BYTES < MAX_REQUEST_BYTES
    reasons = [d.reason for r in held for d in r.rejected]
    assert reasons == ["GAP_HOLD_FULL"] * 3  # the first is held; the rest would not fit
    assert all(d.data and len(d.data) > 500_000 for r in held for d in r.rejected)  # whole, re-drivable
    filled = core.process(missing, 9, BASE_MS)
    assert [ve.event.seq for ve in filled.accepted] == list(range(1, 12))  # the held one is released after the gap
