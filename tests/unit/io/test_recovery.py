"""Issue 13 item 2: when to refresh metadata for silent partitions, and one log line per kind of retry."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import TopicPartition

from consent_io import kafka
from consent_io.logs import RetryLogFilter, quiet_client_retries
from consent_io.recovery import RateLimit, StallWatch


def test_partitions_heard_from_recently_need_no_refresh() -> None:
    watch = StallWatch[int](stale_after_s=2.0)
    assert not watch.observe(100.0, {0: 99.5, 1: None}).refresh
    assert not watch.observe(101.9, {0: 101.8, 1: 101.0}).refresh


def test_a_partition_silent_beyond_the_limit_forces_a_refresh_then_backs_off_exponentially() -> None:
    watch = StallWatch[int](stale_after_s=2.0, base_s=0.5, cap_s=2.0)
    heard = {0: 100.0, 1: 100.0}
    watch.observe(100.0, heard)
    silent = {0: 103.0, 1: 100.0}  # partition 1's leader stopped answering at 100
    refreshes = [
        t for t in (102.5, 102.6, 103.0, 103.4, 104.0, 105.0, 107.0, 109.0) if watch.observe(t, silent).refresh
    ]
    assert refreshes == [102.5, 103.0, 104.0, 107.0, 109.0]  # +0.5, +1, +2 (capped), +2
    assert watch.observe(109.1, {0: 109.0, 1: 100.0}).stale == (1,)


def test_backoff_starts_again_once_every_partition_is_heard_from() -> None:
    watch = StallWatch[int](stale_after_s=2.0, base_s=0.5, cap_s=8.0)
    watch.observe(0.0, {0: None})
    assert watch.observe(3.0, {0: None}).refresh
    assert not watch.observe(3.1, {0: None}).refresh
    assert watch.observe(4.0, {0: 4.0}) == watch.observe(4.0, {0: 4.0})  # healthy: no refresh, nothing stale
    assert not watch.observe(4.0, {0: 4.0}).stale
    assert watch.observe(6.5, {0: 4.0}).refresh  # a new stall refreshes at once


def test_when_some_silent_partitions_answer_again_the_rest_are_refreshed_at_once() -> None:
    watch = StallWatch[int](stale_after_s=2.0, base_s=0.5, cap_s=8.0)
    watch.observe(0.0, {0: 0.0, 1: 0.0})
    outage = [t for t in (3.0, 3.6, 4.6, 6.6, 10.6, 18.6, 20.0) if watch.observe(t, {0: 0.0, 1: 0.0}).refresh]
    assert outage == [3.0, 3.6, 4.6, 6.6, 10.6, 18.6]  # every broker down: the backoff grows to its cap
    assert not watch.observe(21.0, {0: 0.0, 1: 0.0}).refresh  # next one due at 26.6
    back = watch.observe(21.5, {0: 21.4, 1: 0.0})  # partition 0's leader answers: Kafka is back
    assert back.refresh and back.stale == (1,)  # partition 1's leader has moved: look now, not at 26.6
    assert not watch.observe(21.7, {0: 21.6, 1: 0.0}).refresh
    assert watch.observe(22.0, {0: 21.9, 1: 0.0}).refresh  # and from the base again (+0.5)


def test_a_newly_assigned_partition_counts_its_silence_from_its_assignment() -> None:
    watch = StallWatch[int](stale_after_s=2.0)
    watch.observe(0.0, {0: 0.0})
    assert not watch.observe(10.0, {0: 10.0, 1: None}).refresh  # partition 1 just arrived
    assert watch.observe(12.5, {0: 12.4, 1: None}).stale == (1,)
    watch.reset([1])
    assert not watch.observe(13.0, {0: 12.9, 1: None}).stale


def test_a_rate_limit_lets_one_through_per_interval_and_counts_the_rest() -> None:
    limit = RateLimit(interval_s=30.0)
    assert limit.allow("k", 0.0) == 0
    assert [limit.allow("k", t) for t in (0.1, 0.2, 29.9)] == [None, None, None]
    assert limit.allow("other", 1.0) == 0
    assert limit.allow("k", 30.0) == 3
    assert limit.allow("k", 31.0) is None


def _record(name: str, msg: str, *args: Any, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_client_retry_lines_are_kept_to_one_per_interval_with_the_count_held_back() -> None:
    retry_filter = RetryLogFilter(interval_s=3600)
    first = _record("aiokafka.consumer.fetcher", "Failed fetch offsets from %s: %s", 1, "NotLeader")
    assert retry_filter.filter(first)
    held = [retry_filter.filter(_record("aiokafka.consumer.fetcher", "Failed fetch offsets from %s: %s", 1, "x"))
            for _ in range(300)]  # fmt: skip
    assert not any(held)
    assert retry_filter.filter(_record("broker.stage", "stage=%s failed", "verifier"))  # our own lines pass
    assert retry_filter.filter(_record("aiokafka.conn", "other %s", 1))  # another kind of line passes once


def test_the_line_after_an_interval_says_how_many_were_held_back() -> None:
    retry_filter = RetryLogFilter(interval_s=0.0)
    retry_filter._limit = RateLimit(interval_s=0.0)
    record = _record("aiokafka.client", "Unable to connect to %s", "b1")
    assert retry_filter.filter(record)
    assert record.getMessage() == "Unable to connect to b1"


def test_quiet_client_retries_installs_one_filter_per_handler() -> None:
    root = logging.getLogger("test-quiet-root")
    handler = logging.StreamHandler()
    root.addHandler(handler)
    quiet_client_retries(root)
    quiet_client_retries(root)
    assert [type(f) for f in handler.filters] == [RetryLogFilter]
    root.removeHandler(handler)


class _Client:
    def __init__(self) -> None:
        self.refreshes = 0

    def force_metadata_update(self) -> None:
        self.refreshes += 1


class _Consumer:
    """assignment(), last_poll_timestamp() and _client: what watch_leaders reads."""

    def __init__(self, last_ms: dict[TopicPartition, int | None]) -> None:
        self.last_ms = last_ms
        self._client = _Client()

    def assignment(self) -> set[TopicPartition]:
        return set(self.last_ms)

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self.last_ms[tp]


async def _until(condition: Any, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


async def test_watch_leaders_refreshes_metadata_for_a_silent_partition_and_reports_health(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(kafka, "WATCH_INTERVAL_S", 0.001)
    now = [1000.0]
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer = _Consumer({a: 1_000_000, b: 1_000_000})
    health: list[bool] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        kafka.watch_leaders(consumer, stop, "test", clock=lambda: now[0], on_health=health.append)  # type: ignore[arg-type]
    )
    await _until(lambda: len(health) >= 3)
    assert consumer._client.refreshes == 0 and set(health) == {True}
    consumer.last_ms[a] = 1_005_000
    now[0] = 1005.0  # partition b silent for 5 s
    await _until(lambda: health[-1] is False)
    await _until(lambda: consumer._client.refreshes == 1)
    seen = len(health)
    await _until(lambda: len(health) >= seen + 20)
    assert consumer._client.refreshes == 1  # then backs off (the clock stands still)
    consumer.last_ms[b] = 1_005_000
    await _until(lambda: health[-1] is True)
    stop.set()
    await task


async def test_forced_metadata_refreshes_are_spaced_so_an_outage_is_not_a_busy_loop() -> None:
    class _Client:
        calls = 0

        def force_metadata_update(self) -> asyncio.Future[bool]:
            _Client.calls += 1
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            done.set_result(False)  # every broker down: fails at once
            return done

    client = _Client()
    kafka._throttle_metadata(client)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 0.6:  # what aiokafka's fetcher does: ask, wait for the answer, ask again
        await client.force_metadata_update()
    assert _Client.calls <= 4  # 0.25 s apart: 3 in 0.6 s (+1 for timer slack), not thousands
