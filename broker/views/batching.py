"""Group commit for view writes: concurrent callers share one SQLite transaction (I/O-free asyncio helper).

The API used to index each audited decision in its own SQLite transaction on the store's one writer
thread, so at a few hundred decisions in flight the writer queue, not the audit log, set the pace.
:class:`GroupWriter` collects the items added while a write is running and writes them together in the
next one; ``add`` returns once the write holding its item committed (or raises that write's error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupWriter"]

T = TypeVar("T")


class GroupWriter(Generic[T]):
    """Batches ``add`` calls into calls of ``write(items)``; at most one write runs at a time."""

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: list[T] = []
        self._done: asyncio.Future[None] | None = None  # the future of the write that will take _pending
        self._task: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        self._pending.append(item)
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        done = self._done
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="view-group-write")
        await asyncio.shield(done)  # a cancelled caller does not cancel the others' write

    async def _run(self) -> None:
        while self._done is not None:
            items, done = self._pending, self._done
            self._pending, self._done = [], None
            try:
                await self._write(items)
            except asyncio.CancelledError:
                for waiting in (done, self._done):  # shutting down: callers are cancelled, not left waiting
                    if waiting is not None:
                        waiting.cancel()
                self._pending, self._done = [], None
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
                done.set_exception(exc)
            else:
                done.set_result(None)
