"""The audit log as every API instance sees it, and the holder's access-record appending (I/O shell, issue 16).

- :class:`AuditFollower` (every instance) follows the audit topic ``read_committed``: it indexes each entry
  into the instance's own store (the access log), keeps the Merkle tree and the newest cosigned checkpoint, so
  any instance serves access logs and inclusion proofs; only the holder writes. Given a folder, the tree's
  hashes live in files there (:mod:`broker.audit.tree_files`: memory does not grow with the log) and each
  batch's tree size, root and checkpoint are stored with its rows and positions in one transaction, so a
  restart resumes where the store is instead of reading the whole log again (issue 16); files that do not
  match the store (a crash, a lost disk write) are rebuilt from the topic's start.
- :class:`AccessAppender` (the holder only, from its election on) reads the events topic from the cursor
  the restored log gives (the ``source`` of its access entries) and appends each AccessRecord event, so a
  successor picks up exactly where the log stops: nothing lost, nothing appended twice.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from broker.api.audit_sink import AuditSink
from broker.api.views import FETCH_RECORDS, Follower
from broker.audit import AuditEntry, AuditError, AuditRecord, access_record
from broker.audit.errors import AuditLineError, AuditUnavailableError
from broker.audit.lines import StoredLog, parse_log, sources_cursor
from broker.audit.note import parse_note
from broker.audit.tlog import InclusionProof
from broker.audit.tree import MerkleLog
from broker.audit.tree_files import FileLevels, TreeFilesBehindError
from broker.views import AuditTreeRow, ViewStore
from consent_io.connection import KafkaConnection
from consent_io.kafka import KafkaTopicReader
from consent_wire.errors import WireError
from consent_wire.model import AccessRecord
from consent_wire.signing import verified_event_payload

__all__ = ["AccessAppender", "AuditFollower", "access_cursor"]

log = logging.getLogger(__name__)


class AuditFollower(Follower):
    """The audit topic into the store's ``audit_index``, with the tree and the newest cosigned checkpoint."""

    def __init__(self, conn: KafkaConnection, topic: str, store: ViewStore, tree_dir: Path | None = None) -> None:
        super().__init__(conn, topic, store)
        self._tree_dir = tree_dir
        self._files: FileLevels | None = None
        self._tree = MerkleLog()
        self._checkpoint: str | None = None
        self._checkpoint_size = 0
        self._pending: list[tuple[str, AuditEntry]] = []
        self.entries_seen = 0
        self._indexed_here: set[int] = set()  # entries this instance's holder already put in the store itself
        self.resumed_at = 0  # the tree size a start resumed from (0: read from the topic's start)

    async def start(self) -> None:
        if self._tree_dir is None:  # the whole tree in memory: read from the start
            await self.start_at({})
            return
        stored = await self.store.audit_tree()
        size = 0 if stored is None else stored.size
        problem = None
        try:
            self._files = FileLevels.open_at(self._tree_dir, size)
        except TreeFilesBehindError as exc:
            problem = str(exc)
        else:
            self._tree = MerkleLog(self._files)
            if stored is not None and (self._tree.root() != stored.root or not self._tree.tail_consistent()):
                problem = f"the files' hashes at size {size} are not the ones stored"
        if problem is not None:
            log.warning("audit tree files do not match the view (%s); rebuilding them from the log's start", problem)
            if self._files is not None:
                self._files.close()
            self._files = FileLevels(self._tree_dir)
            self._files.reset()
            self._tree = MerkleLog(self._files)
            stored = None
        if stored is None:  # from the start (INSERT OR IGNORE keeps the rows already indexed)
            await self.start_at({})
            return
        self._checkpoint, self._checkpoint_size = stored.checkpoint, stored.checkpoint_size
        self.resumed_at = stored.size
        await self.start_at(await self.store.positions(self.topic))

    async def handle(self, partition: int, record: Any) -> None:
        self.batch.advance(partition, record.offset)
        if not record.value:
            return
        try:
            stored = parse_log([bytes(record.value)])
        except AuditLineError as exc:
            log.warning("audit line skipped offset=%d reason=%s", record.offset, exc.reason)
            return
        self._take(stored)

    def _take(self, stored: StoredLog) -> None:
        for entry in stored.entries:
            if entry.index != self._tree.size:  # the appender verified the log; a gap here is a reader's bug
                log.error("audit entry out of order index=%d expected=%d", entry.index, self._tree.size)
                continue
            self._tree.append(entry.record)
            self.entries_seen += 1
            if entry.index in self._indexed_here:  # the holder's own decision: its row is in the store already
                self._indexed_here.discard(entry.index)
                continue
            try:
                key = AuditRecord.from_bytes(entry.record).patient_key
            except AuditError:
                continue
            self._pending.append((key, entry))
        for note in stored.notes:
            size = int(parse_note(note).text.split("\n")[1])
            if size <= self._tree.size:
                self._checkpoint, self._checkpoint_size = note, size

    def indexed_here(self, index: int) -> None:
        """Entry ``index`` is already in the store (the holder indexed its own append): only its hash is needed
        here, not its row again (profiled: parsing and re-inserting them was about a tenth of the holder's time)."""
        if index >= self._tree.size:  # else already read, and already indexed here (INSERT OR IGNORE)
            self._indexed_here.add(index)

    async def flush(self) -> None:
        # rows (INSERT OR IGNORE: entries the holder indexed itself stay as they are), positions and the tree's
        # size and root in one transaction; the tree's files are written first, so they never lag the store
        self.batch.audit, self._pending = self._pending, []
        if self._files is not None:
            self._files.flush()
            size = self._tree.size
            self.batch.audit_tree = AuditTreeRow(size, self._tree.root(), self._checkpoint, self._checkpoint_size)
        await super().flush()

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None

    @property
    def size(self) -> int:
        return self._tree.size

    def proof(self, index: int) -> InclusionProof | None:
        size = self._checkpoint_size
        if self._checkpoint is None or index >= size:
            return None
        return InclusionProof(index, size, self._tree.inclusion_proof(index, size), self._checkpoint)


