"""Stage logics of the verifier, the reconciler and the reports stage: pure cores on :class:`TransactionalStage`."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from prometheus_client import Counter

from broker.deadletter import letter_headers, letter_key, letter_value
from broker.keys_follower import KeysFollower
from broker.reports.aggregates import ReportsCore, counts_of
from broker.stage import Output
from broker.topics import TopicNames
from broker.verifier import Cursor, DeadLetter, VerifierCore
from consent_rules.reconcile import Outcome, Reconciler
from consent_wire.errors import WireError
from consent_wire.model import ShieldingFlag
from consent_wire.signing import batch_signer, encode_verified_events, verified_event_payload

__all__ = ["QUARANTINE_ALERT", "ReconcilerLogic", "ReportsLogic", "VerifierLogic", "dead_letter"]

log = logging.getLogger(__name__)

# Before an unknown agent's batch is dead-lettered, the keys follower reads the keys topic to its end: within this
# bound (the stage waits, every partition with it; a registration normally arrives in milliseconds), else the batch
# is dead-lettered UNKNOWN_KEY as before and broker_verifier_key_checks_total{outcome="timeout"} counts it.
KEYS_CATCH_UP_S = 5.0
# At most one such check (a ListOffsets on the keys topic) per interval, however many unknown agents arrive.
KEYS_CHECK_INTERVAL_S = 0.2
KEY_CHECKS = Counter(
    "broker_verifier_key_checks_total",
    "Keys topic read to its end before dead-lettering an unknown agent's batch",
    ["outcome"],  # caught_up, timeout, spaced (waited for the check interval)
)

# The alert for the safeguarding lead when a shielding SET from a role without authority is quarantined
# (issue 14, rule 10): a record on the dead-letter topic (with the original bytes) under this reason, so
# it is counted in broker_stage_rejects_total{stage="reconciler",reason="SHIELDING_QUARANTINED"}; unlike
# every other dead letter, the event is not dropped: it is held in the state's quarantine register.
QUARANTINE_ALERT = "SHIELDING_QUARANTINED"


def dead_letter(topic: str, source_topic: str, partition: int, letter: DeadLetter, stage: str) -> Output:
    """Value: the original bytes, or a bounded excerpt of an oversized input (:mod:`broker.deadletter`).

    Headers: reason code, bounded message, source topic/partition/offset, stage, agent, SHA-256 and size.
    """
    headers = letter_headers(
        reason=letter.reason,
        message=letter.message,
        source=f"{source_topic}/{partition}/{letter.offset}",
        stage=stage,
        agent_id=letter.agent_id,
        data=letter.data,
    )
    value = letter_value(letter.data)
    return Output(topic, value, letter_key(letter.agent_id), None, headers, reject_reason=letter.reason)


class VerifierLogic:
    """ingress (key agent) -> events (key patient) + deadletter; cursor changelog co-partitioned with ingress.

    A batch naming an agent (or a key of an agent) the key registry does not know is dead-lettered
    (``UNKNOWN_KEY``, ``BAD_SIGNATURE``) only once the keys follower has read the keys topic up to its end offsets
    as of a moment after the batch was fetched (:meth:`prepare`): the bridge forwards a batch only after its own
    follower has read the agent's registration (or rotation), so a key event published a moment before the
    batch can be on the keys topic and not yet in this follower (issue 12: an acknowledged event must not be lost
    to the dead-letter topic).
    """

    name = "verifier"

    def __init__(
        self,
        topics: TopicNames,
        core: VerifierCore,
        keys: KeysFollower | None = None,
        *,
        catch_up_s: float = KEYS_CATCH_UP_S,
        check_interval_s: float = KEYS_CHECK_INTERVAL_S,
    ) -> None:
        self.topics = topics
        self.core = core
        self.keys = keys
        self.catch_up_s = catch_up_s
        self.check_interval_s = check_interval_s
        self.input_topic = topics.ingress
        self.changelog_topic: str | None = topics.chain
        self._agents: dict[int, set[str]] = {}  # partition -> agents whose cursors it holds
        self._last_check = -math.inf  # loop time the last keys check (a ListOffsets) started
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # waits out the check interval

    async def prepare(self, polled: Iterable[Sequence[Any]] = ()) -> None:
        """Apply key events that arrived since the last poll, so a new registration is honoured.

        When a polled batch names an agent or key the registry does not know (a new agent's first batch, or the
        first batch after a rotation), first read the keys topic to its end as of now
        (:meth:`broker.keys_follower.KeysFollower.catch_up`, bounded by ``catch_up_s``): the records were fetched
        before this call, so a key event written before them is then applied. Checks are at least
        ``check_interval_s`` apart (a flood of forged agent ids costs at most one ListOffsets per interval: the
        stage waits out the rest of the interval, it never dead-letters an unchecked batch).
        """
        if self.keys is None:
            return
        await self.keys.poll(timeout_ms=0)
        if not self._unknown_signer(polled):
            return
        loop = asyncio.get_running_loop()
        wait = self._last_check + self.check_interval_s - loop.time()
        if wait > 0:
            KEY_CHECKS.labels("spaced").inc()
            await self.sleep(wait)
        self._last_check = loop.time()
        caught_up = await self.keys.catch_up(self.catch_up_s)
        KEY_CHECKS.labels("caught_up" if caught_up else "timeout").inc()
        if not caught_up:
            log.warning(
                "keys follower not caught up within %.1f s; batches of unknown agents are dead-lettered",
                self.catch_up_s,
            )

    def _unknown_signer(self, polled: Iterable[Sequence[Any]]) -> bool:
        """Whether a polled batch names an agent, or a key of an agent, that the registry does not know.

        The agent id and key-id hint are read from the batch header (:func:`consent_wire.signing.batch_signer`,
        a few microseconds against milliseconds of verification); bytes that start no batch are dead-lettered for
        what they are, without a check.
        """
        registry = self.core.registry
        seen: set[tuple[str, str]] = set()
        for records in polled:
            for record in records:
                try:
                    signer = batch_signer(record.value or b"")
                except WireError:
                    continue
                if signer in seen:
                    continue
                seen.add(signer)
                if not registry.knows(*signer):
                    return True
        return False

    def restore(self, partition: int, key: bytes, value: bytes) -> None:
        self.core.restore(value)
        self._agents.setdefault(partition, set()).add(key.decode())

    def forget(self, partition: int) -> None:
        self.core.forget(self._agents.pop(partition, set()))

    def size(self) -> int:
        return len(self.core.cursors)

    def process(self, partition: int, records: Sequence[Any], now_ms: int) -> list[Output]:
        outputs: list[Output] = []
        changed: set[str] = set()
        events = self.topics.events
        for record in records:
            # ingress uses LogAppendTime: the broker's arrival time, which an agent cannot set
            arrival = record.timestamp if record.timestamp and record.timestamp > 0 else now_ms
            result = self.core.process(record.value or b"", record.offset, arrival)
            # the batch-level fields are encoded once per batch, not once per event (issue 18)
            for ve, data in zip(result.accepted, encode_verified_events(result.accepted), strict=True):
                key = (ve.event.patient_key or f"site:{ve.event.site}").encode()
                # a shielding flag commits at once here as in the reconciler, never after the commit interval:
                # its path through the core waits for no interval at all (issue 18, the shielding fast lane)
                outputs.append(Output(events, data, key, urgent=isinstance(ve.event.payload, ShieldingFlag)))
            outputs.extend(self._letters(partition, result.rejected))
            changed |= result.changed
        outputs.extend(self._cursors(partition, changed))
        return outputs

    def tick(self, now_ms: int) -> dict[int, list[Output]]:
        result = self.core.expire(now_ms)
        by_partition: dict[int, list[Output]] = {}
        for partition, agents in self._agents.items():
            letters = [d for d in result.rejected if d.agent_id in agents]
            if letters:
                by_partition[partition] = [
                    *self._letters(partition, letters),
                    *self._cursors(partition, result.changed & agents),
                ]
        return by_partition

    def _letters(self, partition: int, letters: list[DeadLetter]) -> list[Output]:
        return [dead_letter(self.topics.deadletter, self.input_topic, partition, d, self.name) for d in letters]

    def _cursors(self, partition: int, agents: set[str]) -> list[Output]:
        known = self._agents.setdefault(partition, set())
        known |= agents
        cursors: list[Cursor] = [self.core.cursors[a] for a in sorted(agents) if a in self.core.cursors]
        return [Output(self.topics.chain, c.to_bytes(), c.agent_id.encode(), partition) for c in cursors]


class ReconcilerLogic:
    """events (key patient) -> state + shielding (compacted, co-partitioned) + deadletter."""

    name = "reconciler"

    def __init__(self, topics: TopicNames, core: Reconciler | None = None) -> None:
        self.topics = topics
        self.core = core or Reconciler()
        self.input_topic = topics.events
        self.changelog_topic: str | None = topics.state
        self._keys: dict[int, set[str]] = {}

    async def prepare(self, polled: Iterable[Sequence[Any]] = ()) -> None:
        return None

    def restore(self, partition: int, key: bytes, value: bytes) -> None:
        patient = key.decode()
        self.core.restore(patient, value)
        self._keys.setdefault(partition, set()).add(patient)

    def forget(self, partition: int) -> None:
        self.core.forget(self._keys.pop(partition, set()))

    def size(self) -> int:
        return len(self.core)

    def process(self, partition: int, records: Sequence[Any], now_ms: int) -> list[Output]:
        outputs: list[Output] = []
        touched: dict[str, None] = {}
        shielding: dict[str, bytes] = {}
        for record in records:
            try:
                event = verified_event_payload(record.value or b"")
            except WireError as exc:
                letter = DeadLetter(exc.reason, exc.message, record.value or b"", record.offset)
                outputs.append(dead_letter(self.topics.deadletter, self.input_topic, partition, letter, self.name))
                continue
            result = self.core.process(event, (partition, record.offset))
            if result.outcome is Outcome.APPLIED:
                touched[result.patient_key] = None
                if result.shielding_bytes is not None:
                    shielding[result.patient_key] = result.shielding_bytes
            elif result.outcome is Outcome.QUARANTINED:  # kept in the state and alerted (issue 14, rule 10)
                touched[result.patient_key] = None
                letter = DeadLetter(
                    QUARANTINE_ALERT,
                    f"event {event.event_id} from agent {event.agent_id!r}: {result.reason}; the shielding "
                    "request is held in the patient's quarantine register for the safeguarding lead",
                    record.value or b"",
                    record.offset,
                    event.agent_id,
                )
                outputs.append(dead_letter(self.topics.deadletter, self.input_topic, partition, letter, self.name))
            elif result.outcome is Outcome.REJECTED:
                letter = DeadLetter(
                    result.reason or "REJECTED",
                    f"event {event.event_id} from agent {event.agent_id!r} was not applied",
                    record.value or b"",
                    record.offset,
                    event.agent_id,
                )
                outputs.append(dead_letter(self.topics.deadletter, self.input_topic, partition, letter, self.name))
        self._keys.setdefault(partition, set()).update(touched)
        for key in touched:
            state = self.core.state(key).to_bytes()
            outputs.append(Output(self.topics.state, state, key.encode(), partition))
        for key, value in shielding.items():
            # urgent: the transaction holding a shielding record commits now, not at the commit interval
            outputs.append(Output(self.topics.shielding, value, key.encode(), partition, urgent=True))
        return outputs

    def tick(self, now_ms: int) -> dict[int, list[Output]]:
        return {}


class ReportsLogic:
    """events (key patient) -> reports (compacted running counts, key aggregate) + report-memory (changelog).

    The aggregates behind the objection-rate, breach and disclosure reports (:mod:`broker.reports.aggregates`),
    kept exactly once: the changed aggregates, the touched patients' memories and the input offsets commit in one
    transaction, and a restart rebuilds the running counts from the memories. An event that does not decode is
    the reconciler's to dead-letter (it reads the same records); here it only moves the position.
    """

    name = "reports"

    def __init__(self, topics: TopicNames, core: ReportsCore | None = None) -> None:
        self.topics = topics
        self.core = core or ReportsCore()
        self.input_topic = topics.events
        self.changelog_topic: str | None = topics.report_memory

    async def prepare(self, polled: Iterable[Sequence[Any]] = ()) -> None:
        return None

    def restore(self, partition: int, key: bytes, value: bytes) -> None:
        if value:
            self.core.restore(partition, key.decode(), value)

    def forget(self, partition: int) -> None:
        self.core.forget(partition)

    def size(self) -> int:
        return len(self.core)

    def process(self, partition: int, records: Sequence[Any], now_ms: int) -> list[Output]:
        events = []
        for record in records:
            try:
                event = verified_event_payload(record.value or b"")
            except WireError:
                continue
            if counts_of(event):
                events.append(event)
        if not events:
            return []
        result = self.core.process(partition, events)
        outputs = [Output(self.topics.reports, a.to_bytes(), a.key.to_bytes()) for a in result.aggregates]
        outputs += [
            Output(self.topics.report_memory, value, key.encode(), partition) for key, value in result.memories.items()
        ]
        return outputs

    def tick(self, now_ms: int) -> dict[int, list[Output]]:
        return {}
