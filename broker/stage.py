"""A consume-transform-produce stage with Kafka transactions: the I/O shell around a pure core.

Effectively-once (DESIGN.md section 5): each input partition has its own transactional producer
(transactional id ``<app>.<stage>.<partition>``), so when a partition moves to another instance
the new owner's ``init_transactions`` fences the old one and aborts its open transaction. Outputs,
the partition's changelog records and the consumer offset commit in one transaction; readers use
``read_committed``. On assignment, and after any failed transaction, the partition's in-memory
state is rebuilt from its co-partitioned compacted changelog before processing resumes, so a
kill -9 at any moment neither loses nor re-applies an event.

Recovery (issue 13): with ``state_dir`` set, each changelog partition also lives in a local checkpointed
store (:mod:`broker.changelog_store`), so a restart reads only the changelog's tail; a partition revoked and
assigned back keeps its in-memory state and reads only what was written since. Positions are set explicitly
(committed offset, else the partition's start) and silent partitions trigger a metadata refresh
(:func:`consent_io.kafka.watch_leaders`), so a paused broker does not stall a partition for minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter as Tally
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalOperation, KafkaError, ProducerFenced
from prometheus_client import Counter, Gauge, Histogram

from broker.changelog_store import LocalChangelog, restore_partition
from broker.sessions import backoff_delay
from broker.txn_batch import OpenTransaction, TransactionBatcher
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_io.recovery import RateLimit

__all__ = ["Output", "StageConfig", "StageLogic", "TransactionalStage"]

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS_IN = Counter("broker_stage_records_in_total", "Records consumed", ["stage"])
EVENTS_OUT = Counter("broker_stage_records_out_total", "Records produced", ["stage", "topic"])
REJECTS = Counter("broker_stage_rejects_total", "Records dead-lettered", ["stage", "reason"])
BATCH_SECONDS = Histogram(
    "broker_stage_batch_seconds", "Process + transaction time per partition batch", ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)  # fmt: skip
LAG = Gauge("broker_stage_consumer_lag_records", "High-water mark minus position", ["stage", "partition"])
STATE_SIZE = Gauge("broker_stage_state_entries", "Entries held in memory", ["stage"])
RESTORES = Counter("broker_stage_restores_total", "Partition state restores", ["stage", "kind"])
HEALTHY = Gauge("broker_stage_healthy", "1 while the stage hears from Kafka and holds its partitions", ["stage"])
SESSION_RESTARTS = Counter("broker_stage_session_restarts_total", "Kafka sessions restarted after a failure", ["stage"])
TXN_ABORTS = Counter("broker_stage_transaction_aborts_total", "Transactions aborted and re-driven", ["stage"])
# A partition's recovery (new producer: init_transactions; changelog restore) that has not finished by then ends
# the Kafka session instead: the next session starts from the committed offsets (e.g. right after an outage,
# while the brokers still answer UnknownTopicOrPartition, a recovery could otherwise wait for minutes).
RECOVER_TIMEOUT_S = 60.0
# Every transactional call (begin, sends, offsets, commit, abort) is bounded too: aiokafka awaits the coordinator's
# answer without a deadline, so one commit whose coordinator never answered held the whole stage's loop (every
# partition) while /health still said healthy. A commit or abort gives up after TXN_CALL_TIMEOUT_S spent while the
# stage hears Kafka (its partitions' leaders answer): an outage is waited out, so a transaction open when Kafka went
# down still commits once it is back, but not once it has outlived its own lifetime *and* Kafka answers (its
# coordinator aborts it then). The lifetime is not enforced while nothing answers: giving up then only led to a
# recovery whose new producer could not bootstrap, which ended the session, so every partition was restored again
# once Kafka returned (issue 13: a 30 s outage whose brokers took 30-40 s to restart lost 10-20 s that way). One
# that gives up is aborted and its partition recovered from the committed changelog, as after a failed commit (a new
# producer fences the old one). Beginning a transaction and queueing its sends are bounded by TXN_CALL_TIMEOUT_S.
TXN_CALL_TIMEOUT_S = 30.0
TXN_CALL_TICK_S = 1.0  # how often a waiting commit checks whether Kafka is heard
# The stage reports unhealthy when its loop has not turned for this long (a wedge, whatever its cause).
LOOP_STALL_S = 2 * TXN_CALL_TIMEOUT_S
# Waiting for Kafka to return (issue 13, item 4): full-jitter backoff from 0.5 s up to 5 s, so a stage is back
# within ~5 s of Kafka and a fleet of stages does not reconnect in lockstep.
RETRY_BASE_S = 0.5
RETRY_CAP_S = 5.0
DISCARD_CLOSE_S = 1.0  # a failed or fenced transaction's producer: how long its stop may take once its batches failed
SLOW_COMMIT_S = 2.0  # a commit slower than this is logged (its end marks when the stage resumed)
# memoised key -> partition entries (~100 bytes each): bounded at ~10 MB, then simply cleared
PARTITION_MEMO_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    value: bytes
    key: bytes | None = None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    reject_reason: str | None = None  # counted in metrics when set
    urgent: bool = False  # commit its transaction at once, not at the commit interval (a shielding record)


class StageLogic(Protocol):
    """The pure part a stage drives. Implementations keep per-partition state in memory."""

    name: str
    input_topic: str
    changelog_topic: str | None

    async def prepare(self, polled: Iterable[Sequence[Any]]) -> None:
        """Called once per poll with records, before ``process``: each assigned partition's polled records."""

    def restore(self, partition: int, key: bytes, value: bytes) -> None: ...

    def forget(self, partition: int) -> None: ...

    def process(self, partition: int, records: Sequence[Any], now_ms: int) -> list[Output]: ...

    def tick(self, now_ms: int) -> dict[int, list[Output]]: ...

    def size(self) -> int: ...


