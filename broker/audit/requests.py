"""Audit requests: every API instance's audit records on their way to the one appender (issue 16, I/O shell).

Any number of API processes answer decisions; only the elected appender (:mod:`broker.audit.appender`)
extends the log. An instance that is not the appender writes each record to the ``audit-requests`` topic
with an idempotent producer (``acks=all``) and answers once the write is acknowledged, naming the record by
its position (:class:`RequestPosition`); the appender moves it into the log exactly once (its offsets are
committed in the transaction holding the entry), and every instance indexes it from the audit topic.

The record's value is exactly the entry's canonical record bytes (:class:`broker.audit.records.AuditRecord`),
nothing more; its key is the record's patient pseudonym (already in the record), so one patient's requests
keep their order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from broker.audit.errors import AuditUnavailableError
from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = ["AuditReceipt", "AuditRequestWriter", "RequestPosition"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RequestPosition:
    """Where an audit request was written: ``audit-requests`` partition and offset."""

    partition: int
    offset: int

    def to_json(self) -> dict[str, int]:
        return {"partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class AuditReceipt:
    """What an answer says of its audit record: the entry's index once known, the request it went through."""

    index: int | None  # the entry's index (known at once when this instance is the appender)
    request: RequestPosition | None = None  # None: appended directly by the appender


class AuditRequestWriter:
    """An idempotent ``acks=all`` producer onto ``audit-requests``: ``write`` returns once the record is durable."""

    def __init__(self, conn: KafkaConnection, topic: str) -> None:
        self.topic = topic
        self._producer: AIOKafkaProducer = kafka.producer(conn, acks="all", enable_idempotence=True, linger_ms=1)
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def write(self, record: bytes, patient_key: str) -> RequestPosition:
        if not self._started:
            raise AuditUnavailableError("the audit request writer is not started")
        try:
            meta = await self._producer.send_and_wait(self.topic, record, key=patient_key.encode() or None)
        except KafkaError as exc:
            log.warning("audit request not written error=%s", type(exc).__name__)
            raise AuditUnavailableError(f"the audit request was not acknowledged: {type(exc).__name__}") from exc
        return RequestPosition(int(meta.partition), int(meta.offset))

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await kafka.close_producer(self._producer)
