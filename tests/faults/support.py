"""Fault-test tooling: steady signed traffic, the core as a killable subprocess, and the end-state check.

The check is the acceptance of DESIGN.md section 5: the state topic (read_committed) equals a
reference replay of every acknowledged event, ignoring source offsets; no event is applied twice
(state versions sum to the number of distinct events) and the events topic holds each
(agent, seq) and each event id exactly once (issue 13's ledger: nothing lost, nothing doubled).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from broker.topics import TopicNames
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_rules.state import PatientState, replay
from consent_wire.authority import is_gp_practice
from consent_wire.avro_codec import decode_event
from consent_wire.codes import ConsentDirective, ObjectionAction, ObjectionKind, PurposeOfUse
from consent_wire.model import Event
from consent_wire.signing import decode_verified_event
from tests.factories import BASE_MS, SimAgent, as_the_core_keys_it, consent, objection, patient

__all__ = [
    "CoreProcess",
    "Outcome",
    "Traffic",
    "check_against_replay",
    "high_water",
    "wait_open_transaction",
    "wait_progress",
]

log = logging.getLogger(__name__)

PURPOSES = (PurposeOfUse.TREAT, PurposeOfUse.HRESCH, PurposeOfUse.HOPERAT)
KINDS = tuple(ObjectionKind)
NON_GP_KINDS = tuple(k for k in ObjectionKind if k is not ObjectionKind.TYPE1)
ISOLATIONS = ("read_uncommitted", "read_committed")  # end offsets: high water, last stable offset
SEND_TIMEOUT_S = 30.0  # a send unanswered this long (its producer's sender is dead) is re-sent by a new producer


@dataclass
class Traffic:
    """Several agents each sending chained signed batches; a failed send is re-sent until acknowledged."""

    conn: KafkaConnection
    topic: str
    agents: list[SimAgent]
    patients: int = 40
    batch_size: int = 20
    pause_s: float = 0.05
    seed: int = 7
    acked: list[bytes] = field(default_factory=list)  # event bytes of acknowledged batches
    _producer: AIOKafkaProducer = field(init=False, repr=False)
    batches: int = 0
    send_failures: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        rng = random.Random(self.seed)
        self._producer = await self._new_producer()
        try:
            clock = BASE_MS
            while not stop.is_set():
                for agent in self.agents:
                    clock += rng.randrange(1, 50)
                    events = [self._event(agent, rng, clock + i) for i in range(self.batch_size)]
                    await self._deliver(agent, events)
                await asyncio.sleep(self.pause_s)
        finally:
            await kafka.close_producer(self._producer)

    async def _new_producer(self) -> AIOKafkaProducer:
        """A started producer; Kafka unreachable is waited out (a full outage)."""
        while True:
            producer = kafka.producer(self.conn, enable_idempotence=True, acks="all", request_timeout_ms=15_000)
            try:
                await producer.start()
            except KafkaError as exc:
                log.info("producer start failed, retrying error=%r", exc)
                await kafka.close_producer(producer, timeout_s=1.0)
                await asyncio.sleep(0.5)
            else:
                return producer

    def _event(self, agent: SimAgent, rng: random.Random, at_ms: int) -> bytes:
        key = patient(rng.randrange(self.patients))
        if rng.random() < 0.7:
            return agent.event(key, consent(rng.choice(list(ConsentDirective)), rng.choice(PURPOSES)), at_ms)
        kinds = KINDS if is_gp_practice(agent.site) else NON_GP_KINDS  # a type 1 opt-out is a GP practice's only
        return agent.event(key, objection(rng.choice(kinds), rng.choice(list(ObjectionAction))), at_ms)

    async def _deliver(self, agent: SimAgent, events: list[bytes]) -> None:
        """Send until acknowledged. A failed or unanswered send gets a new producer: after a full outage an
        idempotent producer's sender can die (e.g. OutOfOrderSequenceNumber) and leave every later send
        pending forever. A re-sent batch that had landed is dead-lettered REPLAY by the verifier."""
        batch = agent.batch(events)
        while True:
            try:
                sent = await self._producer.send(self.topic, batch, key=agent.agent_id.encode())
                await asyncio.wait_for(sent, SEND_TIMEOUT_S)
            except (KafkaError, TimeoutError) as exc:
                self.send_failures += 1
                log.info("send failed, re-sending the same batch with a new producer error=%r", exc)
                await kafka.close_producer(self._producer, timeout_s=1.0)
                await asyncio.sleep(0.5)
                self._producer = await self._new_producer()
                continue
            self.acked.extend(events)
            self.batches += 1
            return


class CoreProcess:
    """``python -m broker run`` in its own session, so SIGKILL takes the whole process group."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "broker", "-v", "run"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.kill()