def access_cursor(stored: StoredLog) -> dict[int, int]:
    """Events partition -> first offset whose access record is not yet in the log (from the entries' sources)."""
    return sources_cursor(stored.sources)


class AccessAppender:
    """The holder's task: every AccessRecord event from ``cursor`` on into the audit log, in event order."""

    def __init__(self, conn: KafkaConnection, topic: str, appender: AuditSink, cursor: dict[int, int]) -> None:
        self.reader = KafkaTopicReader(conn, topic)
        self.appender = appender
        self.cursor = cursor
        self.appended = 0

    async def run(self, stop: asyncio.Event) -> None:
        await self.reader.start(positions=self.cursor)
        try:
            while not stop.is_set():
                fetched = await self.reader.fetch(timeout_ms=200, max_records=FETCH_RECORDS)
                # appends queue on the appender's FIFO in creation order; one batch transaction takes many
                pending = [
                    asyncio.create_task(self._append(partition, record))
                    for partition, records in fetched.items()
                    for record in records
                ]
                results = await asyncio.gather(*pending)
                if not all(results):  # the appender stopped: a successor resumes from the log's cursor
                    return
        finally:
            await self.reader.stop()

    async def _append(self, partition: int, record: Any) -> bool:
        try:
            event = verified_event_payload(record.value or b"")
        except WireError:
            return True  # the view logs it; nothing to audit
        if not isinstance(event.payload, AccessRecord):
            return True
        try:
            await self.appender.append(access_record(event), source=f"{partition}/{record.offset}")
        except AuditError as exc:
            log.warning(
                "access record not appended partition=%d offset=%d reason=%s", partition, record.offset, exc.reason
            )
            return not isinstance(exc, AuditUnavailableError)  # a bad record is skipped; a stopped log ends it
        self.appended += 1
        return True
