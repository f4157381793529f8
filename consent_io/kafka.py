"""The Kafka adapter: every aiokafka producer, consumer and admin client is built here.

Factories take one :class:`~consent_io.connection.KafkaConnection` and honour its security fields
(``security_protocol="SSL"``: an SSL context from ``ca_file``/``cert_file``/``key_file``), so a caller
only says what kind of client it wants. Consumers default to ``read_committed`` without auto commit:
every reader of this product sees committed transactions only and commits (if at all) itself.

:class:`KafkaTopicReader` is the one way to read a topic from the start (every partition or some,
no consumer group): :func:`read_to_end` and :func:`iter_to_end` read up to the end offsets seen at the
start; a long-lived follower keeps calling :meth:`KafkaTopicReader.fetch`.

The private aiokafka attributes this product relies on are touched only in this module
(``consumer._client`` in :func:`partitions_for`, :func:`refresh_metadata` and :func:`request_metadata_refresh`;
the producer's ``client.cluster`` in :func:`known_partitions`, its ``_message_accumulator`` in
:func:`close_producer` and :func:`transactional_producer`; the sender module's ``BACKOFF_OVERRIDE``, see
:data:`CONCURRENT_TXN_BACKOFF_S`); ``tests/unit/io`` asserts each still exists.

Recovering from a paused or killed broker (issue 13): positions are set explicitly (:func:`seek_to_start`,
:func:`seek_committed_or_start`) through ``beginning_offsets``, whose retries refresh metadata, never through
``seek_to_beginning``/auto reset, whose ListOffsets retries do not; and :func:`watch_leaders` forces a metadata
refresh when an assigned partition goes silent (:class:`consent_io.recovery.StallWatch`).

Errors::

    TopicMissingError   TOPIC_MISSING   the topic has no partitions after METADATA_ATTEMPTS tries
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.producer import sender as _aiokafka_sender

from consent_io.connection import KafkaConnection
from consent_io.recovery import MetadataThrottle, RateLimit, StallWatch, abandon
from consent_io.tls import kafka_security_kwargs

__all__ = [
    "CONCURRENT_TXN_BACKOFF_S",
    "MAX_REQUEST_BYTES",
    "METADATA_ATTEMPTS",
    "METADATA_RETRY_S",
    "KafkaTopicReader",
    "RecordSink",
    "TopicMissingError",
    "TopicReader",
    "admin",
    "assign_all",
    "close_consumer",
    "close_producer",
    "consumer",
    "iter_to_end",
    "known_partitions",
    "murmur2",
    "partition_for",
    "partitions_for",
    "prefetch_topics",
    "producer",
    "read_to_end",
    "refresh_metadata",
    "request_metadata_refresh",
    "seek_committed_or_start",
    "seek_to_start",
    "send_all",
    "transactional_producer",
    "watch_leaders",
]

log = logging.getLogger(__name__)

# Every producer's max_request_size, set by the factories below (a caller cannot raise it): Kafka's broker
# default message.max.bytes (1 MiB + 12 bytes), which this product's topics keep. Everything the product
# writes is bounded below it: a signed batch is at most consent_wire.signing.MAX_BATCH_BYTES (1 MiB - 8 KiB,
# leaving room for the key and record overhead) and a dead letter at most that plus ~2 KiB of headers
# (broker.deadletter). A record over it would fail every retry; the producer refuses it before sending.
MAX_REQUEST_BYTES = 1_048_588
# up to 10 s for a just-created topic to appear in metadata (as the audit reader had: 50 x 0.2 s)
METADATA_ATTEMPTS = 50
METADATA_RETRY_S = 0.2
ADMIN_REQUEST_TIMEOUT_MS = 30_000  # topic creation on a loaded single-node broker took up to ~10 s
READ_BATCH_RECORDS = 10_000  # per getmany while reading to the end: restores are throughput-bound
READ_POLL_MS = 500
# A read to the end that gets nothing for this long while records remain is stuck (every broker down): it
# raises, so its caller (a stage's restore) can end its session and retry with backoff instead of hanging.
READ_STALL_S = 30.0
WATCH_INTERVAL_S = 0.5  # how often watch_leaders looks at the partitions' last fetch times
# Closing a client must not wait for Kafka (issue 13, the full-outage stall): a producer's stop() waits until
# every pending batch is delivered, forever while every broker is down, and a stage whose session ended could
# then never start the next one. After this long its undelivered batches are failed (a transactional
# producer's open transaction is aborted by the next owner's init_transactions) and the close completes.
CLOSE_TIMEOUT_S = 10.0
# A transaction begun right after the previous one committed asks to add its first partition while the
# coordinator is still writing the last one's markers, and is answered CONCURRENT_TRANSACTIONS; aiokafka then waits
# a fixed 20 ms (its sender's BACKOFF_OVERRIDE, KAFKA-5477) before asking again. Measured on the tests' stack
# (one broker, TLS, 14 records of 400 B per transaction, back to back): 15-19 ms per transaction with 20 ms, 6-7 ms
# with 2-5 ms. Every back-to-back writer pays it: the audit appender per decision batch (issue 16: an answered
# decision waited about two of those cycles), each stage partition's next transaction. 5 ms: a few cheap retries
# (one small request each) instead of a 20 ms stall. The extra retries do not load a busy broker more: `make bench`
# QUICK at half load, 20 ms then 5 ms: Kafka CPU 334 -> 230 us/event, end-to-end p50 1,558 -> 1,054 ms.
CONCURRENT_TXN_BACKOFF_S = 0.005
_aiokafka_sender.BACKOFF_OVERRIDE = CONCURRENT_TXN_BACKOFF_S  # private: tests/unit/io pins it


class TopicMissingError(Exception):
    """A topic has no partitions: it was never created (``consent-broker topics create``)."""

    reason = "TOPIC_MISSING"
    retriable = False


class RecordSink(Protocol):
    """Where a service writes records: ``send_and_wait`` returns once the write is acknowledged; ``send`` queues
    the write and returns its delivery future (many in flight: see :func:`send_all`)."""

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any: ...

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> asyncio.Future[Any]: ...


async def send_all(sink: RecordSink, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> int:
    """Write every ``(topic, key, value)`` and return once each is acknowledged (raises the first that failed).

    All are queued before any is awaited, so they share requests and round trips, where one ``send_and_wait``
    after another waits a round trip each (the mirror's site feeds, issue 18: agents' replicas ~20-30 s behind
    under load). The producer keeps each partition's order. Returns how many were written."""
    futures: list[asyncio.Future[Any]] = []
    try:
        for topic, key, value in records:  # a send refused at once (too large, say) takes the queued ones down too
            futures.append(await sink.send(topic, value, key=key))
        await delivered(futures)
    except BaseException:
        abandon(futures)
        raise
    return len(futures)


