"""Issue 13, the full-outage stall: a session ends cleanly and promptly, whatever Kafka does meanwhile.

Seen in a fault run: one partition's recovery failed during the outage ("Unable to bootstrap"), asyncio.gather
raised at once while the other partitions' transactions ran on unsupervised, and the session's cleanup waited
forever on producers whose batches could not be delivered: the verifier never started another session.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalOperation, KafkaConnectionError, LeaderNotAvailableError, ProducerFenced

from broker.pipeline import ReconcilerLogic
from broker.runtime import Core
from broker.settings import CoreSettings
from broker.stage import StageConfig, TransactionalStage, _all_settled
from broker.topics import TopicNames
from consent_io import kafka
from consent_io.connection import KafkaConnection
from tests.unit.runtime.producer_fakes import MetadataClient


async def test_a_failing_partition_ends_the_batch_only_after_every_other_partition_has_finished() -> None:
    finished: list[str] = []

    async def fails() -> None:
        raise KafkaConnectionError("Unable to bootstrap")

    async def slow(name: str) -> None:
        await asyncio.sleep(0.05)
        finished.append(name)

    with pytest.raises(KafkaConnectionError):
        await _all_settled([fails(), slow("a"), slow("b")])
    assert sorted(finished) == ["a", "b"]  # nothing left running unsupervised


class _Accumulator:
    def __init__(self) -> None:
        self.failed = asyncio.Event()

    def fail_all(self, exception: BaseException) -> None:
        self.failed.set()


class _StuckProducer:
    """stop() waits for its batches, as aiokafka's does: until they are failed, or forever."""

    client = MetadataClient()  # every output topic known: the stage prefetches nothing

    def __init__(self, *, gives_up_when_failed: bool) -> None:
        self._message_accumulator = _Accumulator()
        self.gives_up_when_failed = gives_up_when_failed

    async def stop(self) -> None:
        await self._message_accumulator.failed.wait()
        if not self.gives_up_when_failed:
            await asyncio.Event().wait()


async def test_closing_a_producer_that_cannot_deliver_fails_its_batches_then_gives_up() -> None:
    failing = _StuckProducer(gives_up_when_failed=True)
    assert not await asyncio.wait_for(kafka.close_producer(failing, timeout_s=0.05), 5)  # type: ignore[arg-type]
    assert failing._message_accumulator.failed.is_set()
    hanging = _StuckProducer(gives_up_when_failed=False)
    assert not await asyncio.wait_for(kafka.close_producer(hanging, timeout_s=0.05), 5)  # type: ignore[arg-type]


class _FencedProducer:
    client = MetadataClient()  # every output topic known: the stage prefetches nothing

    async def begin_transaction(self) -> None:
        raise ProducerFenced()

    async def stop(self) -> None:
        return None


class _Consumer:
    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned

    def assignment(self) -> set[TopicPartition]:
        return self.assigned


