from __future__ import annotations

import dataclasses
import hashlib

import pytest

from consent_wire import (
    GENESIS_HASH,
    AgentChain,
    ChainBreakError,
    ChainState,
    ChainStatus,
    Event,
    ReplayError,
    SequenceGapError,
    SequenceRegressionError,
    decode_event,
)

from .strategies import chain_of, sample_decision

RAW = chain_of("agent-1", [sample_decision(i) for i in range(5)])
EVENTS = [decode_event(b) for b in RAW]
HASHES = [hashlib.sha256(b).digest() for b in RAW]


def _fed(n: int) -> AgentChain:
    chain = AgentChain.new("agent-1")
    for event, h in zip(EVENTS[:n], HASHES[:n], strict=True):
        assert chain.check(event, h) is ChainStatus.OK
    return chain


def test_gap_free_chain_is_accepted_and_advances() -> None:
    chain = _fed(5)
    assert chain.state == ChainState("agent-1", 6, HASHES[4])


def test_same_event_again_is_a_replay() -> None:
    chain = _fed(3)
    with pytest.raises(ReplayError, match="seq 2 was already accepted with the same hash"):
        chain.check(EVENTS[1], HASHES[1])
    assert chain.next_seq == 4


def test_different_event_at_an_accepted_seq_is_a_regression() -> None:
    chain = _fed(3)
    with pytest.raises(SequenceRegressionError, match="different hash"):
        chain.check(EVENTS[1], bytes(32))


def test_seq_below_the_replay_window_after_restart_is_a_regression() -> None:
    chain = AgentChain(ChainState("agent-1", 100, HASHES[0]))
    with pytest.raises(SequenceRegressionError, match="older than the 4096-event replay window"):
        chain.check(EVENTS[0], HASHES[0])


def test_seq_ahead_is_a_retriable_gap() -> None:
    chain = _fed(1)
    with pytest.raises(SequenceGapError, match="seq 3 arrived while 2 is expected") as info:
        chain.check(EVENTS[2], HASHES[2])
    assert info.value.retriable is True
    assert chain.check(EVENTS[1], HASHES[1]) is ChainStatus.OK  # the held event fits after the gap fills


def test_wrong_prev_hash_is_a_chain_break() -> None:
    chain = _fed(2)
    forked: Event = dataclasses.replace(EVENTS[2], prev_hash=GENESIS_HASH)
    with pytest.raises(ChainBreakError, match="seq 3: prev_hash 0000"):
        chain.check(forked, HASHES[2])
    assert chain.next_seq == 3


def test_first_event_must_point_at_genesis() -> None:
    chain = AgentChain.new("agent-1")
    with pytest.raises(ChainBreakError):
        chain.check(dataclasses.replace(EVENTS[0], prev_hash=b"\x01" * 32), HASHES[0])


def test_chain_restored_from_state_continues() -> None:
    restored = AgentChain(_fed(3).state)
    assert restored.check(EVENTS[3], HASHES[3]) is ChainStatus.OK
    with pytest.raises(ReplayError):
        restored.check(EVENTS[3], HASHES[3])