class TopicReader(Protocol):
    """Reads a topic from the start; ``caught_up`` once at the end offsets seen by ``start`` (or ``latest_ends``)."""

    async def start(self) -> None: ...

    async def fetch(self, timeout_ms: int = ..., max_records: int | None = ...) -> dict[int, list[Any]]: ...

    async def latest_ends(self) -> dict[int, int]: ...

    async def caught_up(self) -> bool: ...

    async def stop(self) -> None: ...


def _common(conn: KafkaConnection) -> dict[str, Any]:
    """bootstrap_servers and, for SSL, a verifying mTLS context (key file mode checked): see consent_io.tls."""
    return kafka_security_kwargs(conn)


def _bounded_request(opts: dict[str, Any]) -> dict[str, Any]:
    """``opts`` with max_request_size = MAX_REQUEST_BYTES (a lower value is kept, a higher one refused)."""
    size = opts.get("max_request_size", MAX_REQUEST_BYTES)
    if size > MAX_REQUEST_BYTES:
        raise ValueError(f"max_request_size {size} is over the broker's message.max.bytes {MAX_REQUEST_BYTES}")
    return {**opts, "max_request_size": size}


def _throttle_metadata(client: Any | None) -> None:
    """Space the client's forced metadata refreshes (:class:`consent_io.recovery.MetadataThrottle`).

    A refresh asked for too soon is answered, False, once the interval has passed, without a request: every
    caller in aiokafka loops or waits on it, so it simply comes back a little later.
    """
    if client is None:  # a stand-in built by a unit test
        return
    original = client.force_metadata_update  # private to aiokafka: see tests/unit/io
    throttle = MetadataThrottle()

    def force_metadata_update() -> asyncio.Future[bool]:
        loop = asyncio.get_running_loop()
        delay = throttle.wait(loop.time())
        if delay <= 0:
            future: asyncio.Future[bool] = original()
            return future
        later: asyncio.Future[bool] = loop.create_future()
        loop.call_later(delay, _resolve, later)
        return later

    client.force_metadata_update = force_metadata_update