@pytest.mark.parametrize("still_assigned", [True, False])
async def test_a_fenced_partition_still_assigned_is_recovered_not_dropped(still_assigned: bool) -> None:
    topics = TopicNames("p")
    stage = TransactionalStage(StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t"), ReconcilerLogic(topics))
    tp = TopicPartition(stage.logic.input_topic, 0)
    stage._consumer = _Consumer({tp} if still_assigned else set())  # type: ignore[assignment]
    stage.producers[0] = _FencedProducer()  # type: ignore[assignment]
    handled: Any = await stage._enqueue(0, [], None)
    assert 0 not in stage.producers
    # False: the caller recovers it (new producer, state from the changelog, committed offset); True: let go
    assert handled is (not still_assigned)


def test_an_instance_id_gives_each_stage_a_static_group_membership_and_none_keeps_it_dynamic() -> None:
    settings = {"stages": ("reconciler",), "kafka_security": "PLAINTEXT"}
    static = Core(CoreSettings(instance_id="core-0", **settings))  # type: ignore[arg-type]
    assert static._stage_config("reconciler").group_instance_id == "core-0.reconciler"
    dynamic = Core(CoreSettings(**settings))  # type: ignore[arg-type]
    assert dynamic._stage_config("reconciler").group_instance_id is None


class _FailedTransactionProducer:
    """Its transaction already failed inside aiokafka (e.g. LeaderNotAvailable after an outage)."""

    client = MetadataClient()  # every output topic known: the stage prefetches nothing

    def __init__(self) -> None:
        self.aborted = False

    async def begin_transaction(self) -> None:
        return None

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        raise IllegalOperation("Can't send messages while not in transaction")

    async def abort_transaction(self) -> None:
        self.aborted = True
        raise IllegalOperation("no transaction to abort")


async def test_a_producer_whose_transaction_already_failed_is_recovered_not_a_crash() -> None:
    """Seen after a full outage: aiokafka's IllegalOperation (not a KafkaError) escaped and stopped the core."""
    from broker.stage import Output

    topics = TopicNames("p")
    stage = TransactionalStage(StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t"), ReconcilerLogic(topics))
    producer = _FailedTransactionProducer()
    stage.producers[0] = producer  # type: ignore[assignment]
    handled = await stage._enqueue(0, [Output(topics.state, b"v", key=b"k", partition=0)], 1)
    assert handled is False  # the caller recovers the partition (new producer, state, committed offset)
    assert producer.aborted
    assert 0 not in stage._txns


class _SilentCoordinatorProducer:
    """A transaction whose coordinator never answers the commit (aiokafka awaits it without a deadline)."""

    client = MetadataClient()  # every output topic known: the stage prefetches nothing

    def __init__(self) -> None:
        self.aborts = 0

    async def begin_transaction(self) -> None:
        return None

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        return future

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        return None

    async def commit_transaction(self) -> None:
        await asyncio.Event().wait()

    async def abort_transaction(self) -> None:
        self.aborts += 1
        await asyncio.Event().wait()  # nor the abort

    async def stop(self) -> None:
        return None


async def test_a_commit_the_coordinator_never_answers_is_bounded_and_its_partition_recovered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: a commit held the whole stage's loop (every partition) after an outage while /health said 200."""
    monkeypatch.setattr("broker.stage.TXN_CALL_TIMEOUT_S", 0.05)
    monkeypatch.setattr("broker.stage.TXN_CALL_TICK_S", 0.01)
    topics = TopicNames("p")
    stage = TransactionalStage(StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t"), ReconcilerLogic(topics))
    stage._set_heard(True)  # Kafka answers; only this transaction's coordinator does not
    producer = _SilentCoordinatorProducer()
    stage.producers[0] = producer  # type: ignore[assignment]
    stage._changelog_next[0] = 12  # restored: its memory matched the committed changelog up to offset 12
    assert await stage._enqueue(0, [], 7)
    assert stage.pending == 1
    committed = await asyncio.wait_for(stage._commit(0), 5)
    assert committed is False  # the caller recovers the partition: new producer, committed changelog and offset
    assert producer.aborts == 1 and stage.pending == 0
    # its memory now holds what was aborted: were the session lost before the caller's recovery (a sibling's
    # recovery failing first), it must not be kept as matching the changelog, but restored afresh
    stage._retain_all()
    assert 0 not in stage._retained and 0 not in stage._changelog_next


def test_a_stage_whose_loop_has_stalled_reports_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    stage = TransactionalStage(StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t"), ReconcilerLogic(TopicNames("p")))
    stage._set_holding(True)
    stage._set_heard(True)
    assert stage.healthy
    monkeypatch.setattr("broker.stage.LOOP_STALL_S", 0.0)
    assert not stage.healthy  # holding its partitions and hearing Kafka, but not turning


async def test_a_commit_waits_out_an_outage_and_gives_up_only_once_kafka_answers_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A transaction open when Kafka went down may still commit once it is back: no deadline while nobody answers."""
    monkeypatch.setattr("broker.stage.TXN_CALL_TIMEOUT_S", 0.05)
    monkeypatch.setattr("broker.stage.TXN_CALL_TICK_S", 0.01)
    stage = TransactionalStage(StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t"), ReconcilerLogic(TopicNames("p")))
    stage._set_heard(False)  # every leader silent: Kafka is down
    stage.producers[0] = _SilentCoordinatorProducer()  # type: ignore[assignment]
    assert await stage._enqueue(0, [], 7)
    commit = asyncio.ensure_future(stage._commit(0))
    await asyncio.sleep(0.3)  # six times the bound, all of it without Kafka
    assert not commit.done()
    stage._set_heard(True)  # Kafka is back, and this coordinator still does not answer
    assert await asyncio.wait_for(commit, 5) is False


class _LeaderlessBatchProducer:
    """aiokafka after an outage: one batch found no leader within its time to live and failed its futures, yet
    ``commit_transaction`` would still commit (the transaction is not put in error): the batch would be lost."""

    client = MetadataClient()  # every output topic known: the stage prefetches nothing

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(LeaderNotAvailableError())
        return future

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        self.calls.append("offsets")

    async def commit_transaction(self) -> None:
        self.calls.append("commit")

    async def abort_transaction(self) -> None:
        self.calls.append("abort")

    async def stop(self) -> None:
        return None


async def test_a_transaction_one_of_whose_sends_failed_is_aborted_never_committed() -> None:
    """Issue 13, the full-outage loss: the commit went through without the chain cursor's changelog record (and
    with the input offset), so the agent's later batches were held for a gap and dead-lettered GAP_TIMEOUT."""
    from broker.stage import Output

    topics = TopicNames("p")
    stage = TransactionalStage(StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t"), ReconcilerLogic(topics))
    producer = _LeaderlessBatchProducer()
    stage.producers[0] = producer  # type: ignore[assignment]
    stage._changelog_next[0] = 12
    assert await stage._enqueue(0, [Output(topics.state, b"v", key=b"k", partition=0)], 8)
    assert await stage._commit(0) is False  # the caller recovers the partition from what was committed
    assert producer.calls == ["begin", "offsets", "abort"]  # never "commit"
    assert 0 not in stage._changelog_next  # its memory held the aborted work: restored afresh


async def test_a_discarded_producer_fails_its_batches_at_once_not_after_the_close_timeout() -> None:
    """Issue 13: recovering a partition during an outage waited 16 s to close the old producer, every partition held."""
    stuck = _StuckProducer(gives_up_when_failed=True)
    closing = asyncio.ensure_future(kafka.close_producer(stuck, timeout_s=30, discard=True))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert stuck._message_accumulator.failed.is_set()  # at once, not after 30 s
    assert await asyncio.wait_for(closing, 5) is False  # its batches were dropped


async def test_a_transaction_past_its_lifetime_is_given_up_only_once_kafka_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: giving up during the outage recovered with a producer that could not bootstrap, which ended the
    session and restored every partition once Kafka was back; the lifetime now counts only when Kafka answers."""
    monkeypatch.setattr("broker.stage.TXN_CALL_TIMEOUT_S", 60.0)  # only the lifetime can end this wait
    monkeypatch.setattr("broker.stage.TXN_CALL_TICK_S", 0.01)
    config = StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t", transaction_timeout_ms=50)
    stage = TransactionalStage(config, ReconcilerLogic(TopicNames("p")))
    stage._set_heard(False)
    stage.producers[0] = _SilentCoordinatorProducer()  # type: ignore[assignment]
    assert await stage._enqueue(0, [], 7)
    commit = asyncio.ensure_future(stage._commit(0))
    await asyncio.sleep(0.3)  # six lifetimes, with no broker answering
    assert not commit.done()
    stage._set_heard(True)
    assert await asyncio.wait_for(commit, 5) is False  # given up at once: the partition is recovered with Kafka up
