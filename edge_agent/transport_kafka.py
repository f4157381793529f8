"""Kafka transport: one signed batch = one record on the ingress topic, keyed by agent id.

The producer is idempotent with ``acks="all"``: :meth:`KafkaTransport.send` returns only once
every in-sync replica has the record, which is the end-to-end ack for this transport. After any
error the producer is closed and re-created on the next send (a fresh producer id); a batch that
did reach Kafka before the error is sent again and the core's verifier dedupes it on
(agent, seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_zstd
from aiokafka.errors import KafkaError

from consent_io import kafka
from consent_io.connection import KafkaConnection
from edge_agent.errors import AckTimeoutError, TransportError

__all__ = ["KafkaTransport"]

log = logging.getLogger(__name__)


class KafkaTransport:
    def __init__(self, conn: KafkaConnection, topic: str, agent_id: str, *, ack_timeout_s: float = 30.0) -> None:
        self._conn = conn
        self._topic = topic
        self._key = agent_id.encode("utf-8")
        self._timeout = ack_timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def send(self, batch: bytes, first_seq: int, last_seq: int) -> None:
        producer = await self._connected()
        headers = [("first_seq", str(first_seq).encode()), ("last_seq", str(last_seq).encode())]
        try:
            await asyncio.wait_for(
                producer.send_and_wait(self._topic, value=batch, key=self._key, headers=headers),
                self._timeout,
            )
        except TimeoutError as exc:
            await self._reset()
            raise AckTimeoutError(f"no acks=all from Kafka within {self._timeout}s for seq {last_seq}") from exc
        except KafkaError as exc:
            await self._reset()
            raise TransportError(f"Kafka send failed: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._reset()

    async def _connected(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        producer = kafka.producer(  # max_request_size: consent_io.kafka.MAX_REQUEST_BYTES, above MAX_BATCH_BYTES
            self._conn,
            enable_idempotence=True,
            acks="all",
            compression_type="zstd" if has_zstd() else "gzip",
            request_timeout_ms=int(self._timeout * 1000),
            linger_ms=0,  # batching is done by the publisher, one signed batch per record
        )
        try:
            await asyncio.wait_for(producer.start(), self._timeout)
        except (KafkaError, TimeoutError, OSError) as exc:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
            raise TransportError(f"cannot connect to Kafka at {self._conn.bootstrap}: {exc!r}") from exc
        log.info("kafka producer connected bootstrap=%s topic=%s", self._conn.bootstrap, self._topic)
        self._producer = producer
        return producer

    async def _reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(producer.stop(), self._timeout)
