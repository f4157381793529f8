"""The stage's transactions on a commit interval (issue 18), driven with a recording fake producer.

Behaviour, not time: with a long interval, polls join one open transaction and nothing commits; a transaction
holding a shielding record commits at once; a revocation commits what was processed before the partition
goes; a partition whose open transaction is dropped uncommitted has its memory forgotten (to be restored from
the committed changelog), never kept ahead of it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from broker.pipeline import ReconcilerLogic
from broker.stage import Output, StageConfig, TransactionalStage
from broker.topics import TopicNames
from consent_io.connection import KafkaConnection
from tests.unit.runtime.producer_fakes import MetadataClient


@dataclass
class _Meta:
    partition: int
    offset: int


@dataclass
class _Producer:
    """Records the transaction calls a stage makes; every send succeeds."""

    client = MetadataClient()  # every output topic known: the stage prefetches nothing

    calls: list[str] = field(default_factory=list)
    offsets: list[dict[TopicPartition, int]] = field(default_factory=list)
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    next_offset: int = 0

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send(self, topic: str, value: bytes, key: bytes | None, partition: int | None, headers: Any) -> Any:
        self.sent.append((topic, value))
        future: asyncio.Future[_Meta] = asyncio.get_running_loop().create_future()
        future.set_result(_Meta(partition or 0, self.next_offset))
        self.next_offset += 1
        return future

    async def send_offsets_to_transaction(self, offsets: dict[TopicPartition, int], group_id: str) -> None:
        self.offsets.append(offsets)

    async def commit_transaction(self) -> None:
        self.calls.append("commit")

    async def abort_transaction(self) -> None:
        self.calls.append("abort")

    async def stop(self) -> None:
        self.calls.append("stop")


class _Logic(ReconcilerLogic):
    def __init__(self) -> None:
        super().__init__(TopicNames("p"))
        self.forgotten: list[int] = []

    def forget(self, partition: int) -> None:
        self.forgotten.append(partition)
        super().forget(partition)


def _stage(interval_ms: int) -> tuple[TransactionalStage, _Logic, dict[int, _Producer]]:
    logic = _Logic()
    config = StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t", commit_interval_ms=interval_ms)
    stage = TransactionalStage(config, logic)
    producers = {0: _Producer(), 1: _Producer()}
    stage.producers.update(producers)  # type: ignore[arg-type]
    return stage, logic, producers


def _state(partition: int, n: int) -> Output:
    return Output("p.state", b"s%d" % n, b"patient-%d" % n, partition)


async def test_polls_join_one_open_transaction_until_it_is_due() -> None:
    stage, _, producers = _stage(10_000)
    for n in range(3):
        assert await stage._enqueue(0, [_state(0, n)], n + 1)
    await stage._commit_due()
    assert producers[0].calls == ["begin"]  # one transaction, three polls, not yet due
    assert stage.pending == 1


async def test_a_transaction_holding_a_shielding_record_commits_at_once_beside_bulk_ones_that_wait() -> None:
    stage, _, producers = _stage(10_000)
    await stage._enqueue(0, [_state(0, 1), _state(0, 2)], 40)  # bulk, partition 0
    shielding = Output("p.shielding", b"{}", b"patient-9", 1, urgent=True)
    await stage._enqueue(1, [_state(1, 9), shielding], 7)
    await stage._commit_due()
    assert producers[1].calls == ["begin", "commit"]
    assert producers[1].offsets == [{TopicPartition("p.events", 1): 7}]  # the input position commits with it
    assert producers[0].calls == ["begin"]  # the bulk transaction still waits for its interval
    assert stage.pending == 1


async def test_zero_interval_commits_after_every_poll_as_before() -> None:
    stage, _, producers = _stage(0)
    await stage._enqueue(0, [_state(0, 1)], 1)
    await stage._commit_due()
    await stage._enqueue(0, [_state(0, 2)], 2)
    await stage._commit_due()
    assert producers[0].calls == ["begin", "commit", "begin", "commit"]
    assert [o[TopicPartition("p.events", 0)] for o in producers[0].offsets] == [1, 2]


async def test_a_revocation_commits_what_was_processed_before_the_partition_goes() -> None:
    stage, logic, producers = _stage(10_000)
    await stage._enqueue(0, [_state(0, 1)], 12)
    await stage._revoke([0])
    assert producers[0].calls == ["begin", "commit", "stop"]
    assert producers[0].offsets == [{TopicPartition("p.events", 0): 12}]
    assert stage._changelog_next[0] == 1  # the committed changelog position: memory kept for a re-assignment
    assert 0 in stage._retained and 0 not in logic.forgotten


async def test_an_open_transaction_dropped_uncommitted_forgets_the_partitions_memory() -> None:
    stage, logic, producers = _stage(10_000)
    await stage._enqueue(1, [_state(1, 1)], 3)
    await stage._close_producer(1)  # e.g. the session was lost: the transaction never commits
    assert producers[1].calls == ["begin", "stop"]
    assert logic.forgotten == [1]  # restored from the committed changelog next time, never kept ahead of it
    assert stage.pending == 0


@dataclass
class _Record:
    value: bytes
    offset: int
    key: bytes = b"patient"
    timestamp: int = 0


class _GatedProducer(_Producer):
    """Its sends wait for ``gate`` (aiokafka's send waits while the partition's batch is full and in flight)."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__()
        self.gate = gate

    async def send(self, topic: str, value: bytes, key: bytes | None, partition: int | None, headers: Any) -> Any:
        await self.gate.wait()
        return await super().send(topic, value, key, partition, headers)