@dataclass(frozen=True, slots=True)
class StageConfig:
    kafka: KafkaConnection
    group_id: str
    transactional_prefix: str
    max_records: int = 5000  # per getmany: amortises one transaction over many records
    poll_timeout_ms: int = 100
    fetch_min_bytes: int = 64 * 1024  # ~100 verified events or ~200 ingress events
    fetch_max_wait_ms: int = 25
    linger_ms: int = 5
    compression: str | None = "lz4"
    # a transaction open when Kafka went down is aborted by its coordinator after this long and its partition
    # recovered (restore, reprocessing); one that lives through the outage simply commits once Kafka is back.
    # 60 s was too short for a 30 s outage whose three brokers took 30-40 s to restart (every open transaction
    # fenced, every partition recovered: 11-17 s of catch-up). Five minutes was tried earlier and reverted when
    # the full-outage fault test lost events, but that loss was aiokafka committing without a failed batch,
    # fixed since (kafka.delivered). The cost of a longer one: a producer that dies with a transaction open and
    # is never fenced (no process takes its partition) holds read_committed readers of its output partitions
    # back this long; any successor fences it at once. Its batches live as long (kafka.transactional_producer).
    transaction_timeout_ms: int = 90_000
    tick_interval_s: float = 1.0
    # one transaction per partition spans every poll for this long (issue 18; Kafka Streams' commit.interval.ms
    # under exactly-once); 0 commits after every poll, as before
    commit_interval_ms: int = 100
    state_dir: Path | None = None  # local checkpointed changelog stores (None: restore from Kafka only)
    # static group membership: a restarted process with the same id takes its partitions back without a
    # rebalance (no wait for the old member's session timeout); None: dynamic membership
    group_instance_id: str | None = None


