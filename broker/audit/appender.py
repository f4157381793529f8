"""The audit log on Kafka: the one fenced, witnessed appender (I/O shell around the pure tlog modules).

One appender per deployment extends the log; any number of standbys wait. Who is active is decided
by a Kafka consumer group (``<app_id>.api``) on the one-partition audit topic: the member assigned
partition 0 activates. Activating opens a transactional producer whose id (``<app_id>.api.audit``)
every appender of the deployment shares, so Kafka fences the previous holder (a zombie's next
transaction fails with ``ProducerFenced``), then reads the topic to the end (``read_committed``:
aborted writes of a dead appender are invisible) and checks it (:func:`broker.audit.tlog.restore_problems`)
against the pinned log key and each witness's latest cosigned checkpoint. A log that was truncated,
rewritten or extended by someone without the log key is refused with the named finding.

Appends are group-committed. Each batch is one Kafka transaction holding its entries and a checkpoint
signed by the log key (a ``tlog-head``): ``append`` returns once that transaction commits, so an
answered decision is in the log exactly once. Then the head goes to the witnesses (C2SP
``add-checkpoint``, with a consistency proof from the size each one holds) and, once the policy's
quorum has cosigned it, the cosigned checkpoint is written in a second transaction (``tlog-checkpoint``), at
most one per second: the heads committed meanwhile are covered by the next one.
A successor gets a dead appender's last head cosigned before it appends anything.

Many API instances (issue 16): with ``requests_topic`` the active appender also consumes ``audit-requests``
(:mod:`broker.audit.requests`, every instance's records) ``read_committed`` from its own group
(``<group_id>.audit-requests``) and appends them in the same batch transactions as direct appends, with that
group's offsets (``send_offsets_to_transaction``): one request is exactly one entry, and a successor after
``kill -9`` resumes from the committed offsets. ``join`` + ``activate`` split ``start`` for an instance that
answers while it waits: ``holding`` says whether ``append`` may be used.

The interface other stages use is :class:`broker.api.audit_sink.AuditSink`: ``append(record, source) -> AuditEntry``
(durable, exactly once, in one total order) and ``proof(index)`` (an inclusion proof against the
latest cosigned checkpoint).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from aiokafka.errors import IllegalOperation, KafkaError
from aiokafka.structs import OffsetAndMetadata

from broker.audit.errors import AuditError, AuditUnavailableError
from broker.audit.lines import (
    LogScan,
    RestoredLog,
    add_source,
    entry_line,
    note_line,
    parse_log,
    position_of,
    sources_cursor,
)
from broker.audit.log import AuditEntry, AuditLog, CanonicalRecord
from broker.audit.note import NoteSignature, NoteSigner, SignedNote, Verifier, parse_note
from broker.audit.records import AuditRecord
from broker.audit.resume import AppenderState, load_state, save_state
from broker.audit.tlog import (
    Finding,
    InclusionProof,
    Problem,
    WitnessPolicy,
    restore_problems,
    restore_tree_problems,
    sign_checkpoint,
)
from broker.audit.tree import MerkleLog
from broker.audit.tree_files import FileLevels, TreeFilesBehindError
from broker.witness.client import WitnessClient, WitnessRefusedError
from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = ["AppenderPolicy", "AuditAppender", "InclusionProof", "is_canonical_record"]

log = logging.getLogger(__name__)

_MAX_BATCH = 500  # entries per transaction: bounds one transaction's size (500 x ~400 B = 200 KB)
_BULK_BESIDE_URGENT = 50  # bulk entries that may share a transaction with interactive ones (see _Lanes)
_SESSION_TIMEOUT_MS = 6_000  # Kafka's default group.min.session.timeout.ms: the fastest takeover allowed
_HEARTBEAT_MS = 1_000
_COSIGN_RETRY_S = 1.0  # pause before asking witnesses again after too few cosigned
_CHECKPOINT_INTERVAL_S = 1.0  # least time between two cosigned checkpoints (witness requests + one transaction)
_REQUEST_FETCH = _MAX_BATCH  # audit requests read per fetch; the next fetch waits until these are in the log
_STATE_EVERY_S = 1.0  # least time between two saves of the resume state (a successor here reads at most this tail)
REQUESTS_GROUP_SUFFIX = ".audit-requests"  # broker.infra.acls.AUDIT_REQUESTS_GROUP


@dataclass(frozen=True, slots=True)
class AppenderPolicy:
    origin: str  # the log's C2SP origin; the log key's name
    signer: NoteSigner
    witnesses: tuple[WitnessClient, ...]
    quorum: int  # cosignatures a checkpoint needs (0 only behind insecure_unwitnessed_audit)
    transactional_id: str
    group_id: str

    @property
    def witness_policy(self) -> WitnessPolicy | None:
        if not self.witnesses or self.quorum == 0:
            return None
        return WitnessPolicy(tuple(w.key for w in self.witnesses), self.quorum)


class _Election(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partition 0 of the audit topic is the log: the member it is assigned to is the active appender."""

    def __init__(self) -> None:
        self.active = asyncio.Event()
        self.lost = asyncio.Event()

    @property
    def holding(self) -> bool:
        return self.active.is_set() and not self.lost.is_set()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass  # eager rebalancing revokes everything each time; only a new assignment without the log counts

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if any(tp.partition == 0 for tp in assigned):
            self.active.set()
        elif self.active.is_set():
            self.lost.set()