class _Recording(_Logic):
    def __init__(self) -> None:
        super().__init__()
        self.processed: list[int] = []

    def process(self, partition: int, records: Any, now_ms: int) -> list[Output]:
        self.processed.append(partition)
        return [_state(partition, r.offset) for r in records]


async def test_one_partition_is_processed_while_another_partitions_sends_wait() -> None:
    """Issue 18: the partitions of a poll are handled concurrently, so the stage computes while a send waits."""
    logic = _Recording()
    stage = TransactionalStage(StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t", commit_interval_ms=0), logic)
    gate = asyncio.Event()
    stage.producers.update({0: _GatedProducer(gate), 1: _Producer()})  # type: ignore[arg-type]
    polled = {TopicPartition("p.events", p): [_Record(b"x", 5)] for p in (0, 1)}
    handling = asyncio.create_task(stage._handle_polled(polled))  # type: ignore[arg-type]
    for _ in range(20):
        await asyncio.sleep(0)
    assert logic.processed == [0, 1]  # partition 1 was processed although partition 0's send still waits
    assert not handling.done()
    gate.set()
    await handling
    assert stage._txns.get(0) is not None and stage._txns.get(1) is not None


async def test_a_partition_whose_transaction_failed_is_recovered_once_every_partition_is_handled() -> None:
    logic = _Recording()
    stage = TransactionalStage(StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t", commit_interval_ms=0), logic)
    failing = _Producer()

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise KafkaConnectionError("leader gone")

    failing.send = fail  # type: ignore[method-assign]
    stage.producers.update({0: failing, 1: _Producer()})  # type: ignore[arg-type]
    recovered: list[int] = []

    async def recover(tp: TopicPartition) -> None:
        assert stage._txns.get(1) is not None  # partition 1 was handled first
        recovered.append(tp.partition)

    stage._recover = recover  # type: ignore[method-assign]
    polled = {TopicPartition("p.events", p): [_Record(b"x", 5)] for p in (0, 1)}
    await stage._handle_polled(polled)  # type: ignore[arg-type]
    assert recovered == [0]
    assert failing.calls == ["begin", "abort"]


async def test_a_new_producer_fetches_every_output_topic_it_does_not_know_in_one_request() -> None:
    """A fresh producer asked for each topic's metadata alone, the refreshes spaced 0.25 s (issue 18, issue 13)."""
    stage, _, producers = _stage(10_000)
    producers[0].client = MetadataClient(known=False)  # type: ignore[misc]
    stage._output_topics.update({"p.deadletter"})  # seen earlier, by another partition's transaction
    assert await stage._enqueue(0, [_state(0, 1), Output("p.shielding", b"{}", b"k", 0)], 1)
    requests = producers[0].client.requests  # type: ignore[attr-defined]
    assert len(requests) == 1 and set(requests[0]) == {"p.state", "p.shielding", "p.deadletter"}
    assert await stage._enqueue(0, [_state(0, 2)], 2)
    assert len(producers[0].client.requests) == 1  # type: ignore[attr-defined]  # known now: no second request


async def test_the_topics_of_committed_outputs_are_prefetched_by_the_next_new_producer() -> None:
    stage, _, producers = _stage(0)
    assert await stage._enqueue(0, [_state(0, 1)], 1)
    await stage._commit_due()  # "p.state" is learned when its records commit
    producers[1].client = MetadataClient(known=False)  # type: ignore[misc]
    assert await stage._enqueue(1, [Output("p.shielding", b"{}", b"k", 1)], 1)
    assert set(producers[1].client.requests[0]) == {"p.state", "p.shielding"}  # type: ignore[attr-defined]
