"""Group reads of the views: concurrent gets share reads, each key is read once per read, errors reach their read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from broker.views.batching import GroupReader


async def test_concurrent_gets_share_reads_and_each_caller_gets_its_own_value() -> None:
    reads: list[list[int]] = []

    async def read(keys: Sequence[int]) -> dict[int, str]:
        reads.append(list(keys))
        await asyncio.sleep(0.01)
        return {k: f"v{k}" for k in keys if k % 10}  # multiples of 10 have no value

    reader: GroupReader[int, str] = GroupReader(read)
    keys = [k % 50 for k in range(100)]  # every key asked for twice
    got = await asyncio.gather(*(reader.get(k) for k in keys))
    assert got == [None if k % 10 == 0 else f"v{k}" for k in keys]
    assert len(reads) == reader.reads <= 2  # the first get's read, then everything that queued behind it
    assert all(len(r) == len(set(r)) for r in reads)  # a key asked for twice before its read is read once
    assert sorted({k for r in reads for k in r}) == list(range(50))


async def test_a_key_asked_for_while_its_read_runs_is_read_again() -> None:
    """A get after a read started must not take that read's (possibly older) value."""
    started, release = asyncio.Event(), asyncio.Event()
    version = {"k": 1}

    async def read(keys: Sequence[str]) -> dict[str, int]:
        snapshot = {k: version[k] for k in keys}
        started.set()
        await release.wait()
        return snapshot

    reader: GroupReader[str, int] = GroupReader(read)
    first = asyncio.create_task(reader.get("k"))
    await started.wait()
    version["k"] = 2
    second = asyncio.create_task(reader.get("k"))
    await asyncio.sleep(0)
    release.set()
    assert (await first, await second) == (1, 2)
    assert reader.reads == 2


async def test_a_failed_read_fails_its_own_callers_only() -> None:
    calls = 0

    async def read(keys: Sequence[int]) -> dict[int, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk I/O error")
        return {k: k for k in keys}

    reader: GroupReader[int, int] = GroupReader(read)
    with pytest.raises(OSError, match="disk I/O error"):
        await reader.get(1)
    assert await reader.get(2) == 2


async def test_a_cancelled_caller_does_not_cancel_the_read_of_the_others() -> None:
    release = asyncio.Event()

    async def read(keys: Sequence[int]) -> dict[int, int]:
        await release.wait()
        return {k: k * 2 for k in keys}

    reader: GroupReader[int, int] = GroupReader(read)
    cancelled = asyncio.create_task(reader.get(1))
    kept = asyncio.create_task(reader.get(1))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    assert await kept == 2
    with pytest.raises(asyncio.CancelledError):
        await cancelled


async def test_callers_are_cancelled_not_left_waiting_when_the_reader_is() -> None:
    started = asyncio.Event()

    async def read(keys: Sequence[int]) -> dict[int, int]:
        started.set()
        await asyncio.sleep(60)
        return {}

    reader: GroupReader[int, int] = GroupReader(read)
    first = asyncio.create_task(reader.get(1))
    await started.wait()
    second = asyncio.create_task(reader.get(2))  # queued behind the running read
    await asyncio.sleep(0)
    assert reader._task is not None
    reader._task.cancel()
    for caller in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(caller, 5)