def _keep_the_holder(election: _Election) -> type[AbstractPartitionAssignor]:
    """An assignor that leaves the log with the member already holding it (a standby joining moves nothing)."""

    class _KeepTheHolder(AbstractPartitionAssignor):  # type: ignore[misc]
        name = "consent-audit-holder"
        version = 0

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
            return ConsumerProtocolMemberMetadata(cls.version, sorted(topics), b"1" if election.holding else b"0")

        @classmethod
        def assign(
            cls, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
        ) -> dict[str, ConsumerProtocolMemberAssignment]:
            holders = sorted(m for m, meta in members.items() if meta.user_data == b"1")
            holder = holders[0] if holders else min(members)
            topics = sorted({t for meta in members.values() for t in meta.subscription})
            owned = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in topics]
            return {
                m: ConsumerProtocolMemberAssignment(cls.version, owned if m == holder else [], b"") for m in members
            }

        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            pass

    return _KeepTheHolder


class _Lanes:
    """The writer's queue in two lanes: interactive appends (this instance's decisions and reads, other instances'
    audit requests) go before bulk ones (access records read from the events topic), so a backlog of access
    records delays a decision's entry by at most one transaction, and that one small (issue 16: decisions measured
    at 2,000/s queued for seconds behind the holder's catch-up). Each lane keeps its order: access records stay in
    event order, which the access cursor relies on."""

    def __init__(self) -> None:
        self._urgent: collections.deque[_Item] = collections.deque()
        self._bulk: collections.deque[_Item] = collections.deque()
        self._ready = asyncio.Event()

    def put(self, item: _Item, *, bulk: bool) -> None:
        (self._bulk if bulk else self._urgent).append(item)
        self._ready.set()

    def empty(self) -> bool:
        return not self._urgent and not self._bulk

    async def batch(self) -> list[_Item]:
        """The next transaction's items: every waiting interactive one (up to the batch size) first, then bulk
        ones up to the batch size, or only a few beside interactive ones (a smaller transaction answers sooner)."""
        while self.empty():
            self._ready.clear()
            await self._ready.wait()
        out: list[_Item] = []
        while self._urgent and len(out) < _MAX_BATCH:
            out.append(self._urgent.popleft())
        room = _MAX_BATCH - len(out) if not out else min(_BULK_BESIDE_URGENT, _MAX_BATCH - len(out))
        while self._bulk and room > 0:
            out.append(self._bulk.popleft())
            room -= 1
        return out


