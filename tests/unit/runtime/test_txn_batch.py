"""The commit-interval bookkeeping (issue 18): which partitions' open transactions are due, and how long to poll."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from broker.txn_batch import TransactionBatcher


def test_a_transaction_is_due_once_it_is_as_old_as_the_interval() -> None:
    batcher = TransactionBatcher(0.125)
    batcher.open(0, now=10.0)
    batcher.open(1, now=10.0625)
    assert batcher.due(10.0625) == []
    assert batcher.due(10.125) == [0]
    assert sorted(batcher.due(10.25)) == [0, 1]


def test_an_urgent_or_large_transaction_is_due_at_once() -> None:
    batcher = TransactionBatcher(0.1, max_records=3)
    batcher.open(0, now=10.0).urgent = True
    batcher.open(1, now=10.0).outputs.extend([object()] * 3)
    batcher.open(2, now=10.0)
    assert sorted(batcher.due(10.0)) == [0, 1]
    assert batcher.wait_s(10.0, cap_s=0.1) == 0.0


def test_a_poll_waits_no_longer_than_the_oldest_transaction_has_left() -> None:
    batcher = TransactionBatcher(0.1)
    assert batcher.wait_s(5.0, cap_s=0.1) == 0.1  # nothing open: the usual poll timeout
    batcher.open(3, now=5.0)
    assert batcher.wait_s(5.04, cap_s=0.1) == pytest.approx(0.06)
    assert batcher.wait_s(5.5, cap_s=0.1) == 0.0


def test_taken_or_discarded_transactions_are_no_longer_open() -> None:
    batcher = TransactionBatcher(0.0)
    batcher.open(0, now=1.0)
    batcher.open(1, now=1.0)
    assert batcher.take(0) is not None and 0 not in batcher
    assert batcher.discard(1) is True  # held uncommitted work: the stage must forget the partition's memory
    assert batcher.discard(1) is False
    assert len(batcher) == 0 and batcher.partitions() == []


def test_one_open_transaction_per_partition_and_no_negative_interval() -> None:
    batcher = TransactionBatcher(0.1)
    batcher.open(0, now=1.0)
    with pytest.raises(AssertionError):
        batcher.open(0, now=1.0)
    with pytest.raises(ValueError, match="commit interval"):
        TransactionBatcher(-1)


async def test_a_discarded_transactions_failed_deliveries_are_taken_quietly() -> None:
    """After an outage every record of an aborted transaction failed, and asyncio logged each one at ERROR."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        batcher = TransactionBatcher(0.1)
        txn = batcher.open(0, 0.0)
        txn.futures.append(loop.create_future())
        assert batcher.discard(0)
        txn.futures[0].set_exception(ConnectionError("leader not available"))
        txn.futures.clear()  # the only reference: the future is collected now, and would report if unretrieved
        await asyncio.sleep(0)
        gc.collect()
        assert seen == []
    finally:
        loop.set_exception_handler(None)
