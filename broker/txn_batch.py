"""Transactions on a commit interval (issue 18): many polls per Kafka transaction, one commit per interval.

A stage used to begin and commit one transaction per partition per poll; with small polls most of its time
was transaction round-trips (AddPartitionsToTxn, EndTxn, markers). Here each partition keeps one open
transaction that every poll's outputs are appended to (``send`` only queues a record in the producer's
accumulator; delivery is awaited once, after the commit), and the stage commits it when it is
``interval_s`` old (Kafka Streams' ``commit.interval.ms`` under exactly-once is 100 ms), or at once when it
holds an urgent output (a shielding record: see :attr:`broker.stage.Output.urgent`) or grows past
``max_records``. While a commit is awaited the consumer's fetcher already fetches the next records.

Exactly-once is unchanged: the input offsets, outputs and changelog records still commit atomically per
partition; only more input goes into each transaction. What changes is that a partition's memory can be
ahead of its committed changelog while a transaction is open: the stage must forget (and restore) such a
partition's memory whenever that transaction does not commit (:meth:`TransactionBatcher.discard` says so).

This module is the bookkeeping only; :class:`broker.stage.TransactionalStage` does the I/O.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from consent_io.recovery import abandon

__all__ = ["OpenTransaction", "TransactionBatcher"]


@dataclass(slots=True)
class OpenTransaction:
    """One partition's transaction: begun, records queued, not yet committed."""

    opened: float  # monotonic seconds at begin
    outputs: list[Any] = field(default_factory=list)  # broker.stage.Output, in send order
    futures: list[asyncio.Future[Any]] = field(default_factory=list)  # delivery, one per output
    next_offset: int | None = None  # the input offset to commit with it (None: no input, e.g. a tick only)
    urgent: bool = False  # holds a record that must not wait for the interval

    def abandon(self) -> None:
        """Its deliveries will never be awaited (it is being aborted): see :func:`consent_io.recovery.abandon`."""
        abandon(self.futures)


class TransactionBatcher:
    """Which partitions have an open transaction, and which of them are due for commit."""

    def __init__(self, interval_s: float, max_records: int = 50_000) -> None:
        if interval_s < 0:
            raise ValueError("commit interval must be >= 0")
        self.interval_s = interval_s
        self.max_records = max_records
        self._open: dict[int, OpenTransaction] = {}

    def __contains__(self, partition: int) -> bool:
        return partition in self._open

    def __len__(self) -> int:
        return len(self._open)

    def get(self, partition: int) -> OpenTransaction | None:
        return self._open.get(partition)

    def open(self, partition: int, now: float) -> OpenTransaction:
        assert partition not in self._open, "a partition has one open transaction at a time"
        txn = self._open[partition] = OpenTransaction(now)
        return txn

    def due(self, now: float) -> list[int]:
        """Partitions whose transaction should commit now: old enough, urgent or large."""
        return [
            p
            for p, t in self._open.items()
            if t.urgent or now - t.opened >= self.interval_s or len(t.outputs) >= self.max_records
        ]

    def wait_s(self, now: float, cap_s: float) -> float:
        """How long a poll may block before the next transaction is due (at most ``cap_s``)."""
        if not self._open:
            return cap_s
        if any(t.urgent for t in self._open.values()):
            return 0.0
        earliest = min(t.opened for t in self._open.values())
        return max(0.0, min(cap_s, earliest + self.interval_s - now))

    def take(self, partition: int) -> OpenTransaction | None:
        """Remove the partition's transaction, to commit it."""
        return self._open.pop(partition, None)

    def discard(self, partition: int) -> bool:
        """Drop the partition's transaction without committing; True when it held uncommitted work."""
        txn = self._open.pop(partition, None)
        if txn is not None:
            txn.abandon()
        return txn is not None

    def partitions(self) -> list[int]:
        return list(self._open)
