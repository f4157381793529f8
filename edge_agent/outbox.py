"""The durable outbox: events are on disk before they are acknowledged to the clinical system.

:class:`Outbox` is the asyncio face of :class:`~edge_agent.outbox_store.OutboxStore`. All
SQLite work runs on one dedicated worker thread, never on the event loop. Submissions are
**group-committed**: while one transaction is being written and fsynced, new submissions
queue up; the writer task then commits all of them in the next single transaction and
resolves each submitter's future. One fsync is shared by every queued submission.

At the disk cap the outbox refuses new events with :class:`~edge_agent.errors.OutboxFullError`
and raises the ``full`` alarm; it never drops an old row. The alarm clears once the publisher's
acknowledgements have freed space and a submission fits again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from edge_agent.errors import OutboxClosedError, OutboxFullError
from edge_agent.outbox_store import Draft, EventCodec, OutboxRow, OutboxStore, Receipt

__all__ = ["Draft", "EventCodec", "Outbox", "OutboxRow", "OutboxStats", "Receipt"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_Waiter = tuple[Sequence[Draft], "asyncio.Future[list[Receipt]]"]


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int  # events on disk not yet acknowledged end to end
    next_seq: int
    acked_seq: int
    used_bytes: int
    cap_bytes: int
    full: bool  # alarm: at the disk cap, refusing new events
    quarantined: int  # corrupt rows moved aside since the outbox was created


class Outbox:
    """Create with :meth:`open`; close with :meth:`close` (drains queued submissions first)."""

    def __init__(self, store: OutboxStore, executor: ThreadPoolExecutor, cap_bytes: int) -> None:
        self._store = store
        self._executor = executor
        self._cap = cap_bytes
        self._queue: list[_Waiter] = []
        self._wake = asyncio.Event()
        self._committed = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] = asyncio.create_task(self._write_loop(), name="outbox-writer")
        self.full = False
        self.submitted_total = 0

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        agent_id: str,
        site: str,
        codec: EventCodec,
        cap_bytes: int,
        synchronous: str = "FULL",
    ) -> Outbox:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-sqlite")
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(
            executor,
            lambda: OutboxStore(path, agent_id=agent_id, site=site, codec=codec, synchronous=synchronous),
        )
        log.info("outbox opened pending=%d next_seq=%d", store.pending_count, store.next_seq)
        return cls(store, executor, cap_bytes)

    # -- submissions --------------------------------------------------------------------------

    async def submit(self, draft: Draft) -> Receipt:
        return (await self.submit_many([draft]))[0]

    async def submit_many(self, drafts: Sequence[Draft]) -> list[Receipt]:
        """Durably append ``drafts`` (all or none); returns once they are committed to disk."""
        if self._closing:
            raise OutboxClosedError("the outbox is shutting down; retry against the restarted agent")
        if not drafts:
            return []
        future: asyncio.Future[list[Receipt]] = asyncio.get_running_loop().create_future()
        self._queue.append((drafts, future))
        self._wake.set()
        # shield: a caller that gives up must not cancel a commit other submitters share
        return await asyncio.shield(future)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._commit(batch)
            if self._closing and not self._queue:
                return

    async def _commit(self, batch: list[_Waiter]) -> None:
        groups = [drafts for drafts, _ in batch]
        try:
            results = await self._run(lambda: self._store.commit_groups(groups, self._cap))
        except Exception as exc:  # the whole transaction failed: every submitter gets the error
            log.exception("outbox commit failed events=%d", sum(len(g) for g in groups))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            self._settle(future, result)
        self._committed.set()

    def _settle(self, future: asyncio.Future[list[Receipt]], result: list[Receipt] | Exception) -> None:
        if isinstance(result, OutboxFullError):
            if not self.full:
                log.error("outbox full: refusing new events cap_bytes=%d", self._cap)
            self.full = True
        elif isinstance(result, list):
            self.full = False
            self.submitted_total += len(result)
        if future.done():
            return
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)

    # -- publishing side ----------------------------------------------------------------------

    async def pending(self, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` unacknowledged rows in seq order (corrupt rows are quarantined)."""
        return await self._run(lambda: self._store.pending(limit))

    async def ack_upto(self, seq: int) -> int:
        """Delete every row up to ``seq`` after its end-to-end acknowledgement."""
        return await self._run(lambda: self._store.ack_upto(seq))

    async def wait_for_commit(self, timeout_s: float) -> None:
        """Return after the next commit, or after ``timeout_s``."""
        self._committed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._committed.wait(), timeout_s)

    @property
    def pending_count(self) -> int:
        return self._store.pending_count

    @property
    def last_hlc(self) -> int:
        """The highest HLC stamp ever committed: seed the agent's clock with it at start-up."""
        return self._store.last_hlc

    @property
    def quarantined_count(self) -> int:
        return self._store.quarantined_count

    async def stats(self) -> OutboxStats:
        used, acked = await self._run(lambda: (self._store.used_bytes(), self._store.acked_seq()))
        s = self._store
        return OutboxStats(s.pending_count, s.next_seq, acked, used, self._cap, self.full, s.quarantined_count)

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        await self._writer
        await self._run(self._store.close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
