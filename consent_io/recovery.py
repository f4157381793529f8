"""Pure decisions for recovering Kafka clients from broker faults (no I/O, time passed in).

Issue 13, item 2: after one broker of three was paused (SIGSTOP) for 7-18 s, a stage stopped reading one
partition for minutes. aiokafka's fetcher keeps sending to the leader it last knew: a fetch to a paused
broker waits its whole request timeout, and a ListOffsets answered ``NotLeaderForPartition`` is retried
every 100 ms without refreshing metadata (one log line each time) until the metadata's maximum age
(5 minutes) makes it look again. Two pure pieces decide what the I/O shell does about it:

- :class:`StallWatch`: per assigned partition, when did the consumer last hear from its leader? A partition
  silent for longer than ``stale_after_s`` makes the shell force a metadata refresh, again with exponential
  backoff while the silence lasts, so a moved leadership is found in about a second, not minutes. When some
  silent partitions answer again (Kafka is back after an outage) the backoff starts again from its base: the
  backoff grown during a long outage must not delay finding the others' new leaders by up to ``cap_s``.
- :class:`MetadataThrottle`: with every broker down, aiokafka's fetcher and sender ask for a metadata refresh,
  which fails at once, and ask again: hundreds of attempts a second per client, each dialling every broker
  (measured: ~2,600 connection attempts/s in one core process during an outage). Forced refreshes are spaced
  by at least ``min_interval_s``.
- :class:`RateLimit`: at most one log line per key per interval, with a count of what it held back: a
  client that retries every 100 ms must not write hundreds of lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["MetadataThrottle", "RateLimit", "StallWatch", "Verdict", "abandon"]

# A stage's fetch returns within fetch_max_wait_ms (25 ms) with or without records, so a partition whose leader
# answers is heard from many times a second; 2 s of silence is a fault, not a quiet topic.
STALE_AFTER_S = 2.0
# Refreshes while a partition stays silent: 0.5, 1, 2, 4, 8, 8 ... s (a metadata request is one small round trip;
# KRaft fences a silent broker after broker.session.timeout.ms = 9 s, so a refresh every few seconds finds it).
REFRESH_BASE_S = 0.5
REFRESH_CAP_S = 8.0

K = TypeVar("K", bound=Hashable)  # a partition, as the caller names it


@dataclass(frozen=True, slots=True)
class Verdict(Generic[K]):
    """What the shell should do now: refresh metadata or not, and which partitions are silent."""

    refresh: bool
    stale: tuple[K, ...] = ()


@dataclass(slots=True)
class StallWatch(Generic[K]):
    """Decides when silent partitions warrant a metadata refresh (exponential backoff between refreshes)."""

    stale_after_s: float = STALE_AFTER_S
    base_s: float = REFRESH_BASE_S
    cap_s: float = REFRESH_CAP_S
    _since: dict[K, float] = field(default_factory=dict)  # partition -> when first seen (assignment)
    _attempt: int = 0
    _next_refresh: float = 0.0
    _stale: frozenset[K] = frozenset()  # the partitions silent at the last observation

    def observe(self, now: float, heard: Mapping[K, float | None]) -> Verdict[K]:
        """``heard``: each assigned partition -> when its leader last answered a fetch (None: not yet).

        Times are seconds on one monotonic clock. Partitions no longer assigned are forgotten.
        """
        for gone in set(self._since) - set(heard):
            del self._since[gone]
        stale: list[K] = []
        for partition, last in heard.items():
            since = self._since.setdefault(partition, now)
            reference = since if last is None else max(last, since)
            if now - reference > self.stale_after_s:
                stale.append(partition)
        recovered = bool(self._stale - set(stale))
        self._stale = frozenset(stale)
        if not stale:
            self._attempt = 0
            self._next_refresh = 0.0
            return Verdict(False)
        if recovered:
            # some silent partition answers again (e.g. Kafka is back after an outage): the others' leaders have
            # likely moved; look now instead of waiting out a backoff grown during the silence (up to cap_s)
            self._attempt = 0
            self._next_refresh = 0.0
        if now < self._next_refresh:
            return Verdict(False, tuple(stale))
        self._next_refresh = now + min(self.cap_s, self.base_s * 2.0 ** min(self._attempt, 16))
        self._attempt += 1
        return Verdict(True, tuple(stale))

    def reset(self, partitions: Iterable[K]) -> None:
        """Partitions (re)assigned or repositioned: their silence counts from ``observe``'s next call."""
        for partition in partitions:
            self._since.pop(partition, None)


@dataclass(slots=True)
class RateLimit:
    """At most one event per key per ``interval_s``; ``allow`` returns how many were held back before it."""

    interval_s: float = 30.0
    _last: dict[Hashable, float] = field(default_factory=dict)
    _held: dict[Hashable, int] = field(default_factory=dict)

    def allow(self, key: Hashable, now: float) -> int | None:
        """None: suppress this one. Otherwise emit it, noting the returned number of suppressed ones."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


# Forced metadata refreshes at most every 250 ms per client: a moved leader is still found within a quarter of
# a second, and an outage costs 4 attempts a second per client instead of hundreds.
METADATA_MIN_INTERVAL_S = 0.25


@dataclass(slots=True)
class MetadataThrottle:
    """How long a forced metadata refresh must wait (0: now) so refreshes are ``min_interval_s`` apart."""

    min_interval_s: float = METADATA_MIN_INTERVAL_S
    _next: float = 0.0

    def wait(self, now: float) -> float:
        if now < self._next:
            return self._next - now
        self._next = now + self.min_interval_s
        return 0.0


def abandon(futures: Iterable[asyncio.Future[Any]]) -> None:
    """These deliveries will never be awaited (their transaction is being aborted): take their failures quietly,
    or asyncio logs "Future exception was never retrieved" for each one (80 blocks after one outage)."""
    for future in futures:
        future.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