def _resolve(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


def producer(conn: KafkaConnection, **opts: Any) -> AIOKafkaProducer:
    """A producer (not started); ``opts`` are aiokafka's (acks, linger_ms, enable_idempotence, ...).

    ``max_request_size`` is :data:`MAX_REQUEST_BYTES` unless ``opts`` lower it.
    """
    built = AIOKafkaProducer(**_common(conn), **_bounded_request(opts))
    _throttle_metadata(getattr(built, "client", None))
    return built


def transactional_producer(
    conn: KafkaConnection, transactional_id: str, *, delivery_timeout_ms: int | None = None, **opts: Any
) -> AIOKafkaProducer:
    """A transactional producer (idempotent, acks=all, max_request_size as :func:`producer`).

    ``start()`` fences any older owner of the id. ``delivery_timeout_ms``: how long a queued batch may wait for
    its partition's leader before it fails (Java's ``delivery.timeout.ms``). aiokafka has no such setting: a
    batch lives ``request_timeout_ms`` (40 s), the bound on one request's answer too. A batch that fails that way
    fails its transaction, so right after an outage longer than 40 s every transaction open across it was aborted
    and its partition recovered (issue 13) although the transaction itself could still have committed. Give the
    transaction's own timeout here (a longer request timeout would wait as long on a paused broker's answers).
    """
    settings: dict[str, Any] = {"enable_idempotence": True, "acks": "all", **_bounded_request(opts)}
    built = AIOKafkaProducer(**_common(conn), transactional_id=transactional_id, **settings)
    _throttle_metadata(getattr(built, "client", None))
    if delivery_timeout_ms is not None:
        built._message_accumulator._batch_ttl = delivery_timeout_ms / 1000  # private: tests/unit/io pins it
    return built


async def delivered(futures: Sequence[asyncio.Future[Any]]) -> list[Any]:
    """Each send's metadata, in order; raises the first send that failed.

    Await this *before* ``commit_transaction``: aiokafka commits a transaction even when one of its batches failed.
    A batch whose partition has no leader for longer than its time to live (right after an outage, say) fails
    its records' futures with ``LeaderNotAvailable`` but leaves the transaction committable, so the commit goes
    through without those records, offsets included (issue 13: a verifier's chain cursor lost that way, and the
    agent's next batches dead-lettered ``GAP_TIMEOUT``). A send that fails here means: abort, never commit.
    """
    # one await each: asyncio.gather adds a callback per record (10% of the verifier's time when profiled)
    return [await future for future in futures]


@contextlib.asynccontextmanager
async def transaction(producer: AIOKafkaProducer) -> AsyncIterator[list[asyncio.Future[Any]]]:
    """Like aiokafka's ``producer.transaction()``, but commits only if every send put in the list was delivered.

    Append each ``await producer.send(...)`` future to the list this yields; see :func:`delivered` for why.
    """
    futures: list[asyncio.Future[Any]] = []
    await producer.begin_transaction()
    try:
        yield futures
        await delivered(futures)
    except BaseException:
        abandon(futures)  # never awaited now
        if not producer._txn_manager.is_fatal_error():  # private: as aiokafka's own transaction context does
            await producer.abort_transaction()
        raise
    await producer.commit_transaction()


def consumer(conn: KafkaConnection, *topics: str, **opts: Any) -> AIOKafkaConsumer:
    """A consumer (not started): read_committed and no auto commit unless ``opts`` say otherwise."""
    settings: dict[str, Any] = {"enable_auto_commit": False, "isolation_level": "read_committed", **opts}
    built = AIOKafkaConsumer(*topics, **_common(conn), **settings)
    _throttle_metadata(getattr(built, "_client", None))  # private: see tests/unit/io
    return built


async def close_producer(
    producer: AIOKafkaProducer, timeout_s: float = CLOSE_TIMEOUT_S, *, discard: bool = False
) -> bool:
    """Stop ``producer`` within about twice ``timeout_s`` even while Kafka is down; False if batches were dropped.

    After ``timeout_s`` its undelivered batches are failed; after another ``timeout_s`` (its sender still
    retrying, e.g. looking for a transaction coordinator) the stop is cancelled. Errors are logged, not raised:
    the producer is being discarded either way. ``discard``: what it still holds belongs to a transaction that
    is aborted (or will be, when its successor fences it), so its batches are failed at once, not waited for:
    a stage recovering a partition during an outage waited 16 s here, every partition held meanwhile.
    """
    stopping = asyncio.ensure_future(producer.stop())
    done, _ = await asyncio.wait({stopping}, timeout=0 if discard else timeout_s)
    done_in_time = bool(done)
    if not done:  # private to aiokafka (see tests/unit/io): fail what cannot be delivered so stop() can go on
        producer._message_accumulator.fail_all(KafkaConnectionError("producer closed with undelivered batches"))
        done, _ = await asyncio.wait({stopping}, timeout=timeout_s)
    if not done:
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError, OSError):
            await stopping
        log.warning("producer close cut short after %.0f s (Kafka unreachable)", 2 * timeout_s)
        return False
    if not stopping.cancelled() and (error := stopping.exception()) is not None:
        log.info("producer close error=%r", error)
    return done_in_time


