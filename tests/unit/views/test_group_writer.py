"""Group commit of view writes: concurrent adds share writes, each item is written once, errors reach their batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from broker.views.batching import GroupWriter


async def test_concurrent_adds_share_writes_and_each_item_is_written_once() -> None:
    writes: list[list[int]] = []

    async def write(items: Sequence[int]) -> None:
        writes.append(list(items))
        await asyncio.sleep(0.01)

    writer: GroupWriter[int] = GroupWriter(write)
    await asyncio.gather(*(writer.add(i) for i in range(100)))
    assert sorted(i for batch in writes for i in batch) == list(range(100))
    assert len(writes) < 100 and len(writes) <= 2  # the first add's write, then everything that queued behind it


async def test_a_failed_write_fails_its_own_callers_only() -> None:
    calls = 0

    async def write(items: Sequence[int]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")

    writer: GroupWriter[int] = GroupWriter(write)
    with pytest.raises(OSError, match="disk full"):
        await writer.add(1)
    await writer.add(2)  # the next batch is written
    assert calls == 2


async def test_callers_are_cancelled_not_left_waiting_when_the_writer_is() -> None:
    started = asyncio.Event()

    async def write(items: Sequence[int]) -> None:
        started.set()
        await asyncio.sleep(60)

    writer: GroupWriter[int] = GroupWriter(write)
    first = asyncio.create_task(writer.add(1))
    await started.wait()
    second = asyncio.create_task(writer.add(2))  # queued behind the running write
    await asyncio.sleep(0)
    assert writer._task is not None
    writer._task.cancel()
    for caller in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(caller, 5)
