"""Keeps a :class:`~consent_wire.keys.KeyRegistry` current from the compacted keys topic."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter

from consent_io.kafka import TopicReader
from consent_wire.errors import WireError
from consent_wire.keys import KeyRegistry

__all__ = ["KeysFollower"]

log = logging.getLogger(__name__)

KEY_EVENTS = Counter("broker_key_events_total", "Key lifecycle records read", ["outcome"])


class KeysFollower:
    """Reads every key event in order (one partition); invalid ones are counted and skipped with a reason."""

    def __init__(self, reader: TopicReader, registry: KeyRegistry) -> None:
        """``reader``: the keys topic (one partition), e.g. ``KafkaTopicReader(conn, topic, partitions=[0])``."""
        self.registry = registry
        self._reader = reader
        self.rejected: list[str] = []

    async def start(self) -> None:
        await self._reader.start()
        while not await self._reader.caught_up():
            await self.poll(timeout_ms=500)

    async def poll(self, timeout_ms: int = 0) -> int:
        """Apply any new key events; returns how many were read."""
        batches = await self._reader.fetch(timeout_ms=timeout_ms)
        count = 0
        for records in batches.values():
            for record in records:
                count += 1
                try:
                    self.registry.apply(record.value)
                    KEY_EVENTS.labels("applied").inc()
                except WireError as exc:
                    KEY_EVENTS.labels(exc.reason).inc()
                    self.rejected.append(exc.reason)
                    log.warning("key event rejected offset=%d reason=%s", record.offset, exc.reason)
        return count

    async def catch_up(self, timeout_s: float) -> bool:
        """Read the topic up to its end offsets as of now (one ListOffsets); False if not there within ``timeout_s``.

        For a reader of a batch that names an agent or key this registry does not know: every key event written
        before the call is applied once this returns True (a registration the follower's fetches had not brought
        yet, e.g. published a moment before the agent's first batch reached the verifier).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            await asyncio.wait_for(self._reader.latest_ends(), timeout_s)
            while not await self._reader.caught_up():
                left = deadline - loop.time()
                if left <= 0:
                    return False
                await self.poll(timeout_ms=max(1, min(100, int(left * 1000))))
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await self._reader.stop()