class AuditAppender:
    """See the module docstring. ``start`` waits until this instance is the active appender."""

    def __init__(
        self,
        conn: KafkaConnection,
        topic: str,
        policy: AppenderPolicy,
        requests_topic: str | None = None,
        tree_dir: Path | None = None,
    ) -> None:
        self.conn, self.topic, self.policy = conn, topic, policy
        self._tree_root = tree_dir  # the tree's hashes in files, and the resume state, here (None: in memory)
        self._tree_files: FileLevels | None = None
        self._cursor: dict[int, int] = {}  # events partition -> next offset whose access record is not in the log
        self._head_offset: int | None = None  # the audit topic offset of self._head (committed)
        self._head_text: str | None = None  # self._head exactly as the log holds it
        self._state_saved_at = 0.0
        self.resumed_at = 0  # the tree size the last restore resumed from (0: read the log from its start)
        self.restore_records = 0  # audit topic records the last restore read
        self._external: list[str] = []  # the witnesses' latest checkpoints, asked at activation
        self.requests_topic = requests_topic
        self._requests: AIOKafkaConsumer | None = None
        self.requests_appended = 0  # audit requests this appender moved into the log
        self._chain = AuditLog(retain=False)
        self._tree = MerkleLog()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._election = _Election()
        self._active = False  # activate() finished: the log restored and checked, the writer running
        self._queue = _Lanes()
        self._tasks: list[asyncio.Task[None]] = []
        self._failed: str | None = None
        self.stopped = asyncio.Event()  # set when this appender stops appending for good (a new one must rejoin)
        self._head: SignedNote | None = None  # newest log-signed checkpoint (committed)
        self._checkpoint: str | None = None  # newest cosigned checkpoint note
        self._checkpoint_size = 0
        self._witness_sizes: dict[str, int] = {}
        self._txn_lock = asyncio.Lock()  # one producer, one transaction at a time (entries, or a checkpoint)
        self._new_head = asyncio.Event()
        self.on_checkpoint: list[asyncio.Event] = []  # set after each cosigned checkpoint (tests, bench)
        self._uncovered: collections.deque[tuple[int, float]] = collections.deque()  # (tree size, when) per batch

    @property
    def checkpoint_age_s(self) -> float:
        """Seconds the oldest entry no cosigned checkpoint covers yet has waited (0 when all are covered)."""
        return time.monotonic() - self._uncovered[0][1] if self._uncovered else 0.0

    @property
    def unsigned_entries(self) -> int:
        """Entries appended but not yet under a cosigned checkpoint."""
        return max(0, self._tree.size - self._checkpoint_size)

    @property
    def next_index(self) -> int:
        return self._chain.position.next_index

    @property
    def cosigned_size(self) -> int:
        return self._checkpoint_size

    @property
    def holding(self) -> bool:
        """True while this instance is the active appender (``append`` may be used): elected, and activated (the log
        restored and checked, the writer running; an instance answering meanwhile writes audit requests, which this
        appender reads once active, rather than queueing appends on an activation that may yet fail)."""
        return self._active and self._producer is not None and self._failed is None and self._election.holding

    @property
    def requests_group(self) -> str:
        return f"{self.policy.group_id}{REQUESTS_GROUP_SUFFIX}"

    async def start(self, *, standby_wait_s: float | None = None) -> RestoredLog:
        """Join the election, wait to be active, fence the older appender, restore and check the log."""
        await self.join()
        return await self.activate(standby_wait_s=standby_wait_s)

    async def join(self) -> None:
        """Join the election (returns at once; :meth:`activate` waits to be elected)."""
        self._consumer = kafka.consumer(
            self.conn,
            group_id=self.policy.group_id,
            auto_offset_reset="latest",
            session_timeout_ms=_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=_HEARTBEAT_MS,
            partition_assignment_strategy=(_keep_the_holder(self._election),),
        )
        self._consumer.subscribe([self.topic], listener=self._election)
        await self._consumer.start()
        self._tasks.append(asyncio.create_task(self._keep_membership(), name="audit-election"))
        log.info("audit appender waiting to be active group=%s", self.policy.group_id)

    async def activate(self, *, standby_wait_s: float | None = None) -> RestoredLog:
        """Wait to be elected, then fence the older appender, restore and check the log, and start appending."""
        await asyncio.wait_for(self._election.active.wait(), standby_wait_s)
        self._producer = kafka.transactional_producer(self.conn, self.policy.transactional_id, linger_ms=2)
        await self._producer.start()  # InitProducerId: fences the previous appender
        self._external = await self._witness_latest()
        stored = await self._restore()
        await self._cosign_pending()
        self._tasks.append(asyncio.create_task(self._writer(), name="audit-writer"))
        self._tasks.append(asyncio.create_task(self._cosigner(), name="audit-cosigner"))
        if self.requests_topic is not None:
            await self._start_requests(self.requests_topic)
            self._tasks.append(asyncio.create_task(self._follow_requests(), name="audit-requests"))
        self._active = True
        log.info("audit appender active entries=%d cosigned=%d", self.next_index, self._checkpoint_size)
        return stored

    async def _keep_membership(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            # the membership is the point, not the records: paused, the holder does not fetch back every
            # entry it appends (profiled: that fetching took about a twentieth of the API process's time)
            consumer.pause(*consumer.assignment())
            try:
                await consumer.getmany(timeout_ms=500, max_records=1)
            except KafkaError as exc:
                log.warning("audit election poll failed error=%r", exc)
                await asyncio.sleep(0.5)
            if self._election.lost.is_set() and self._failed is None:
                self._fail("another appender took over the audit log")

    async def _restore(self) -> RestoredLog:
        """Read the stored log line by line into the tree (memory does not grow with it, issue 16) and check it:
        from where this host's previous appender saved its state (:mod:`broker.audit.resume`), else from the start."""
        resumed = self._resume_point()
        if resumed is not None:
            return await self._restore_tail(*resumed)
        self.resumed_at, self.restore_records = 0, 0
        scan = LogScan(self._fresh_tree())
        head_offset: int | None = None
        async for record in kafka.iter_to_end(self.conn, self.topic):
            self.restore_records += 1
            if record.value is not None:
                heads = len(scan.heads)
                scan.add(record.value)
                head_offset = record.offset if len(scan.heads) > heads else head_offset
        if not scan.in_order:  # entries out of order: the full parse names the problem exactly
            return await self._restore_in_memory()
        self._check_restored(
            lambda key, wp, external: restore_tree_problems(
                self.policy.origin, scan.tree, (), scan.heads, scan.notes, key, wp, external
            )
        )
        return self._restored(scan, scan.heads, scan.notes, head_offset)

    def _restored(
        self, scan: LogScan, heads: Sequence[str], notes: Sequence[str], head_offset: int | None
    ) -> RestoredLog:
        self._tree = scan.tree
        self._chain = AuditLog(retain=False, start=scan.position())
        self._cursor = dict(scan.cursor)
        self._take_notes(heads, notes)
        if head_offset is not None and self._head_size() == self._tree.size:  # the newest head signs it all
            self._head_offset = head_offset
            self._save_state()  # the next start here resumes from this point, whether or not this one appends
        return scan.restored()

    def _resume_point(self) -> tuple[AppenderState, MerkleLog] | None:
        """The saved state and the tree files opened at its size, if both are there and agree."""
        if self._tree_root is None:
            return None
        state, why = load_state(self._state_path, self.topic)
        tree: MerkleLog | None = None
        if state is not None:
            try:
                files = FileLevels.open_at(self._tree_dir, state.size)
            except (TreeFilesBehindError, OSError) as exc:
                why = f"the tree files do not hold the saved size ({exc})"
            else:
                tree = MerkleLog(files)
                if tree.root() != state.root or not tree.tail_consistent():
                    files.close()
                    tree, why = None, f"the tree files' root at size {state.size} is not the saved one"
                else:
                    self._tree_files = files
        if state is None or tree is None:
            log.info("audit appender restores the log from its start: %s", why)
            return None
        return state, tree

    async def _restore_tail(self, state: AppenderState, tree: MerkleLog) -> RestoredLog:
        """Read the log from the saved head on and check it as :meth:`_restore` checks a whole log, the saved
        head and checkpoint standing in for those before it. The saved head must still be at its offset."""
        self.resumed_at, self.restore_records = state.size, 0
        scan = LogScan(tree, start=state.chain, cursor=state.cursor)
        head_offset = state.head_offset
        async for record in kafka.iter_to_end(self.conn, self.topic, positions={0: state.head_offset}):
            if self.restore_records == 0 and not _is_head(record, state):
                why = (
                    f"offset {state.head_offset} no longer holds the head of size {state.size} this host's appender "
                    "committed there: the log was rewritten"
                )
                self._refuse(Problem(Finding.REWRITE, state.size, why))
            self.restore_records += 1
            if record.value is not None:
                heads_before = len(scan.heads)
                scan.add(record.value)
                head_offset = record.offset if len(scan.heads) > heads_before else head_offset
        if self.restore_records == 0:
            why = (
                f"the log ends before offset {state.head_offset}, where this host's appender committed the head of "
                f"size {state.size}"
            )
            self._refuse(Problem(Finding.TRUNCATION, state.size, why))
        if not scan.in_order:
            why = f"an entry after index {scan.tree.size - 1} is out of index order"
            self._refuse(Problem(Finding.REWRITE, scan.tree.size, why))
        heads = scan.heads  # the first is the saved head itself
        notes = [state.checkpoint, *scan.notes] if state.checkpoint is not None else scan.notes
        self._check_restored(
            lambda key, wp, external: restore_tree_problems(
                self.policy.origin, scan.tree, (), heads, notes, key, wp, external
            )
        )
        log.info("audit appender resumed at=%d read=%d entries=%d", state.size, self.restore_records, scan.tree.size)
        return self._restored(scan, heads, notes, head_offset)

    def _refuse(self, problem: Problem) -> None:
        self._failed = (
            f"the stored audit log does not verify, refusing to extend it: {problem.describe()} (if this "
            f"deployment's audit topic was recreated on purpose, delete {self._tree_root} to restore from its start)"
        )
        log.error("audit restore refused findings=%s", problem.finding.value)
        raise AuditUnavailableError(self._failed)

    async def _restore_in_memory(self) -> RestoredLog:
        records = await kafka.read_to_end(self.conn, self.topic)
        stored = parse_log(r.value for r in records if r.value is not None)
        entries = [(e.index, e.record) for e in stored.entries]
        self._check_restored(
            lambda key, wp, external: restore_problems(
                self.policy.origin, entries, stored.heads, stored.notes, key, wp, external
            )
        )
        self._tree = self._fresh_tree()
        for _, record in sorted(entries):
            self._tree.append(record)
        self._chain = AuditLog(retain=False, start=position_of(stored))
        self._take_notes(stored.heads, stored.notes)
        self._cursor = sources_cursor(stored.sources)
        return RestoredLog(len(stored.entries), dict(self._cursor))

    def _check_restored(self, problems_of: Callable[[Verifier, WitnessPolicy, list[str]], list[Problem]]) -> None:
        """Refuse to extend a stored log that does not verify (with witnesses configured)."""
        wp = self.policy.witness_policy
        if wp is None:
            return
        problems = problems_of(self.policy.signer.verifier, wp, self._external)
        if problems:
            found = "; ".join(p.describe() for p in problems)
            self._failed = f"the stored audit log does not verify, refusing to extend it: {found}"
            log.error("audit restore refused findings=%s", ",".join(sorted({p.finding.value for p in problems})))
            raise AuditUnavailableError(self._failed)

    def _take_notes(self, heads: Sequence[str], notes: Sequence[str]) -> None:
        if heads:
            self._head, self._head_text = parse_note(heads[-1]), heads[-1]
        if notes:
            self._checkpoint = notes[-1]
            self._checkpoint_size = int(parse_note(notes[-1]).text.split("\n")[1])

    @property
    def _tree_dir(self) -> Path:
        assert self._tree_root is not None
        return self._tree_root / "tree"

    @property
    def _state_path(self) -> Path:
        assert self._tree_root is not None
        return self._tree_root / "state.json"

    def _fresh_tree(self) -> MerkleLog:
        """An empty tree: on the files under ``tree_dir`` (emptied) when given, else in memory."""
        self._close_tree()
        if self._tree_root is None:
            return MerkleLog()
        self._tree_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._state_path.unlink(missing_ok=True)  # the files are about to change: the old state no longer holds
        for legacy in self._tree_root.glob("appender-*"):  # before resuming, each appender had a folder of its own
            shutil.rmtree(legacy, ignore_errors=True)
        self._tree_files = FileLevels(self._tree_dir)
        self._tree_files.reset()
        return MerkleLog(self._tree_files)

    def _close_tree(self) -> None:
        if self._tree_files is not None:
            self._tree_files.close()
            self._tree_files = None

    def _save_state(self) -> None:
        """Where this appender stands (:mod:`broker.audit.resume`): files first, so they never lag the state."""
        if self._tree_files is None or self._head_text is None or self._head_offset is None:
            return
        if self._tree.size == 0 or self._head_size() != self._tree.size:  # only a point a head signs is saved
            return
        self._tree_files.flush()
        state = AppenderState(
            self.topic, self._head_offset, self._head_text, self._tree.size, self._tree.root(),
            self._chain.position, self._checkpoint, self._checkpoint_size, dict(self._cursor),
        )  # fmt: skip
        try:
            save_state(self._state_path, state)
        except OSError as exc:  # a full disk costs the next start a full restore, not this log its appends
            log.warning("audit appender state not saved error=%s", exc.strerror)
        self._state_saved_at = time.monotonic()

    async def _witness_latest(self) -> list[str]:
        out: list[str] = []
        for w in self.policy.witnesses:
            try:
                latest = await w.latest(self.policy.origin)
            except (TimeoutError, WitnessRefusedError, OSError) as exc:
                log.warning("audit witness unreachable url=%s error=%r", w.url, exc)
                continue
            if latest is not None:
                out.append(latest)
        return out

    async def append(self, record: CanonicalRecord, source: str | None = None) -> AuditEntry:
        if self._failed is not None or self._producer is None:
            raise AuditUnavailableError(self._failed or "the audit log is not open (standby or starting)")
        future: asyncio.Future[AuditEntry] = asyncio.get_running_loop().create_future()
        # an access record read from the events topic (it has a source) is bulk: it waits behind interactive appends
        self._queue.put(_Item(record.to_bytes(), source, future), bulk=source is not None)
        return await future

    async def _start_requests(self, topic: str) -> None:
        """Read ``audit-requests`` from this group's committed offsets (after the fence: an aborted batch's
        offsets were never committed, so its requests are read again)."""
        self._requests = kafka.consumer(self.conn, group_id=self.requests_group, auto_offset_reset="earliest")
        await self._requests.start()
        tps = await kafka.assign_all(self._requests, topic)
        await kafka.seek_committed_or_start(self._requests, tps)

    async def _follow_requests(self) -> None:
        consumer = self._requests
        assert consumer is not None
        loop = asyncio.get_running_loop()
        while self._failed is None:
            try:
                fetched = await consumer.getmany(timeout_ms=200, max_records=_REQUEST_FETCH)
            except KafkaError as exc:
                log.warning("audit requests fetch failed error=%r", exc)
                await asyncio.sleep(0.5)
                continue
            futures: list[asyncio.Future[AuditEntry]] = []
            for tp, records in fetched.items():
                for r in records:
                    data = r.value or b""
                    if not is_canonical_record(data):  # only the api principal writes here: a bug, not input
                        log.error("audit request skipped partition=%d offset=%d reason=NOT_AN_AUDIT_RECORD",
                                  tp.partition, r.offset)  # fmt: skip
                        data = b""
                    future: asyncio.Future[AuditEntry] = loop.create_future()
                    self._queue.put(_Item(data, None, future, tp, r.offset), bulk=False)
                    futures.append(future)
            # the next fetch waits for these: the queue stays bounded, and a failed batch stops the reading
            await asyncio.gather(*futures, return_exceptions=True)

    def proof(self, index: int) -> InclusionProof | None:
        size = self._checkpoint_size
        if self._checkpoint is None or index >= size:
            return None
        return InclusionProof(index, size, self._tree.inclusion_proof(index, size), self._checkpoint)

    async def _writer(self) -> None:
        while True:
            batch = await self._queue.batch()
            if self._failed is not None:
                for item in batch:
                    item.future.set_exception(AuditUnavailableError(self._failed))
                continue
            try:
                started = time.perf_counter()
                entries = await self._commit_batch(batch)
                log.debug("audit batch entries=%d txn_ms=%.1f", len(batch), 1000 * (time.perf_counter() - started))
            except Exception as exc:  # _TXN_ERRORS, or any defect: a dead writer would leave its callers waiting
                if not isinstance(exc, _TXN_ERRORS):
                    log.exception("audit writer failed unexpectedly")
                self._fail(f"audit write failed: {exc!r}")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(AuditUnavailableError(self._failed or "audit write failed"))
                continue
            for item, entry in zip(batch, entries, strict=True):
                if not item.future.done():
                    item.future.set_result(entry)
            self._new_head.set()
            if time.monotonic() - self._state_saved_at >= _STATE_EVERY_S:
                self._save_state()

    async def _cosigner(self) -> None:
        """Gets the newest head cosigned while the writer goes on committing batches."""
        while True:
            await self._new_head.wait()
            self._new_head.clear()
            try:
                await self._cosign_pending()
            except Exception as exc:  # as the writer: a dead cosigner would stop checkpoints with the log "open"
                if not isinstance(exc, _TXN_ERRORS):
                    log.exception("audit cosigner failed unexpectedly")
                self._fail(f"audit checkpoint write failed: {exc!r}")
            # one checkpoint transaction per interval, not per batch: each one holds the producer (the
            # transaction lock) and, without the pause, every batch was followed by one (profiled: half of
            # the transactions were checkpoints); heads written meanwhile are cosigned together next time
            await asyncio.sleep(_CHECKPOINT_INTERVAL_S)

    async def _commit_batch(self, batch: Sequence[_Item]) -> list[AuditEntry]:
        """One transaction: the batch's entries (a skipped request has none: its entry is the one before), a
        log-signed head and the audit-requests offsets the batch consumed."""
        producer = self._producer
        assert producer is not None
        chain, tree_size = self._chain.position, self._tree.size
        entries: list[AuditEntry] = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        try:
            # kafka.transaction (through _transaction), not aiokafka's: that one commits even when a send failed,
            # and an entry answered as appended would be missing from the log (the chain broken at the next one)
            async with self._txn_lock, self._transaction(producer) as sent:
                for item in batch:
                    if item.tp is not None:
                        offsets[item.tp] = OffsetAndMetadata(item.offset + 1, "")
                        if not item.data:
                            entries.append(_SKIPPED)
                            continue
                    entry = self._chain.append(_Raw(item.data))
                    self._tree.append(item.data)
                    entries.append(entry)
                    sent.append(await producer.send(self.topic, entry_line(entry, item.source), partition=0))
                if offsets:
                    await producer.send_offsets_to_transaction(offsets, self.requests_group)
                head = sign_checkpoint(self.policy.signer, self.policy.origin, self._tree.size, self._tree.root())
                head_sent = await producer.send(self.topic, note_line(head.to_text(), cosigned=False), partition=0)
                sent.append(head_sent)
        except BaseException:
            self._chain = AuditLog(retain=False, start=chain)  # nothing of the aborted batch is in the log
            self._tree.truncate(tree_size)
            raise
        self._head, self._head_text, self._head_offset = head, head.to_text(), int(head_sent.result().offset)
        for item in batch:
            if item.source is not None:
                add_source(self._cursor, item.source)
        self.requests_appended += sum(1 for item in batch if item.tp is not None and item.data)
        self._uncovered.append((self._tree.size, time.monotonic()))
        return entries

    async def _cosign_pending(self) -> None:
        """Get the newest head cosigned by a quorum and publish it; retried until it is (or the log fails)."""
        while self._head is not None and self._checkpoint_size < self._head_size() and self._failed is None:
            head = self._head
            head_size = self._head_size()
            need = self.policy.quorum
            cosigs = await self._cosign(head) if need else []
            if len(cosigs) >= need:
                note = head.with_signatures(tuple(cosigs))
                producer = self._producer
                assert producer is not None
                async with self._txn_lock, self._transaction(producer) as sent:
                    sent.append(await producer.send(self.topic, note_line(note.to_text(), cosigned=True), partition=0))
                self._checkpoint, self._checkpoint_size = note.to_text(), head_size
                while self._uncovered and self._uncovered[0][0] <= head_size:
                    self._uncovered.popleft()
                for event in self.on_checkpoint:
                    event.set()
                return
            log.warning("audit checkpoint short of quorum cosigned=%d quorum=%d", len(cosigs), need)
            await asyncio.sleep(_COSIGN_RETRY_S)

    def _transaction(self, producer: AIOKafkaProducer) -> AbstractAsyncContextManager[list[asyncio.Future[Any]]]:
        """The producer's next transaction, entered with the transaction lock held, unless the log has failed.

        The writer and the cosigner share one producer: once one of their transactions failed (e.g. fenced:
        aiokafka's producer is then in its fatal state for good), the other, waiting on the lock, must not begin
        one; aiokafka would answer with an AssertionError (its state machine), not a KafkaError, and the
        appender's task would die with its callers' futures never answered."""
        if self._failed is not None:
            raise AuditUnavailableError(self._failed)
        return kafka.transaction(producer)  # commits only once every send put in its list was delivered

    def _head_size(self) -> int:
        return 0 if self._head is None else int(self._head.text.split("\n")[1])

    async def _cosign(self, head: SignedNote) -> list[NoteSignature]:
        results = await asyncio.gather(*(self._cosign_one(w, head) for w in self.policy.witnesses))
        return [r for r in results if r is not None]

    async def _cosign_one(self, w: WitnessClient, head: SignedNote) -> NoteSignature | None:
        size = int(head.text.split("\n")[1])
        old = self._witness_sizes.get(w.url, self._checkpoint_size)
        for _ in range(2):  # a 409 tells us the size the witness holds: retry once from there
            try:
                proof = self._tree.consistency_proof(old, size) if old <= size else ()
                sig = await w.add_checkpoint(old, proof, head)
            except WitnessRefusedError as exc:
                if exc.status == 409 and exc.body.strip().isdigit():
                    old = int(exc.body.strip())
                    continue
                log.warning("audit witness refused url=%s status=%d", w.url, exc.status)
                return None
            except (TimeoutError, OSError, ValueError) as exc:
                log.warning("audit witness unreachable url=%s error=%r", w.url, exc)
                return None
            self._witness_sizes[w.url] = size
            return sig
        return None

    async def stop(self, drain_s: float = 10.0) -> None:
        """Let queued appends commit and the last head be cosigned (up to ``drain_s``), then close."""
        deadline = asyncio.get_running_loop().time() + drain_s
        while self._failed is None and self._producer is not None and asyncio.get_running_loop().time() < deadline:
            if self._queue.empty() and self._checkpoint_size >= self._tree.size and not self._new_head.is_set():
                break
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, KafkaError):
                pass
            except Exception as exc:  # noqa: BLE001 - a task that died of a bug must not stop its successor too
                log.error("audit appender task=%s had died error=%r", task.get_name(), exc)  # noqa: TRY400 - once
        self._tasks.clear()
        for w in self.policy.witnesses:
            await w.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._requests is not None:
            await self._requests.stop()
            self._requests = None
        self._save_state()
        self._close_tree()

    def _fail(self, why: str) -> None:
        if self._failed is None:
            self._failed = why
            self.stopped.set()
            log.error("audit appender stopped appending: %s", why)


