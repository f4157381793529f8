"""Follow one topic as a least-privilege principal over TLS and yield decoded, checked records (I/O shell).

    async with Subscriber(conn, prefix="consent", kind="state") as sub:
        async for delivered in sub:            # forever (follow=True) or up to the end seen at start
            if delivered.problem is None:
                use(delivered.record)

``conn`` is a :class:`~consent_io.connection.KafkaConnection` with the subscriber's own certificate (its
principal: ``consent-broker infra issue <name> --role subscriber`` for state and shielding, ``--role witness``
for audit, ``--role monitor`` for deadletter, an agent's for its own site feed ``site:<ODS>``). No consumer
group is used (every partition assigned, from the beginning), so the principal needs read on the topic only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.subscribe.decode import KINDS, Delivered, decode_record
from broker.topics import TopicNames
from consent_io.connection import KafkaConnection
from consent_io.kafka import KafkaTopicReader

__all__ = ["Subscriber", "topic_for"]


def topic_for(kind: str, prefix: str) -> tuple[str, str]:
    """(decoder kind, Kafka topic) for ``state``, ``shielding``, ``audit``, ``deadletter`` or ``site:<ODS>``."""
    names = TopicNames(prefix)
    base, _, site = kind.partition(":")
    if base == "site" and site:
        return "site", names.site_feed(site)
    if base not in KINDS or base == "site":
        raise ValueError(f"topic must be one of state, shielding, audit, deadletter or site:<ODS>, got {kind!r}")
    return base, getattr(names, base)


class Subscriber:
    def __init__(
        self,
        conn: KafkaConnection,
        *,
        prefix: str,
        kind: str,
        core_key: Ed25519PublicKey | None = None,
        follow: bool = True,
        show_value: bool = False,
    ) -> None:
        self.kind, self.topic = topic_for(kind, prefix)
        if self.kind == "site" and core_key is None:
            raise ValueError("site feeds are signed by the core: pass core_key (--core-public-key)")
        self._conn = conn
        self._reader: KafkaTopicReader | None = None  # built in __aenter__: aiokafka needs the running loop
        self._core_key = core_key
        self._follow = follow
        self._show_value = show_value

    async def __aenter__(self) -> Subscriber:
        self._reader = KafkaTopicReader(self._conn, self.topic)
        await self._reader.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._reader is not None:
            await self._reader.stop()

    def __aiter__(self) -> AsyncIterator[Delivered]:
        return self._records()

    async def _records(self) -> AsyncIterator[Delivered]:
        reader = self._reader
        if reader is None:
            raise RuntimeError("use the Subscriber in `async with` before iterating it")
        if not self._follow:
            async for record in reader.to_end():
                yield self._decode(record)
            return
        while True:
            for records in (await reader.fetch()).values():
                for record in records:
                    yield self._decode(record)

    def _decode(self, record: object) -> Delivered:
        return decode_record(
            self.kind,
            topic=self.topic,
            partition=record.partition,  # type: ignore[attr-defined]
            offset=record.offset,  # type: ignore[attr-defined]
            key=record.key,  # type: ignore[attr-defined]
            value=record.value,  # type: ignore[attr-defined]
            headers=tuple(record.headers or ()),  # type: ignore[attr-defined]
            core_key=self._core_key,
            now_ms=int(time.time() * 1000),
            show_value=self._show_value,
        )