async def close_consumer(consumer: AIOKafkaConsumer, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
    """Stop ``consumer`` (leaving its group if the coordinator answers) within ``timeout_s``; False if cut short."""
    try:
        await asyncio.wait_for(consumer.stop(), timeout_s)
    except TimeoutError:
        log.warning("consumer close cut short after %.0f s", timeout_s)
        return False
    except (KafkaError, OSError) as exc:
        log.info("consumer close error=%r", exc)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are being cancelled: pass it on
        # aiokafka's fetcher.close() awaits the fetch tasks it has just cancelled and lets that escape
        log.info("consumer close: the fetcher's cancellation escaped stop()")
    return True


def admin(conn: KafkaConnection, **opts: Any) -> AIOKafkaAdminClient:
    """An admin client (not started)."""
    settings: dict[str, Any] = {"request_timeout_ms": ADMIN_REQUEST_TIMEOUT_MS, **opts}
    return AIOKafkaAdminClient(**_common(conn), **settings)


async def partitions_for(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic`` from fresh metadata (``consumer.partitions_for_topic`` reads a cache)."""
    metadata = await consumer._client.fetch_all_metadata()  # private: see tests/unit/io
    partitions = metadata.partitions_for_topic(topic)
    return set(partitions) if partitions else set()


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Make a started consumer refresh its cluster metadata now (e.g. after a topic was created)."""
    await consumer._client.force_metadata_update()  # private: see tests/unit/io


def request_metadata_refresh(consumer: AIOKafkaConsumer) -> None:
    """Ask a started consumer to refresh its metadata soon, without waiting (a paused broker may not answer)."""
    consumer._client.force_metadata_update()  # private: see tests/unit/io; returns a future we need not await


async def seek_to_start(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> None:
    """Position ``tps`` at their first offsets, explicitly.

    ``seek_to_beginning`` leaves the reset to the fetcher, whose ListOffsets retry ignores
    ``NotLeaderForPartition`` (retried every 100 ms on stale metadata, for minutes after a broker pause);
    ``beginning_offsets`` refreshes metadata on each such error.
    """
    if not tps:
        return
    starts = await consumer.beginning_offsets(list(tps))
    for tp in tps:
        consumer.seek(tp, starts[tp])


async def seek_committed_or_start(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> None:
    """Position each of ``tps`` at its group's committed offset, or at its start when it has none.

    An empty partition never gets a committed offset, so without this every rebalance would leave it to the
    fetcher's auto reset (see :func:`seek_to_start`).
    """
    fresh = []
    for tp in tps:
        committed = await consumer.committed(tp)
        if committed is None:
            fresh.append(tp)
        else:
            consumer.seek(tp, committed)
    await seek_to_start(consumer, fresh)


async def watch_leaders(
    consumer: AIOKafkaConsumer,
    stop: asyncio.Event,
    name: str,
    *,
    watch: StallWatch[TopicPartition] | None = None,
    clock: Callable[[], float] = time.time,
    on_health: Callable[[bool], None] | None = None,
    progress: Mapping[TopicPartition, float] | None = None,
) -> None:
    """Until ``stop``: force a metadata refresh (with backoff) whenever an assigned partition goes silent.

    Silent = no fetch response for it (``last_poll_timestamp``, wall-clock ms) for ``watch.stale_after_s``:
    its leader is paused, dead or moved. One rate-limited log line per stall, not one per retry.
    ``on_health(False)`` while any assigned partition is silent, ``on_health(True)`` once none is.
    ``progress``: when the caller last consumed records of each partition (wall-clock s): a partition whose
    fetched records are still being worked through is not fetched meanwhile, and is not silent either.
    """
    watch = watch or StallWatch[TopicPartition]()
    lines = RateLimit(interval_s=30.0)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_S)
        heard: dict[TopicPartition, float | None] = {}
        for tp in consumer.assignment():
            last_ms = consumer.last_poll_timestamp(tp)
            last = last_ms / 1000 if last_ms else None
            worked = progress.get(tp) if progress is not None else None
            heard[tp] = last if worked is None else max(worked, last or worked)
        verdict = watch.observe(clock(), heard)
        if on_health is not None and heard:
            on_health(not verdict.stale)
        if verdict.refresh:
            request_metadata_refresh(consumer)
            held = lines.allow("stall", time.monotonic())
            if held is not None:
                log.warning(
                    "client=%s silent partitions=%s; refreshing metadata (%d similar lines held back)",
                    name,
                    ",".join(f"{tp.topic}/{tp.partition}" for tp in verdict.stale),
                    held,
                )


def known_partitions(producer: AIOKafkaProducer, topic: str) -> set[int] | None:
    """The partitions of ``topic`` in the producer's metadata cache, or None if not known yet."""
    partitions = producer.client.cluster.partitions_for_topic(topic)  # undocumented: see tests/unit/io
    return set(partitions) if partitions else None


def murmur2(data: bytes) -> int:
    """Kafka's key hash (Java's ``Utils.murmur2``, as aiokafka's ``partitioner.murmur2``), ~3x faster.

    aiokafka's pure-Python version assembles each 4-byte word from single bytes and masks after every step
    (~8 us for a 32-character patient key, once per record the verifier keys by patient: issue 18). Here the
    words come from one ``struct`` unpack and each step masks once. tests/unit/io checks it against aiokafka's.
    """
    m = 0x5BD1E995
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    if words:
        for k in struct.unpack_from(f"<{words}I", data):
            k = (k * m) & 0xFFFFFFFF
            k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
            h = ((h * m) & 0xFFFFFFFF) ^ k
    tail, base = length & 3, length & ~3
    if tail >= 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h = ((h ^ data[base]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: Iterable[int]) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions`` (aiokafka's and Java's)."""
    ordered = sorted(partitions)
    return ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)]


async def prefetch_topics(producer: AIOKafkaProducer, topics: Iterable[str]) -> None:
    """Fetch, in one metadata request, the partitions of every topic in ``topics`` the producer does not know yet.

    Otherwise a new producer's first send to each topic asks for that topic alone, and the refreshes after the
    first are spaced by :func:`_throttle_metadata`: a fresh producer (every assignment and recovery starts one per
    partition) waited ~0.25 s per output topic before its first transaction (issue 18; issue 13's catch-up).
    """
    client = producer.client
    missing = [t for t in topics if client.cluster.partitions_for_topic(t) is None]
    if missing:  # ``_topics``: the client's tracked topic set, private (see tests/unit/io)
        await client.set_topics([*client._topics, *missing])


async def assign_all(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to a started consumer (no group), from the start; returns them."""
    partitions: set[int] = set()
    for _ in range(METADATA_ATTEMPTS):
        partitions = await partitions_for(consumer, topic)
        if partitions:
            break
        await asyncio.sleep(METADATA_RETRY_S)
    if not partitions:
        raise TopicMissingError(f"topic {topic} does not exist; run `consent-broker topics create`")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await seek_to_start(consumer, tps)
    return tps


class KafkaTopicReader:
    """Reads every partition of ``topic`` (or only ``partitions``) from the start, read_committed, no group.

    ``start`` records the end offsets (``latest_ends`` asks again); ``caught_up`` is true once every position
    reached them.
    """

    def __init__(
        self, conn: KafkaConnection, topic: str, *, partitions: Sequence[int] | None = None, **opts: Any
    ) -> None:
        self.topic = topic
        self._partitions = partitions
        self.consumer = consumer(conn, **opts)
        self.starts: dict[TopicPartition, int] = {}
        self.ends: dict[TopicPartition, int] = {}

    async def start(self, positions: Mapping[int, int] | None = None) -> None:
        """Assign the partitions from the start, or from ``positions`` (partition -> next offset) where given."""
        await self.consumer.start()
        if self._partitions is None:
            tps = await assign_all(self.consumer, self.topic)
        else:
            tps = [TopicPartition(self.topic, p) for p in self._partitions]
            self.consumer.assign(tps)
            await seek_to_start(self.consumer, tps)
        for tp in tps:
            if positions and tp.partition in positions:
                self.consumer.seek(tp, positions[tp.partition])
        self.starts = {tp: await self.consumer.position(tp) for tp in tps}
        self.ends = await self.consumer.end_offsets(tps)

    def seek(self, partition: int, offset: int) -> None:
        """Read ``partition`` from ``offset`` on (e.g. a local checkpoint's) instead of from its start."""
        self.consumer.seek(TopicPartition(self.topic, partition), offset)

    async def fetch(self, timeout_ms: int = READ_POLL_MS, max_records: int | None = None) -> dict[int, list[Any]]:
        """One fetch: partition -> records (possibly empty)."""
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return {tp.partition: records for tp, records in batches.items()}

    async def latest_ends(self) -> dict[int, int]:
        """Ask for the end offsets again (one ListOffsets): ``caught_up`` is then measured against them."""
        self.ends = await self.consumer.end_offsets(list(self.ends))
        return {tp.partition: end for tp, end in self.ends.items()}

    async def caught_up(self) -> bool:
        for tp, end in self.ends.items():
            if await self.consumer.position(tp) < end:
                return False
        return True

    async def stop(self) -> None:
        await self.consumer.stop()

    async def to_end(self) -> AsyncIterator[Any]:
        """Every record below the end offsets seen at ``start``, partition by partition in offset order.

        Raises ``KafkaTimeoutError`` when no record arrives for :data:`READ_STALL_S` while some remain.
        """
        loop = asyncio.get_running_loop()
        for tp, end in sorted(self.ends.items(), key=lambda item: item[0].partition):
            progressed = loop.time()
            while (position := await self.consumer.position(tp)) < end:
                fetched = await self.consumer.getmany(tp, timeout_ms=READ_POLL_MS, max_records=READ_BATCH_RECORDS)
                if await self.consumer.position(tp) > position:
                    progressed = loop.time()
                elif loop.time() - progressed > READ_STALL_S:
                    raise KafkaTimeoutError(
                        f"reading {tp.topic}/{tp.partition} to offset {end}: nothing for {READ_STALL_S:.0f} s "
                        f"at offset {position}"
                    )
                for batch in fetched.values():
                    for record in batch:
                        if record.offset < end:
                            yield record


async def iter_to_end(
    conn: KafkaConnection,
    topic: str,
    *,
    partitions: Sequence[int] | None = None,
    positions: Mapping[int, int] | None = None,
    **opts: Any,
) -> AsyncIterator[Any]:
    """Stream every committed record of ``topic`` (from ``positions`` where given: partition -> offset) up to
    the end offsets seen at the start."""
    reader = KafkaTopicReader(conn, topic, partitions=partitions, **opts)
    await reader.start(positions)
    try:
        async for record in reader.to_end():
            yield record
    finally:
        await reader.stop()


async def read_to_end(
    conn: KafkaConnection, topic: str, *, partitions: Sequence[int] | None = None, **opts: Any
) -> list[Any]:
    """Every committed record of ``topic`` up to the end offsets seen at the start (partition order)."""
    return [record async for record in iter_to_end(conn, topic, partitions=partitions, **opts)]
