"""The verifier's pure core: signed batches in, verified events and dead letters out.

Per agent it keeps a :class:`Cursor` (next expected sequence, hash of the last accepted event,
a short window of recent hashes, and batches held while a gap is open). The cursor is persisted by
the stage to a compacted changelog in the same Kafka transaction as the outputs, so a restart
resumes exactly where the last committed transaction left off.

Rules (DESIGN.md section 3):
- every event in a batch is checked against the agent's chain: ``seq`` below the cursor is a
  **replay** when its hash matches what was accepted (or is older than the window) and a
  **sequence regression** when it differs; ``prev_hash`` must equal the last accepted hash
  (**chain break**); ``seq`` above the cursor opens a **gap**: the batch is held (bounded count and
  time) until the missing events arrive; a gap open longer than ``gap_timeout_ms`` is reported once
  with ``GAP_TIMEOUT`` (the batch stays held: reporting never loses it); beyond ``max_held`` batches
  the newest is dead-lettered with ``SEQUENCE_GAP`` for the operator to re-drive; a batch whose holding
  would make the agent's cursor record larger than ``MAX_CURSOR_BYTES`` (below the producer's
  ``max_request_size``: the cursor is written in the same transaction, and a record over it would
  abort that transaction for ever) is dead-lettered with ``GAP_HOLD_FULL`` instead of held.
- dedupe is on (agent, seq), never on signature bytes.
- time bounds, against a wrong or hostile clock: ``arrival`` is the broker's LogAppendTime, which no
  agent can set. An event's ``recorded_ms`` more than ``MAX_FUTURE_MS`` after arrival is
  ``FUTURE_DATED``; an HLC whose physical part is more than ``MAX_FUTURE_MS`` after arrival, or an
  HLC or ``recorded_ms`` more than ``MAX_PAST_MS`` before it, is ``CLOCK_SKEW`` (a clear stamped
  with HLC 2**63-1 would otherwise beat every later set for ever). The whole batch is dead-lettered.
- key validity by arrival time, against a stolen key: the signing key must have been the agent's
  when the batch arrived (``consent_wire.keys.KeyRegistry.key_at_arrival``): back-dated events
  signed with a revoked key (``REVOKED_KEY``) or a rotated-out key (``ROTATED_OUT_KEY``) are refused.
- authority, against a compromised site: each fresh event must be within the operator-signed
  authority of the key that signed it (``consent_wire.authority.refusal``): its site, its access
  record's or breach report's organisation (``SITE_MISMATCH``) and the capability its payload
  needs (``CAPABILITY_DENIED``). Such an event is authentic and in sequence, so the cursor moves
  past it (the agent's later events are not held behind it) but it is dead-lettered on its own
  (its event bytes), never forwarded.
- pseudonyms, against a compromised site re-identifying others (issue 12 item 11): an agent keys its
  events by its *site's* pseudonym (``consent_wire.site_pseudonyms``); each authorised event's key is
  opened with the secret of the site its key is registered for and translated to the national
  pseudonym (:meth:`consent_wire.signing.VerifiedEvent.translated`) that everything downstream uses.
  A key that does not open (another site's pseudonym, a national one, a forgery) is
  ``INVALID_PATIENT_KEY``: dead-lettered on its own like an authority refusal, the chain moving past it.
  Without ``pseudonyms`` (unit tests of the chain rules only; the runtime always passes them) events
  are forwarded as signed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from consent_wire.authority import refusal
from consent_wire.errors import (
    ChainBreakError,
    ClockSkewError,
    InvalidPatientKeyError,
    ReplayError,
    SequenceGapError,
    SequenceRegressionError,
    WireError,
)
from consent_wire.hlc import unpack
from consent_wire.keys import KeyRegistry
from consent_wire.signing import VerifiedEvent, verify_batch
from consent_wire.site_pseudonyms import CorePseudonyms

__all__ = ["Cursor", "DeadLetter", "VerifierCore", "VerifyResult"]

ZERO_HASH = bytes(32)
# Hashes of the last events accepted per agent, to tell a replay from a regression. 64 covers a few
# batches of re-sent events after an agent restart and keeps the cursor record about 3 KB.
HASH_WINDOW = 64
GAP_TIMEOUT_MS = 30_000  # an agent's in-order resend after reconnect normally closes a gap in seconds
MAX_HELD = 32  # batches held per agent while a gap is open (their bytes are bounded by MAX_CURSOR_BYTES)
# The cursor record (JSON, held batches base64) must stay below every producer's max_request_size
# (consent_io.kafka.MAX_REQUEST_BYTES); 16 KiB is left for the record key, Kafka's record overhead and slack.
# Held batches therefore total at most ~770 KB per agent; one larger than what is left is GAP_HOLD_FULL.
# (Kept free of consent_io so this pure core imports no Kafka client; a unit test ties the two numbers.)
MAX_CURSOR_BYTES = 1_048_588 - 16 * 1024
# Clock bounds (docs/reason-codes.md, CLOCK_SKEW). Offline agents have clocks skewed by hours:
# a day of future skew is tolerated, and no more (a future HLC wins every merge until then).
MAX_FUTURE_MS = 24 * 3600 * 1000
# A site's outbox may hold events through a long outage (or be restored from backup): a year and
# a month of backlog is accepted; anything older is a wrong clock or a forgery.
MAX_PAST_MS = 400 * 24 * 3600 * 1000


@dataclass(slots=True)
class HeldBatch:
    first_seq: int
    offset: int
    held_since_ms: int
    data: bytes
    reported: bool = False


@dataclass(slots=True)
class Cursor:
    agent_id: str
    next_seq: int = 1
    last_hash: bytes = ZERO_HASH
    recent: dict[int, bytes] = field(default_factory=dict)  # seq -> event hash (last HASH_WINDOW)
    held: list[HeldBatch] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "agent_id": self.agent_id,
                "next_seq": self.next_seq,
                "last_hash": self.last_hash.hex(),
                "recent": {str(k): v.hex() for k, v in sorted(self.recent.items())},
                "held": [
                    {
                        "first_seq": h.first_seq,
                        "offset": h.offset,
                        "since": h.held_since_ms,
                        "reported": h.reported,
                        "data": base64.b64encode(h.data).decode(),
                    }
                    for h in self.held
                ],
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @staticmethod
    def from_bytes(data: bytes) -> Cursor:
        raw: dict[str, Any] = orjson.loads(data)
        return Cursor(
            raw["agent_id"],
            raw["next_seq"],
            bytes.fromhex(raw["last_hash"]),
            {int(k): bytes.fromhex(v) for k, v in raw["recent"].items()},
            [
                HeldBatch(h["first_seq"], h["offset"], h["since"], base64.b64decode(h["data"]), h["reported"])
                for h in raw["held"]
            ],
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    message: str
    data: bytes  # the original bytes, exactly as received
    offset: int  # source offset in the ingress partition
    agent_id: str = ""


@dataclass(slots=True)
class VerifyResult:
    accepted: list[VerifiedEvent] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)  # agent ids whose cursor changed


class VerifierCore:
    """Pure: no I/O, no clock (``now_ms`` is passed in)."""

    def __init__(
        self,
        registry: KeyRegistry,
        *,
        gap_timeout_ms: int = GAP_TIMEOUT_MS,
        max_held: int = MAX_HELD,
        max_cursor_bytes: int = MAX_CURSOR_BYTES,
        pseudonyms: CorePseudonyms | None = None,
    ) -> None:
        self.registry = registry
        self.pseudonyms = pseudonyms
        self.gap_timeout_ms = gap_timeout_ms
        self.max_held = max_held
        self.max_cursor_bytes = max_cursor_bytes
        self.cursors: dict[str, Cursor] = {}

    def restore(self, cursor_bytes: bytes) -> None:
        cursor = Cursor.from_bytes(cursor_bytes)
        self.cursors[cursor.agent_id] = cursor

    def forget(self, agent_ids: Iterable[str]) -> None:
        for agent in agent_ids:
            self.cursors.pop(agent, None)

    def process(self, data: bytes, offset: int, now_ms: int) -> VerifyResult:
        result = VerifyResult()
        self._process(data, offset, now_ms, result)
        return result

    def expire(self, now_ms: int) -> VerifyResult:
        """Report gaps open longer than the timeout (once each); held batches stay held."""
        result = VerifyResult()
        for cursor in self.cursors.values():
            for held in cursor.held:
                if not held.reported and now_ms - held.held_since_ms >= self.gap_timeout_ms:
                    held.reported = True
                    result.changed.add(cursor.agent_id)
                    result.rejected.append(
                        DeadLetter(
                            "GAP_TIMEOUT",
                            f"agent {cursor.agent_id!r} is missing seq {cursor.next_seq}..{held.first_seq - 1} "
                            f"for {self.gap_timeout_ms} ms; batch from seq {held.first_seq} still held",
                            held.data,
                            held.offset,
                            cursor.agent_id,
                        )
                    )
        return result

    def _process(self, data: bytes, offset: int, now_ms: int, result: VerifyResult) -> None:
        try:
            events = verify_batch(data, self.registry, arrival_ms=now_ms)
        except WireError as exc:
            result.rejected.append(DeadLetter(exc.reason, exc.message, data, offset))
            return
        agent = events[0].agent_id
        problem = self._time_problem(events, now_ms)
        if problem is not None:
            result.rejected.append(DeadLetter(*problem, data, offset, agent))
            return
        cursor = self.cursors.setdefault(agent, Cursor(agent))
        try:
            fresh = self._fresh(cursor, events)
        except SequenceGapError as exc:
            self._hold(cursor, events[0].event.seq, data, offset, now_ms, exc, result)
            return
        except WireError as exc:
            result.rejected.append(DeadLetter(exc.reason, exc.message, data, offset, agent))
            return
        if len(fresh) < len(events):
            replayed = len(events) - len(fresh)
            result.rejected.append(
                DeadLetter(
                    ReplayError.reason,
                    f"{replayed} event(s) from seq {events[0].event.seq} of agent {agent!r} were already accepted",
                    data,
                    offset,
                    agent,
                )
            )
        if fresh:
            self._accept(cursor, fresh, offset, result)
            self._release_held(cursor, now_ms, result)

    def _authorised(self, fresh: list[VerifiedEvent], offset: int, result: VerifyResult) -> list[VerifiedEvent]:
        """The fresh events the signing key's authority covers, keyed nationally; the rest dead-lettered one by one."""
        authority = self.registry.authority(fresh[0].agent_id, fresh[0].key_id)
        allowed: list[VerifiedEvent] = []
        for signed in fresh:
            ve, problem = signed, refusal(signed.event, authority)
            if problem is None and self.pseudonyms is not None and signed.event.patient_key:
                try:  # the site is the key's registered one (refusal checked event.site == authority.site)
                    ve = signed.translated(self.pseudonyms.to_national(authority.site, signed.event.patient_key))
                except InvalidPatientKeyError as exc:
                    problem = (
                        exc.reason,
                        (
                            f"agent {signed.agent_id!r} seq {signed.event.seq}: {exc.message} (site "
                            f"{authority.site!r}); another site's or a national pseudonym is refused"
                        ),
                    )
            if problem is None:
                allowed.append(ve)
            else:
                result.rejected.append(DeadLetter(*problem, signed.event_bytes, offset, signed.agent_id))
        return allowed

    def _time_problem(self, events: list[VerifiedEvent], arrival_ms: int) -> tuple[str, str] | None:
        latest = max(ve.event.recorded_ms for ve in events)
        if latest > arrival_ms + MAX_FUTURE_MS:
            hours = (latest - arrival_ms) / 3_600_000
            return "FUTURE_DATED", f"events recorded {hours:.1f} h after they arrived (bound {MAX_FUTURE_MS} ms)"
        low, high = arrival_ms - MAX_PAST_MS, arrival_ms + MAX_FUTURE_MS
        for ve in events:
            physical, _ = unpack(ve.event.hlc)
            for what, at in (("hlc", physical), ("recorded_ms", ve.event.recorded_ms)):
                if not low <= at <= high:
                    return ClockSkewError.reason, (
                        f"agent {ve.agent_id!r} seq {ve.event.seq}: {what} time {at} is outside "
                        f"[{low}, {high}] around its arrival at {arrival_ms} (bounds {MAX_PAST_MS} ms before, "
                        f"{MAX_FUTURE_MS} ms after); fix the agent's clock"
                    )
        return None

    def _fresh(self, cursor: Cursor, events: list[VerifiedEvent]) -> list[VerifiedEvent]:
        """The events past the cursor, after checking replays, regressions, gaps and the hash chain."""
        fresh: list[VerifiedEvent] = []
        for ve in events:
            seq = ve.event.seq
            if seq < cursor.next_seq:
                known = cursor.recent.get(seq)
                if known is not None and known != ve.event_hash:
                    raise SequenceRegressionError(
                        f"agent {ve.agent_id!r} re-used seq {seq} (accepted up to {cursor.next_seq - 1}) "
                        "with different content"
                    )
                continue
            expected = cursor.next_seq + len(fresh)
            if seq > expected:
                raise SequenceGapError(f"agent {ve.agent_id!r} sent seq {seq}, expected {expected}")
            previous = fresh[-1].event_hash if fresh else cursor.last_hash
            if ve.event.prev_hash != previous:
                raise ChainBreakError(
                    f"agent {ve.agent_id!r} seq {seq}: prev_hash does not match the hash of seq {seq - 1}"
                )
            fresh.append(ve)
        return fresh

    def _accept(self, cursor: Cursor, fresh: list[VerifiedEvent], offset: int, result: VerifyResult) -> None:
        for ve in fresh:
            cursor.recent[ve.event.seq] = ve.event_hash
        cursor.next_seq = fresh[-1].event.seq + 1
        cursor.last_hash = fresh[-1].event_hash
        floor = cursor.next_seq - HASH_WINDOW
        for seq in [s for s in cursor.recent if s < floor]:
            del cursor.recent[seq]
        result.accepted.extend(self._authorised(fresh, offset, result))
        result.changed.add(cursor.agent_id)

    def _hold(
        self,
        cursor: Cursor,
        first_seq: int,
        data: bytes,
        offset: int,
        now_ms: int,
        exc: SequenceGapError,
        result: VerifyResult,
    ) -> None:
        if any(h.first_seq == first_seq for h in cursor.held):
            result.rejected.append(DeadLetter(ReplayError.reason, "batch already held", data, offset, cursor.agent_id))
            return
        if len(cursor.held) >= self.max_held:
            result.rejected.append(DeadLetter(exc.reason, exc.message, data, offset, cursor.agent_id))
            return
        held = HeldBatch(first_seq, offset, now_ms, data)
        cursor.held.append(held)
        size = len(cursor.to_bytes())
        if size > self.max_cursor_bytes:
            cursor.held.remove(held)
            result.rejected.append(
                DeadLetter(
                    "GAP_HOLD_FULL",
                    f"agent {cursor.agent_id!r} batch from seq {first_seq} ({len(data)} bytes) cannot be held while "
                    f"seq {cursor.next_seq} is missing: its cursor record would be {size} bytes, over "
                    f"{self.max_cursor_bytes}; re-drive it once the gap is filled",
                    data,
                    offset,
                    cursor.agent_id,
                )
            )
            return
        cursor.held.sort(key=lambda h: h.first_seq)
        result.changed.add(cursor.agent_id)

    def _release_held(self, cursor: Cursor, now_ms: int, result: VerifyResult) -> None:
        while cursor.held and cursor.held[0].first_seq <= cursor.next_seq:
            held = cursor.held.pop(0)
            result.changed.add(cursor.agent_id)
            self._process(held.data, held.offset, now_ms, result)
