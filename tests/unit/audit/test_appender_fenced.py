"""The appender's two transaction users (the batch writer and the cosigner) when their shared producer is fenced.

Seen in the many-API-instances test (issue 16): a producer with the appenders' transactional id fenced the holder;
the cosigner's checkpoint transaction failed first (ProducerFenced: aiokafka's producer is then fatal for good)
while the writer, holding a batch, waited on the transaction lock. The writer then began a transaction on the
fatal producer, aiokafka's state machine answered with an AssertionError (not a KafkaError), the writer task died
with its callers' futures unanswered, and stopping the appender re-raised it: the API process stopped instead of
answering 503 and rejoining the election. The producer here drives aiokafka's own transaction state machine.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import ProducerFenced
from aiokafka.producer.producer import TransactionContext
from aiokafka.producer.transaction_manager import TransactionManager
from aiokafka.structs import RecordMetadata
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import AuditRecord, RecordKind
from broker.audit.appender import AppenderPolicy, AuditAppender
from broker.audit.errors import AuditUnavailableError
from broker.audit.note import NoteSigner
from consent_io.connection import KafkaConnection
from consent_wire.codes import DataClass, PurposeOfUse

ORIGIN = "app/t.audit"


def record(i: int) -> AuditRecord:
    return AuditRecord(RecordKind.DECISION, 1_790_000_000_000 + i, "p", f"staff-{i}", "RX1", "GP",
                       PurposeOfUse.TREAT, (DataClass.GENERAL,), "PERMIT", state_version=i)  # fmt: skip


class _FencedAtSend:
    """A transactional producer (aiokafka's TransactionManager and TransactionContext) whose ``fence_at``-th send
    waits for ``fence`` and then fails as a fenced one does: ProducerFenced, the producer fatal from then on."""

    def __init__(self, fence_at: int) -> None:
        self._txn_manager = TransactionManager("app.api.audit", 60_000)
        self._txn_manager.set_pid_and_epoch(1, 0)
        self.fence_at = fence_at
        self.sent: list[bytes] = []
        self.blocked = asyncio.Event()
        self.fence = asyncio.Event()

    def transaction(self) -> TransactionContext:
        return TransactionContext(self)

    async def begin_transaction(self) -> None:
        self._txn_manager.begin_transaction()

    async def commit_transaction(self) -> None:
        self._txn_manager.committing_transaction()
        self._txn_manager.complete_transaction()

    async def abort_transaction(self) -> None:
        self._txn_manager.aborting_transaction()
        self._txn_manager.complete_transaction()

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[Any]:
        if len(self.sent) + 1 == self.fence_at:
            self.blocked.set()
            await self.fence.wait()
            exc = ProducerFenced()
            self._txn_manager.fatal_error(exc)
            self._txn_manager.wait_for_transaction_end().exception()  # retrieved: aiokafka's sender would
            raise exc
        self.sent.append(value)
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # as aiokafka's send: a future of the record's delivery (its RecordMetadata: the offset the appender keeps)
        delivered.set_result(RecordMetadata(topic, 0, None, len(self.sent) - 1, -1, -1, None))
        return delivered

    async def stop(self) -> None:
        pass


async def test_a_batch_waiting_while_the_cosigner_is_fenced_is_refused_and_the_appender_stops_cleanly() -> None:
    policy = AppenderPolicy(ORIGIN, NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), (), 0, "app.api.audit", "app.api")
    appender = AuditAppender(KafkaConnection("127.0.0.1:1"), "t.audit", policy)
    producer = _FencedAtSend(fence_at=3)  # entry 0 and its head commit; the checkpoint after them is fenced
    appender._producer = producer  # type: ignore[assignment]
    appender._election.active.set()
    appender._active = True  # as activate() leaves it, without Kafka
    appender._tasks += [asyncio.create_task(appender._writer()), asyncio.create_task(appender._cosigner())]
    try:
        first = await appender.append(record(0))
        assert first.index == 0 and appender.holding
        await asyncio.wait_for(producer.blocked.wait(), 10)  # the cosigner's transaction holds the producer
        waiting = asyncio.create_task(appender.append(record(1)))
        for _ in range(10):  # the writer takes the batch and waits on the transaction lock (no I/O: loop turns)
            await asyncio.sleep(0)
        assert appender._queue.empty() and appender._txn_lock.locked()
        producer.fence.set()
        with pytest.raises(AuditUnavailableError):
            await asyncio.wait_for(waiting, 10)  # answered (503), not left waiting forever
        assert not appender.holding
        assert appender.stopped.is_set()  # the API rejoins the election with a new appender
        assert len(producer.sent) == 2  # nothing of the refused batch was sent
    finally:
        await appender.stop()  # the dead producer's failure is not re-raised here


async def test_a_defect_in_the_cosigner_fails_the_log_instead_of_stopping_checkpoints_unseen() -> None:
    """The writer already turned any failure into a failed log (503, rejoin); the cosigner caught only Kafka and
    transaction-state errors, so a defect there ended its task while the log went on taking entries that no
    checkpoint would ever cover."""
    policy = AppenderPolicy(ORIGIN, NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), (), 0, "app.api.audit", "app.api")
    appender = AuditAppender(KafkaConnection("127.0.0.1:1"), "t.audit", policy)
    appender._producer = _FencedAtSend(fence_at=1_000)  # type: ignore[assignment]
    appender._election.active.set()
    appender._active = True

    async def broken() -> None:
        raise ValueError("a bug")

    appender._cosign_pending = broken  # type: ignore[method-assign]
    appender._tasks.append(asyncio.create_task(appender._cosigner()))
    try:
        appender._new_head.set()
        await asyncio.wait_for(appender.stopped.wait(), 10)
        assert not appender.holding
        with pytest.raises(AuditUnavailableError, match="checkpoint write failed"):
            await appender.append(record(0))
    finally:
        await appender.stop()
