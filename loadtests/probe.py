"""Downstream subscribers used as probes: arrival latency per key, and loss/duplication counts by key."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from consent_io import kafka
from consent_io.connection import KafkaConnection
from loadtests.latency import LatencyRecorder

__all__ = ["ArrivalProbe", "TopicAudit", "audit_topic"]


@dataclass
class _Watch:
    # key -> (perf_counter origin of its event, recorder; None = this watch's own recorder)
    origins: dict[str, tuple[float, LatencyRecorder | None]] = field(default_factory=dict)
    recorder: LatencyRecorder = field(default_factory=LatencyRecorder)
    arrived: int = 0
    last_arrival: float = 0.0
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (perf_counter, arrived so far)

    def steady_rate(self, low: float = 0.1, high: float = 0.9) -> float | None:
        """Arrivals per second between the ``low`` and ``high`` shares of all arrivals (ramp-up and tail cut)."""
        if self.arrived < 100 or len(self.timeline) < 3:
            return None
        lo = next(p for p in self.timeline if p[1] >= low * self.arrived)
        hi = next(p for p in self.timeline if p[1] >= high * self.arrived)
        return (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else None


class ArrivalProbe:
    """A read_committed subscriber on some topics; records time from each expected key's origin to arrival."""

    def __init__(self, conn: KafkaConnection, topics: tuple[str, ...]) -> None:
        self.conn = conn
        self.watches = {t: _Watch() for t in topics}
        self.records = 0
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.on_arrival: Callable[[str, str, float], None] | None = None  # (topic, key, now)

    def expect(self, topic: str, key: str, origin: float, recorder: LatencyRecorder | None = None) -> None:
        self.watches[topic].origins[key] = (origin, recorder)

    def expect_many(self, topic: str, keys: tuple[str, ...], origin: float) -> None:
        origins = self.watches[topic].origins
        entry = (origin, None)
        for key in keys:
            origins[key] = entry

    def waiting(self, topic: str) -> int:
        return len(self.watches[topic].origins)

    def arrived(self, topic: str) -> int:
        return self.watches[topic].arrived

    async def start(self) -> None:
        consumer = kafka.consumer(
            self.conn,
            *self.watches,
            group_id=None,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name="arrival-probe")

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=50, max_records=20_000)
            now = time.perf_counter()
            for tp, records in batches.items():
                watch = self.watches[tp.topic]
                before = watch.arrived
                origins = watch.origins
                self.records += len(records)
                for record in records:
                    key = record.key.decode() if record.key else ""
                    entry = origins.pop(key, None)
                    if entry is None:
                        continue
                    origin, recorder = entry
                    (recorder or watch.recorder).record((now - origin) * 1000.0)
                    watch.arrived += 1
                    watch.last_arrival = now
                    if self.on_arrival is not None:
                        self.on_arrival(tp.topic, key, now)
                if watch.arrived != before:
                    watch.timeline.append((now, watch.arrived))

    async def wait_drained(self, topic: str, timeout_s: float, tick: Callable[[], None] | None = None) -> bool:
        """True once no expected key of ``topic`` is outstanding (False on timeout)."""
        deadline = time.monotonic() + timeout_s
        while self.watches[topic].origins:
            if time.monotonic() > deadline:
                return False
            if tick is not None:
                tick()
            await asyncio.sleep(0.05)
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


@dataclass(frozen=True, slots=True)
class TopicAudit:
    records: int
    lost: int  # expected occurrences never seen
    duplicated: int  # occurrences beyond the expected count
    unexpected: int  # keys nobody expected (outside ``ignore_prefixes``)
    mean_value_bytes: float


async def _behind(consumer: AIOKafkaConsumer, parts: list[TopicPartition], ends: dict[TopicPartition, int]) -> bool:
    for tp in parts:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


async def audit_topic(
    conn: KafkaConnection,
    topic: str,
    expected: dict[str, int],
    ignore_prefixes: tuple[str, ...] = (),
    timeout_s: float = 60,
) -> TopicAudit:
    """Read every committed record of ``topic`` and compare the key counts with ``expected``."""
    consumer = kafka.consumer(
        conn,
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    seen: dict[str, int] = {}
    total = 0
    size = 0
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            await kafka.refresh_metadata(consumer)
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout_s
        while await _behind(consumer, parts, ends) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200, max_records=50_000)).values():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    seen[key] = seen.get(key, 0) + 1
                    total += 1
                    size += len(record.value or b"")
    finally:
        await consumer.stop()
    lost = sum(max(0, n - seen.get(k, 0)) for k, n in expected.items())
    duplicated = sum(max(0, seen.get(k, 0) - n) for k, n in expected.items())
    unexpected = sum(n for k, n in seen.items() if k not in expected and not k.startswith(ignore_prefixes))
    return TopicAudit(total, lost, duplicated, unexpected, size / total if total else 0.0)