async def _all_settled(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run ``coroutines`` concurrently until every one has finished, then raise the first error, if any.

    ``asyncio.gather`` raises as soon as one fails and leaves the others running unsupervised: a partition
    whose recovery failed ended the session while its siblings kept using producers the session's cleanup
    was closing (issue 13, the full-outage stall).
    """
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: TransactionalStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.stage._revoke([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.stage._assign([tp.partition for tp in assigned])


class TransactionalStage:
    def __init__(self, config: StageConfig, logic: StageLogic) -> None:
        self.config = config
        self.logic = logic
        self.producers: dict[int, AIOKafkaProducer] = {}
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._last_tick = time.monotonic()
        self._next_offset: dict[int, int] = {}
        self._partitions: dict[tuple[str, int, bytes], int] = {}  # see _partition_of
        self._output_topics: set[str] = set()  # every topic a committed output went to (new producers prefetch them)
        self.ready = asyncio.Event()  # set once the first assignment is restored
        self._local = LocalChangelog(config.state_dir, logic.name) if config.state_dir else None
        self._changelog_next: dict[int, int] = {}  # partition -> next changelog offset the memory lacks
        self._retained: set[int] = set()  # revoked partitions whose memory is kept until the next assignment
        self._holding = False  # the last assignment is restored and positioned (no session lost since)
        self._heard = False  # every assigned partition's leader answered recently (kafka.watch_leaders)
        self._generation = 0  # bumped by every assignment change: records fetched before one are stale
        self._progress: dict[TopicPartition, float] = {}  # when records of each partition were last handled
        self._failure: BaseException | None = None  # a Kafka error in the rebalance listener (it must not hide)
        self.restores: list[tuple[int, str, int]] = []  # (partition, kind, records read from Kafka) per restore
        self.assignments: list[list[int]] = []  # the partitions of each assignment received
        self._txns = TransactionBatcher(config.commit_interval_ms / 1000)  # open transactions (broker.txn_batch)
        self._beat = time.monotonic()  # when the poll loop last turned (``healthy`` is False once it stalls)

    @property
    def pending(self) -> int:
        """Partitions with an open transaction: processed records not yet committed."""
        return len(self._txns)

    @property
    def healthy(self) -> bool:
        return self._holding and self._heard and time.monotonic() - self._beat < LOOP_STALL_S

    def _set_holding(self, holding: bool) -> None:
        self._holding = holding
        HEALTHY.labels(self.logic.name).set(1 if self.healthy else 0)

    def _set_heard(self, heard: bool) -> None:
        if heard != self._heard:  # transitions only: when a stage lost and found its partitions' leaders
            log.info("stage=%s leaders %s", self.logic.name, "answering" if heard else "silent (unhealthy)")
        self._heard = heard
        HEALTHY.labels(self.logic.name).set(1 if self.healthy else 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Run Kafka sessions until ``stop``; Kafka unreachable or lost ends a session, never the stage.

        Between sessions the stage reports unhealthy (``healthy``, ``broker_stage_healthy``) and waits a backoff;
        the partitions' in-memory state is kept, so the next assignment reads only the changelog's tail.
        """
        attempt = 0
        lines = RateLimit(interval_s=30.0)
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self._session(stop)
            except (KafkaError, OSError, TimeoutError) as exc:
                self._set_holding(False)
                SESSION_RESTARTS.labels(self.logic.name).inc()
                self._retain_all()
                attempt = 0 if time.monotonic() - started > 60 else attempt + 1
                delay = backoff_delay(attempt, RETRY_BASE_S, RETRY_CAP_S)
                held = lines.allow("down", time.monotonic())
                if held is not None:
                    log.warning(
                        "stage=%s Kafka unreachable or lost error=%r; retrying in %.1f s (%d similar lines held back)",
                        self.logic.name, exc, delay, held,
                    )  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            else:
                return

    def _retain_all(self) -> None:
        """After a lost session: keep the memory of every partition that matches its committed changelog."""
        for partition in list(self.producers):
            self.producers.pop(partition, None)
        for partition in list(self._changelog_next):
            self._retained.add(partition)

    async def _session(self, stop: asyncio.Event) -> None:
        consumer = kafka.consumer(
            self.config.kafka,
            group_id=self.config.group_id,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # let the broker gather up to 25 ms of input per fetch: fewer, larger transactions cost the
            # broker far less CPU per event (markers, AddPartitions) at a bounded latency price
            fetch_min_bytes=self.config.fetch_min_bytes,
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
            group_instance_id=self.config.group_instance_id,
        )
        self._consumer = consumer
        consumer.subscribe([self.logic.input_topic], listener=_Listener(self))
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(KafkaError, OSError):
                await consumer.stop()
            raise
        watch_stop = asyncio.Event()
        watcher = asyncio.create_task(
            kafka.watch_leaders(
                consumer, watch_stop, self.logic.name, on_health=self._set_heard, progress=self._progress
            )
        )
        try:
            while not stop.is_set():
                self._beat = time.monotonic()
                generation = self._generation
                wait_s = self._txns.wait_s(time.monotonic(), self.config.poll_timeout_ms / 1000)
                batches = await consumer.getmany(timeout_ms=int(wait_s * 1000), max_records=self.config.max_records)
                if self._failure is not None:  # aiokafka logs and swallows a listener's error: end the session
                    failure, self._failure = self._failure, None
                    raise failure
                async with self._lock:
                    if generation != self._generation:
                        # a rebalance ran during or after the fetch and re-positioned every partition at its
                        # committed offset: handling records fetched before it would apply them twice. Read
                        # them again instead (from their first offset, so none fetched after it is skipped).
                        self._refetch(consumer, batches)
                        batches = {}
                    if batches:
                        await self.logic.prepare(batches.values())
                    # each poll's outputs join the partition's open transaction; each partition has its own
                    # transactional producer, so the due ones commit concurrently (one round-trip per interval)
                    await self._handle_polled(batches)
                    await self._maybe_tick()
                    await self._commit_due()
                    self._update_gauges(consumer)
        finally:
            watch_stop.set()
            await watcher
            # not under the lock: stopping the consumer may run the rebalance listener, which takes it
            await kafka.close_consumer(consumer)
            async with self._lock:
                if stop.is_set():  # a clean stop commits what it has processed; a lost session cannot
                    await self._flush(self._txns.partitions())
                for partition in list(self.producers):
                    await self._close_producer(partition)
                if stop.is_set() and self._local is not None:
                    await self._local.close()
            log.info("stage=%s stopped", self.logic.name)

    @staticmethod
    def _refetch(consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Any]]) -> None:
        assigned = consumer.assignment()
        for tp, records in batches.items():
            if records and tp in assigned:
                consumer.seek(tp, records[0].offset)

    async def _handle_polled(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Handle each polled partition's records, the partitions concurrently; then recover any that failed.

        A partition's enqueue waits on Kafka at times: a new transaction's producer id, a new producer's metadata,
        a send whose batch for an output partition is full until the producer's request in flight comes back
        (aiokafka holds one batch per output partition and one request per broker). Handled one after another, the
        stage computed nothing while one waited and the broker had nothing to do while the stage computed;
        concurrently, one partition's records are processed while another's enqueue waits (issue 18: with this
        alone, ``loadtests.core_bench`` took the verifier from ~5,800 to ~8,200 events/s and the reconciler from
        ~7,800 to ~10,700). Each partition has its own producer and its own state in the logic, and ``process``
        runs whole between two awaits. Recoveries stay one after another (see ``_commit_due``).
        """
        handled = [(tp, records) for tp, records in batches.items() if tp.partition in self.producers and records]
        results = await asyncio.gather(*(self._handle(tp, records) for tp, records in handled), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        for (tp, _), ok in zip(handled, results, strict=True):
            if not ok:
                await self._recover(tp)

    async def _handle(self, tp: TopicPartition, records: Sequence[Any]) -> bool:
        """Process and enqueue one partition's records; False when its transaction was aborted (recover it)."""
        started = time.perf_counter()
        self._progress[tp] = time.time()
        EVENTS_IN.labels(self.logic.name).inc(len(records))
        outputs = self.logic.process(tp.partition, records, int(time.time() * 1000))
        ok = await self._enqueue(tp.partition, outputs, records[-1].offset + 1)
        self._next_offset[tp.partition] = records[-1].offset + 1
        BATCH_SECONDS.labels(self.logic.name).observe(time.perf_counter() - started)
        return ok

    async def _maybe_tick(self) -> None:
        if time.monotonic() - self._last_tick < self.config.tick_interval_s:
            return
        self._last_tick = time.monotonic()
        for partition, outputs in self.logic.tick(int(time.time() * 1000)).items():
            if outputs and partition in self.producers and not await self._enqueue(partition, outputs, None):
                assert self._consumer is not None  # the tick changed memory that was not committed: rebuild it
                await self._recover(TopicPartition(self.logic.input_topic, partition))

    async def _enqueue(self, partition: int, outputs: list[Output], next_offset: int | None) -> bool:
        """Add outputs (and the input position) to the partition's open transaction, beginning one if needed.

        ``send`` only queues each record in the producer's accumulator; delivery is awaited after the commit.
        False: the transaction was aborted, so the partition's memory must be rebuilt (``_recover``).
        """
        producer = self.producers[partition]
        txn = self._txns.get(partition)
        try:
            async with asyncio.timeout(TXN_CALL_TIMEOUT_S):
                if txn is None:  # a new transaction: its producer may be new too and know no output topic yet
                    await kafka.prefetch_topics(producer, self._output_topics.union(o.topic for o in outputs))
                    await producer.begin_transaction()
                    txn = self._txns.open(partition, time.monotonic())
                send = producer.send
                futures = txn.futures
                for o in outputs:
                    futures.append(
                        await send(
                            o.topic,
                            o.value,
                            key=o.key,
                            partition=self._partition_of(producer, o),
                            headers=list(o.headers),
                        )
                    )
        except ProducerFenced:
            return await self._fenced(partition)
        except (KafkaError, IllegalOperation, TimeoutError) as exc:
            # IllegalOperation (not a KafkaError): the producer's transaction had already failed inside aiokafka
            # (e.g. LeaderNotAvailable right after an outage), so it takes no more sends. It crashed the core.
            self._txns.discard(partition)
            self._forget(partition)  # see _commit: its memory holds what was just aborted
            await self._abort(partition, producer, exc)
            return False
        txn.outputs.extend(outputs)
        if next_offset is not None:
            txn.next_offset = next_offset
        if not txn.urgent and any(o.urgent for o in outputs):
            txn.urgent = True
        return True

    async def _commit_due(self) -> None:
        """Commit every transaction that is due (concurrently: one producer each); recover those that fail."""
        due = self._txns.due(time.monotonic())
        if not due:
            return
        # every commit settles before any error is raised (see _all_settled: gather alone would leave siblings running)
        results = await asyncio.gather(*(self._commit(partition) for partition in due), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        failed = [
            partition
            for partition, ok in zip(due, results, strict=True)
            if not ok and (partition in self.producers or self._still_assigned(partition))
        ]
        # one after another, as tested across full outages (recovering them concurrently was tried in issue 13 and
        # reverted with the longer transaction timeout); each failed partition already forgot its memory
        for partition in failed:
            await self._recover(TopicPartition(self.logic.input_topic, partition))

    async def _flush(self, partitions: list[int]) -> None:
        """Commit these partitions' open transactions now (before a revocation or a clean stop).

        One that fails is dropped together with the partition's memory, which it had made uncommitted.
        """
        for partition in partitions:
            if partition in self._txns and not await self._commit(partition):
                await self._close_producer(partition, discard=True)
                self._forget(partition)

    async def _commit(self, partition: int) -> bool:
        txn = self._txns.take(partition)
        producer = self.producers.get(partition)
        if txn is None or producer is None:
            return True
        started = time.monotonic()

        async def commit() -> list[Any]:
            if txn.next_offset is not None:
                tp = TopicPartition(self.logic.input_topic, partition)
                await producer.send_offsets_to_transaction({tp: txn.next_offset}, self.config.group_id)
            # every send delivered before the commit, never after: aiokafka would commit without a failed batch
            # (see kafka.delivered), the input offset with it, and those outputs would be lost for good
            written = await kafka.delivered(txn.futures)
            await producer.commit_transaction()
            return written

        try:
            written = await self._bounded(commit())
        except ProducerFenced:
            txn.abandon()  # its sends' failures are taken quietly (not "never retrieved")
            return await self._fenced(partition)
        except (KafkaError, IllegalOperation, TimeoutError) as exc:  # IllegalOperation: see _enqueue
            # forget its memory now, not only when the caller recovers it: the memory holds what was just aborted,
            # and if a sibling's recovery ends the session first, a lost session would keep it as matching the
            # committed changelog; re-read events would then count as already applied and never reach the state
            # (seen: a full outage right after a start, all four commits timing out together)
            self._forget(partition)
            txn.abandon()
            await self._abort(partition, producer, exc)
            return False
        took = time.monotonic() - started
        if took > SLOW_COMMIT_S:  # e.g. a commit that waited out a Kafka outage: when did it resume?
            log.info("stage=%s partition=%d transaction committed after %.1f s", self.logic.name, partition, took)
        self._committed(partition, txn, written)
        return True

    def _still_assigned(self, partition: int) -> bool:
        consumer = self._consumer
        return consumer is not None and TopicPartition(self.logic.input_topic, partition) in consumer.assignment()

    def _committed(self, partition: int, txn: OpenTransaction, written: list[Any]) -> None:
        self._count(txn.outputs)
        self._committed_changelog(partition, txn.outputs, written)

    async def _fenced(self, partition: int) -> bool:
        """After ProducerFenced: True when a newer owner has the partition (nothing to recover), False when it is
        still assigned here and must be recovered: the coordinator aborted the transaction itself (it outlived
        transaction_timeout_ms, e.g. across a Kafka outage) and bumped the epoch. Dropping such a partition left it
        assigned but never handled again (issue 13, the full-outage stall)."""
        await self._close_producer(partition, discard=True)
        self._forget(partition)
        mine = self._still_assigned(partition)
        log.warning("stage=%s partition=%d fenced still_assigned=%s", self.logic.name, partition, mine)
        return not mine

    async def _abort(self, partition: int, producer: AIOKafkaProducer, exc: Exception) -> None:
        log.warning("stage=%s partition=%d transaction failed error=%r", self.logic.name, partition, exc)
        TXN_ABORTS.labels(self.logic.name).inc()
        # AssertionError: aiokafka's state machine has no transaction to abort (the error came before
        # begin_transaction took effect, e.g. right after an outage; or a commit timed out mid-way);
        # TimeoutError: the coordinator does not answer. _recover replaces the producer either way: its
        # init_transactions fences this one and completes or aborts whatever this one left open.
        with contextlib.suppress(KafkaError, AssertionError, IllegalOperation, TimeoutError):
            await self._bounded(producer.abort_transaction())

    async def _bounded(self, call: Coroutine[Any, Any, T]) -> T:
        """``call``'s result, or TimeoutError once it has waited TXN_CALL_TIMEOUT_S while Kafka was heard (or the
        transaction's lifetime in all, once Kafka is heard): a coordinator that answers nobody is waited out, one
        that ignores us is not."""
        task = asyncio.ensure_future(call)
        waited_heard, started = 0.0, time.monotonic()
        lifetime = self.config.transaction_timeout_ms / 1000
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=TXN_CALL_TICK_S)
                if done:
                    return task.result()
                if self._heard:
                    waited_heard += TXN_CALL_TICK_S
                if waited_heard >= TXN_CALL_TIMEOUT_S:
                    raise TimeoutError(f"no answer within {TXN_CALL_TIMEOUT_S:.0f} s while Kafka answered")
                if self._heard and time.monotonic() - started >= lifetime:  # its coordinator aborts it anyway
                    raise TimeoutError(f"no answer within the transaction's lifetime ({lifetime:.0f} s)")
        finally:
            if not task.done():
                task.cancel()  # aiokafka shields its transaction manager's futures: only this wait ends

    def _committed_changelog(self, partition: int, outputs: list[Output], written: list[Any]) -> None:
        """Note the committed changelog records' offsets (and queue them for the local store)."""
        topic = self.logic.changelog_topic
        entries = [
            (o.key, o.value, meta.offset)
            for o, meta in zip(outputs, written, strict=True)
            if o.topic == topic and o.key is not None and meta.partition == partition
        ]
        if topic is None or not entries:
            return
        self._changelog_next[partition] = max(self._changelog_next.get(partition, 0), entries[-1][2] + 1)
        if self._local is not None:
            self._local.record(topic, partition, entries)

    def _count(self, outputs: list[Output]) -> None:
        """Metrics once per topic and reason, not per record (labels() costs a lock and a dict lookup)."""
        by_topic = Tally(o.topic for o in outputs)
        self._output_topics.update(by_topic)  # what a new producer prefetches (see _enqueue)
        for topic, n in by_topic.items():
            EVENTS_OUT.labels(self.logic.name, topic).inc(n)
        for reason, n in Tally(o.reject_reason for o in outputs if o.reject_reason).items():
            REJECTS.labels(self.logic.name, reason).inc(n)

    def _partition_of(self, producer: AIOKafkaProducer, output: Output) -> int | None:
        """The producer's own key hash (:func:`consent_io.kafka.partition_for`), memoised per (topic, key)."""
        if output.partition is not None or output.key is None:
            return output.partition
        partitions = kafka.known_partitions(producer, output.topic)
        if not partitions:
            return None  # metadata not known yet: the producer fetches it and partitions itself
        memo_key = (output.topic, len(partitions), output.key)
        cached = self._partitions.get(memo_key)
        if cached is None:
            if len(self._partitions) >= PARTITION_MEMO_MAX:
                self._partitions.clear()
            cached = self._partitions[memo_key] = kafka.partition_for(output.key, partitions)
        return cached

    async def _recover(self, tp: TopicPartition) -> None:
        """After an aborted transaction: new producer, state from the changelog, rewind to committed.

        Bounded by :data:`RECOVER_TIMEOUT_S`: a recovery that cannot finish raises TimeoutError, which ends the
        session (``run`` restarts it with backoff; the partition is then forgotten and restored afresh).
        """
        try:
            await asyncio.wait_for(self._recover_partition(tp), RECOVER_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "stage=%s partition=%d recovery timed out; restarting the session", self.logic.name, tp.partition
            )
            await self._close_producer(tp.partition, discard=True)
            self._forget(tp.partition)
            raise

    async def _recover_partition(self, tp: TopicPartition) -> None:
        started = time.monotonic()
        await self._close_producer(tp.partition, discard=True)
        self._forget(tp.partition)
        closed = time.monotonic()
        await self._open_partition(tp.partition)
        opened = time.monotonic()
        assert self._consumer is not None
        await kafka.seek_committed_or_start(self._consumer, [tp])
        log.info(
            "stage=%s partition=%d recovered in %.1f s (close %.1f, open and restore %.1f, seek %.1f)",
            self.logic.name, tp.partition, time.monotonic() - started, closed - started, opened - closed,
            time.monotonic() - opened,
        )  # fmt: skip

    def _forget(self, partition: int) -> None:
        self.logic.forget(partition)
        self._changelog_next.pop(partition, None)
        self._retained.discard(partition)

    async def _assign(self, partitions: list[int]) -> None:
        try:
            await asyncio.wait_for(self._assign_partitions(partitions), RECOVER_TIMEOUT_S)
        except (KafkaError, OSError, TimeoutError) as exc:
            # named with its partitions: the restores it did are this assignment's, not a storm (loadtests.coreproc)
            log.warning("stage=%s assignment=%s failed error=%r", self.logic.name, sorted(partitions), exc)
            self._failure = exc

    async def _assign_partitions(self, partitions: list[int]) -> None:
        async with self._lock:
            self._generation += 1
            self.assignments.append(sorted(partitions))
            for partition in self._retained - set(partitions):
                self._forget(partition)  # kept across the rebalance, but assigned elsewhere
            # concurrently: each opening is a producer's InitProducerId and a changelog reader's bootstrap and
            # ListOffsets, a few round trips that took ~1-4 s each under load one after the other (issue 13)
            await _all_settled(self._open_partition(p) for p in partitions if p not in self.producers)
            self._retained.clear()
            if self._consumer is not None:  # an empty partition has no committed offset: position it now
                tps = [TopicPartition(self.logic.input_topic, p) for p in partitions]
                await kafka.seek_committed_or_start(self._consumer, tps)
            log.info("stage=%s assigned=%s", self.logic.name, sorted(self.producers))
        self._set_holding(True)
        self.ready.set()

    async def _revoke(self, partitions: list[int]) -> None:
        self._set_holding(False)
        async with self._lock:
            self._generation += 1
            await self._flush([p for p in partitions if p in self.producers])  # commit what was processed
            for partition in partitions:
                await self._close_producer(partition)
                if partition in self._changelog_next:
                    self._retained.add(partition)  # its memory matches the committed changelog up to there
                else:
                    self._forget(partition)

    async def _open_partition(self, partition: int) -> None:
        producer = kafka.transactional_producer(
            self.config.kafka,
            f"{self.config.transactional_prefix}.{self.logic.name}.{partition}",
            linger_ms=self.config.linger_ms,
            compression_type=self.config.compression,
            transaction_timeout_ms=self.config.transaction_timeout_ms,
            delivery_timeout_ms=self.config.transaction_timeout_ms,  # a batch lives as long as its transaction
            max_batch_size=1024 * 1024,
        )
        started = time.monotonic()
        await producer.start()  # init_transactions: fences the previous owner, aborts its open txn
        if (took := time.monotonic() - started) > SLOW_COMMIT_S:
            log.info("stage=%s partition=%d producer started after %.1f s", self.logic.name, partition, took)
        self.producers[partition] = producer
        if self.logic.changelog_topic is not None:
            await self._restore(partition)

    async def _restore(self, partition: int) -> None:
        assert self.logic.changelog_topic is not None
        kept = self._changelog_next.get(partition) if partition in self._retained else None
        if kept is None:
            self._forget(partition)
        stats = await restore_partition(
            self.config.kafka,
            self.logic.changelog_topic,
            partition,
            lambda key, value: self.logic.restore(partition, key, value),
            self._local,
            checkpoint=kept,
        )
        self._changelog_next[partition] = stats.end
        kind = "kept" if kept is not None else "full" if stats.full else "local"
        self.restores.append((partition, kind, stats.tail))
        RESTORES.labels(self.logic.name, kind).inc()
        log.info(
            "stage=%s partition=%d restored=%d restore=%s local=%d tail=%d from=%d",
            self.logic.name, partition, stats.local + stats.tail, kind, stats.local, stats.tail, stats.start,
        )  # fmt: skip

    async def _close_producer(self, partition: int, *, discard: bool = False) -> None:
        """``discard``: the producer's transaction failed or was fenced, so nothing it holds may be delivered."""
        if self._txns.discard(partition):  # its memory is ahead of the committed changelog: rebuild it later
            self._forget(partition)
        producer = self.producers.pop(partition, None)
        if producer is not None:
            # bounded: Kafka may be down; a discarded one is bounded tighter (its successor fences it anyway)
            await kafka.close_producer(producer, DISCARD_CLOSE_S if discard else kafka.CLOSE_TIMEOUT_S, discard=discard)

    def _update_gauges(self, consumer: AIOKafkaConsumer) -> None:
        STATE_SIZE.labels(self.logic.name).set(self.logic.size())
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = self._next_offset.get(tp.partition)
            if highwater is not None and position is not None:
                LAG.labels(self.logic.name, str(tp.partition)).set(max(0, highwater - position))