async def high_water(conn: KafkaConnection, topic: str) -> int:
    """Sum of the partitions' end offsets (read_uncommitted: grows as soon as a stage produces)."""
    consumer = kafka.consumer(conn, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        partitions = await kafka.partitions_for(consumer, topic)
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def wait_progress(conn: KafkaConnection, topic: str, more: int, timeout_s: float = 120) -> None:
    """Wait until ``topic`` has grown by ``more`` records: the core is busy, so a kill lands mid-stream."""
    start = await high_water(conn, topic)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while await high_water(conn, topic) < start + more:
        assert loop.time() < deadline, f"no progress on {topic} within {timeout_s} s"
        await asyncio.sleep(0.2)


async def wait_open_transaction(conn: KafkaConnection, topic: str, timeout_s: float = 30) -> bool:
    """Wait until ``topic`` holds records of a transaction not yet committed (high water > last stable offset).

    Killing right then makes the restart abort a transaction with records in it. False on timeout.
    """
    consumers = [kafka.consumer(conn, isolation_level=i) for i in ISOLATIONS]
    for c in consumers:
        await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await kafka.partitions_for(consumers[0], topic))]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            high, stable = [await c.end_offsets(tps) for c in consumers]
            if any(high[tp] > stable[tp] for tp in tps):
                return True
            await asyncio.sleep(0.002)
        return False
    finally:
        for c in consumers:
            await c.stop()


async def read_all(conn: KafkaConnection, topic: str, isolation: str = "read_committed") -> list:  # type: ignore[type-arg]
    """Every record of ``topic`` up to its end now (committed ones only by default)."""
    return await kafka.read_to_end(conn, topic, isolation_level=isolation)


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: int  # distinct events acknowledged by the producer
    in_state: int  # sum of PatientState.version over the latest state records
    patients: int
    mismatched: int  # patients whose state differs from the reference replay
    event_records: int  # records in the events topic (read_committed)
    duplicates: int  # (agent, seq) pairs appearing more than once there
    missing: int  # acknowledged (agent, seq) pairs absent from it
    duplicate_ids: int  # event ids appearing more than once there
    missing_ids: int  # acknowledged event ids absent from it
    aborted_records: int  # events + state records of transactions that never committed (kills mid-batch)
    dead_letters: dict[str, int]


def _essence(state: PatientState) -> object:
    consents = {k: replace(r, source=None) for k, r in state.consents.items()}
    objections = {k: replace(r, source=None) for k, r in state.objections.items()}
    shielding = replace(state.shielding, source=None) if state.shielding else None
    return (consents, objections, shielding, state.applied, state.version)


async def _latest_states(conn: KafkaConnection, topic: str) -> dict[str, PatientState]:
    latest: dict[bytes, bytes] = {r.key: r.value for r in await read_all(conn, topic)}
    return {k.decode(): PatientState.from_bytes(v) for k, v in latest.items()}


async def check_against_replay(
    conn: KafkaConnection, topics: TopicNames, acked: list[bytes], timeout_s: float = 180
) -> Outcome:
    """Wait until the state holds every acknowledged event (or time out), then compare everything."""
    events: list[Event] = [as_the_core_keys_it(decode_event(e)) for e in acked]  # the core keys by national pseudonym
    distinct = len({e.event_id for e in events})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    states = await _latest_states(conn, topics.state)
    while sum(s.version for s in states.values()) < distinct and loop.time() < deadline:
        await asyncio.sleep(1.0)
        states = await _latest_states(conn, topics.state)
    by_patient: dict[str, list[Event]] = {}
    for e in events:
        by_patient.setdefault(e.patient_key, []).append(e)
    mismatched = sum(
        1
        for key in set(by_patient) | set(states)
        if key not in states or _essence(states[key]) != _essence(replay(key, by_patient.get(key, [])))
    )
    pairs: Counter[tuple[str, int]] = Counter()
    ids: Counter[str] = Counter()
    records = await read_all(conn, topics.events)
    for r in records:
        ve = decode_verified_event(r.value)
        pairs[(ve.agent_id, ve.event.seq)] += 1
        ids[ve.event.event_id] += 1
    aborted = 0
    for topic, committed in ((topics.events, len(records)), (topics.state, None)):
        if committed is None:
            committed = len(await read_all(conn, topic))
        aborted += len(await read_all(conn, topic, isolation="read_uncommitted")) - committed
    letters = Counter(dict(r.headers)["reason"].decode() for r in await read_all(conn, topics.deadletter))
    return Outcome(
        sent=distinct,
        in_state=sum(s.version for s in states.values()),
        patients=len(states),
        mismatched=mismatched,
        event_records=len(records),
        duplicates=sum(1 for n in pairs.values() if n > 1),
        missing=len({(e.agent_id, e.seq) for e in events} - set(pairs)),
        duplicate_ids=sum(1 for n in ids.values() if n > 1),
        missing_ids=len({e.event_id for e in events} - set(ids)),
        aborted_records=aborted,
        dead_letters=dict(letters),
    )