@dataclass(slots=True)
class _Item:
    """One queued append: a direct one (``tp`` None) or an audit request read at ``tp``/``offset``."""

    data: bytes  # the canonical record; b"" for a request that is not one (skipped, its offset committed)
    source: str | None
    future: asyncio.Future[AuditEntry]
    tp: TopicPartition | None = None
    offset: int = -1


_SKIPPED = AuditEntry(-1, b"", b"", b"")
# A failed transaction: Kafka's errors, a failed log (above), and aiokafka's own state machine refusing a call on a
# producer a concurrent failure left fatal (AssertionError, IllegalOperation: as broker.stage._abort names them)
_TXN_ERRORS = (KafkaError, AuditUnavailableError, AssertionError, IllegalOperation)


def _is_head(record: Any, state: AppenderState) -> bool:
    """True if ``record`` is the tlog-head line holding exactly the saved head note."""
    try:
        return bool(record.offset == state.head_offset and record.value == note_line(state.head, cosigned=False))
    except (TypeError, AttributeError):
        return False


def is_canonical_record(data: bytes) -> bool:
    """True if ``data`` is exactly the canonical bytes of an audit record (what an entry holds, nothing more)."""
    try:
        return AuditRecord.from_bytes(data).to_bytes() == data
    except AuditError:
        return False


@dataclass(frozen=True, slots=True)
class _Raw:
    data: bytes

    def to_bytes(self) -> bytes:
        return self.data
