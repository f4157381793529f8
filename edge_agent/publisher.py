"""The publisher: outbox rows -> signed batches -> transport -> end-to-end ack -> delete.

One batch is in flight at a time, so rows leave in seq order and a retried batch is the same
rows again (the core dedupes on (agent, seq)). Any transport failure is retried forever with
exponential backoff and full jitter: an outage of hours is normal and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from consent_rules.backoff import full_jitter_delay
from consent_wire.errors import WireError
from edge_agent.errors import TransportError
from edge_agent.outbox import Outbox, OutboxRow

__all__ = ["BatchSigner", "Publisher", "PublisherSettings", "Transport"]

log = logging.getLogger(__name__)


class Transport(Protocol):
    async def send(self, batch: bytes, first_seq: int, last_seq: int) -> None:
        """Deliver ``batch``; return only after the end-to-end ack, raise TransportError otherwise."""
        ...


class BatchSigner(Protocol):
    def sign(self, events: Sequence[bytes], first_seq: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    batch_max_events: int = 500
    linger_ms: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    idle_poll_s: float = 1.0  # re-check the outbox at least this often when idle


class Publisher:
    def __init__(
        self,
        outbox: Outbox,
        signer: BatchSigner,
        transport: Transport,
        settings: PublisherSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        self._outbox = outbox
        self._signer = signer
        self._transport = transport
        self._settings = settings
        self._sleep = sleep
        self._random = unit_random
        self.published_total = 0
        self.failures_total = 0
        self.connected = False

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; the caller owns (and cancels) the task running this."""
        attempt = 0
        while not stop.is_set():
            try:
                sent = await self.publish_once()
            except TransportError as exc:
                await self._back_off(attempt, exc)
                attempt += 1
                continue
            attempt = 0
            if sent == 0:
                await self._outbox.wait_for_commit(self._settings.idle_poll_s)
            elif sent < self._settings.batch_max_events and self._settings.linger_ms:
                await self._sleep(self._settings.linger_ms / 1000)

    async def publish_once(self) -> int:
        """Send the next batch (if any) and delete it after its ack; returns events published."""
        rows = await self._outbox.pending(self._settings.batch_max_events)
        if not rows:
            return 0
        rows, batch = self._sign(rows)
        first, last = rows[0].seq, rows[-1].seq
        await self._transport.send(batch, first, last)
        self.connected = True
        await self._outbox.ack_upto(last)
        self.published_total += len(rows)
        log.debug("published first_seq=%d last_seq=%d", first, last)
        return len(rows)

    def _sign(self, rows: list[OutboxRow]) -> tuple[list[OutboxRow], bytes]:
        """Sign ``rows``; a batch over the wire size limit is halved until it fits."""
        while True:
            try:
                return rows, self._signer.sign([r.data for r in rows], rows[0].seq)
            except WireError as exc:
                if len(rows) == 1:
                    raise TransportError(f"cannot sign event seq {rows[0].seq}: {exc}") from exc
                log.warning("batch too large to sign events=%d reason=%s; halving", len(rows), exc.reason)
                rows = rows[: len(rows) // 2]

    async def _back_off(self, attempt: int, exc: TransportError) -> None:
        self.connected = False
        self.failures_total += 1
        s = self._settings
        delay = full_jitter_delay(attempt, base_s=s.backoff_base_s, cap_s=s.backoff_cap_s, unit_random=self._random())
        log.warning("publish failed reason=%s attempt=%d retry_in_s=%.2f", exc.reason, attempt + 1, delay)
        await self._sleep(delay)
