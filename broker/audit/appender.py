"""The audit log on Kafka: the single appender (I/O shell around :class:`broker.audit.log.AuditLog`).

The stored line format is :mod:`broker.audit.lines`. One appender (the API service) owns the
chain: on start it reads the topic to the end to restore the chain position and the events
cursor, resumes an :class:`~broker.audit.log.AuditLog` there (which does all chaining and decides
when a checkpoint is due: after entries ``N-1, 2N-1, ...``, ``N = checkpoint_every``), then
writes each entry and checkpoint through an idempotent producer (acks=all), plus a final
checkpoint on shutdown. Two appenders on one topic would fork the chain; ``audit verify`` would
then report it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit.errors import AuditUnavailableError
from broker.audit.lines import StoredLog, checkpoint_line, entry_line, parse_log, position_of
from broker.audit.log import AuditEntry, AuditLog, CanonicalRecord
from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = ["AuditAppender"]

log = logging.getLogger(__name__)


class AuditAppender:
    """Writes the chain its :class:`AuditLog` makes; ``append`` returns once the entry is durable (acks=all)."""

    def __init__(
        self,
        conn: KafkaConnection,
        topic: str,
        signer: Ed25519PrivateKey,
        checkpoint_every: int,
    ) -> None:
        self.conn, self.topic, self.signer = conn, topic, signer
        self.checkpoint_every = checkpoint_every
        self._log = AuditLog(checkpoint_every, retain=False)  # the topic holds the entries
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._failed = False
        self._unsigned_since: float | None = None  # monotonic time of the oldest entry no checkpoint covers yet

    @property
    def checkpoint_age_s(self) -> float:
        """Seconds the oldest entry not covered by a signed checkpoint has waited (0 when all are signed)."""
        return 0.0 if self._unsigned_since is None else time.monotonic() - self._unsigned_since

    @property
    def unsigned_entries(self) -> int:
        pos = self._log.position
        return max(0, pos.next_index - 1 - pos.last_checkpoint)

    @property
    def next_index(self) -> int:
        return self._log.position.next_index

    async def start(self) -> StoredLog:
        """Restore the chain position from the topic, then open the producer; returns what was read."""
        records = await kafka.read_to_end(self.conn, self.topic)
        stored = parse_log(r.value for r in records if r.value is not None)
        self._log = AuditLog(self.checkpoint_every, start=position_of(stored), retain=False)
        self._unsigned_since = time.monotonic() if self._log.unsigned else None
        self._producer = kafka.producer(
            self.conn,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,  # a short linger batches concurrent decisions into one produce request
        )
        await self._producer.start()
        log.info("audit restored entries=%d next_index=%d", len(stored.entries), self.next_index)
        return stored

    async def append(self, record: CanonicalRecord, source: str | None = None) -> AuditEntry:
        async with self._lock:  # index, hash and enqueue order are one step: the chain order is the topic order
            producer = self._ready()
            entry = self._log.append(record)
            if self._unsigned_since is None:
                self._unsigned_since = time.monotonic()
            try:
                futures = [await producer.send(self.topic, entry_line(entry, source), partition=0)]
                if self._log.checkpoint_due:
                    futures.append(await self._enqueue_checkpoint(producer))
            except KafkaError as exc:
                self._fail(exc)
        await self._durable(futures)
        return entry

    async def stop(self) -> None:
        """Write a final checkpoint covering every entry, then close the producer."""
        if self._producer is None:
            return
        try:
            async with self._lock:
                if not self._failed and self._log.unsigned:
                    await self._durable([await self._enqueue_checkpoint(self._producer)])
        except (KafkaError, AuditUnavailableError) as exc:
            log.warning("audit final checkpoint not written error=%r", exc)
        finally:
            await self._producer.stop()
            self._producer = None

    def _ready(self) -> AIOKafkaProducer:
        if self._failed or self._producer is None:
            raise AuditUnavailableError("the audit log is unavailable; restart the API service to restore it")
        return self._producer

    async def _enqueue_checkpoint(self, producer: AIOKafkaProducer) -> asyncio.Future[Any]:
        cp = self._log.checkpoint(self.signer)
        self._unsigned_since = None
        future: asyncio.Future[Any] = await producer.send(
            self.topic, checkpoint_line(cp, self.signer.public_key()), partition=0
        )
        return future

    async def _durable(self, futures: Sequence[asyncio.Future[Any]]) -> None:
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            self._fail(exc)

    def _fail(self, exc: KafkaError) -> None:
        self._failed = True
        log.error("audit write failed; appends refused until restart error=%r", exc)
        raise AuditUnavailableError(f"audit write failed: {exc!r}") from exc
