"""A replica follower applies a whole poll in one transaction with its positions; bad records are refused, counted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from consent_io.connection import KafkaConnection
from consent_rules.replica_feed import ReplicaKind, feed_key, seal_replica_record
from consent_wire.dsse import AgentSigner
from edge_agent.replica import Replica
from edge_agent.replica_follow import KafkaReplicaFollower, SignedFeed
from tests.factories import patient, shielded_state_bytes

P, Q = patient(1), patient(2)
NOW = 1_700_000_000_000
CORE = AgentSigner.generate("core")
TOPIC = "pfx.site.A81001"


@dataclass(frozen=True)
class Rec:
    offset: int
    key: bytes | None
    value: bytes | None


class OnePoll:
    """Hands out one poll, then ends the follower's loop (as a cancellation would)."""

    def __init__(self, batches: dict[TopicPartition, list[Rec]]) -> None:
        self.batches: dict[TopicPartition, list[Rec]] | None = batches
        self.max_records: list[int | None] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        self.max_records.append(max_records)
        if self.batches is None:
            raise asyncio.CancelledError
        batches, self.batches = self.batches, None
        return batches


class CountingReplica(Replica):
    def __init__(self, path: Path) -> None:
        super().__init__(path, None)
        self.transactions = 0

    def _apply_all(self, updates: Any, positions: Any) -> list[bool]:
        self.transactions += 1
        return super()._apply_all(updates, positions)


async def test_a_poll_is_one_transaction_with_the_positions_it_reaches(tmp_path: Path) -> None:
    replica = CountingReplica(tmp_path / "r.db")
    await replica.open()
    feed = SignedFeed(replica, CORE.public_key, now_ms=lambda: NOW)
    follower = KafkaReplicaFollower(KafkaConnection("127.0.0.1:1"), TOPIC, feed, replica)
    sealed_p = seal_replica_record(CORE, ReplicaKind.STATE, P, shielded_state_bytes(P, NOW), NOW)
    sealed_q = seal_replica_record(CORE, ReplicaKind.STATE, Q, shielded_state_bytes(Q, NOW), NOW)
    forged = seal_replica_record(AgentSigner.generate("core"), ReplicaKind.STATE, Q, shielded_state_bytes(Q, NOW), NOW)
    consumer = OnePoll(
        {
            TopicPartition(TOPIC, 0): [
                Rec(4, feed_key(ReplicaKind.STATE, P), sealed_p),
                Rec(5, b"nonsense", sealed_q),  # no kind in the key
            ],
            TopicPartition(TOPIC, 1): [
                Rec(9, feed_key(ReplicaKind.STATE, Q), forged),  # not the core's signature
                Rec(10, feed_key(ReplicaKind.STATE, Q), sealed_q),
            ],
        }
    )
    with pytest.raises(asyncio.CancelledError):
        await follower._consume(consumer)  # type: ignore[arg-type]
    held = (await replica.get(P), await replica.get(Q), await replica.positions(TOPIC))
    await replica.close()

    assert replica.transactions == 1
    assert held[0] is not None and held[1] is not None
    assert held[2] == {0: 6, 1: 11}  # past the refused records too: they are counted, never re-read
    assert follower.records_total == 4
    assert sum(replica.refused_by_reason.values()) == 2
    assert consumer.max_records[0] is not None  # a poll is bounded: one transaction stays short
