"""``make bench-faults`` (``python -m loadtests.faults_bench [--quick]``): catch-up time after each kind of fault.

Method (issue 13). A three-broker cluster (replication 3, min ISR 2) of its own, the core as a child process
(``python -m broker run``, verifier + reconciler, local checkpointed state) and real edge agents (in this
process, each with its SQLite outbox, HTTP API and Kafka publisher) taking submissions over HTTP at a steady
rate, each about a patient of its own. An observer follows the events and state topics (read_committed) and
notes when each event id and each patient first appears. Faults, one after the other:

- ``stage_kill``: kill -9 of the core, restarted at once;
- ``broker_kill``: kill -9 of one broker, restarted after a few seconds;
- ``broker_pause``: SIGSTOP of one broker for ~10 s, then SIGCONT;
- ``outage``: every broker killed, ~20 s (quick) of no Kafka at all, then all restarted;
- ``rebalance``: a second core joins the group, then leaves it (SIGTERM): two samples.

The live observer has been seen to skip a few records for good after broker faults; when no awaited submission
became visible for 15 s (then 30, 60 ... s) it re-reads both topics from the start and notes what it had missed
as seen at that moment (late, never early; ``observer_resyncs`` counts these).

Catch-up after a fault = from the restore (the restart, SIGCONT, the join or leave) until every submission
acknowledged (202) before that moment is visible on the events topic and in the state, 0 if it already was.

After an outage the goal (issue 13) is "<= 10 s after Kafka returns, not counting the agents' own backoff", so
``catch_up_s["outage"]`` measures exactly that:

- "Kafka returns" = the first moment every broker answers a metadata request on its own listener and the
  cluster reports itself whole: all three brokers registered, every partition of every topic with a leader
  (polled every 0.25 s from the moment the brokers are restarted; a JVM merely started or a port merely open is
  not enough). The submissions counted are those acknowledged before that moment. (When, besides, every
  partition has min ISR (2) in sync is noted too, ``kafka_healthy_s``: the earlier moment is the clock's start.)
- "not counting the agents' own backoff": a submission its agent had already published before the outage is
  clocked from Kafka's return; one still in its agent's outbox when Kafka went down (acknowledged during the
  outage, or just before it) is clocked from its agent's first successful publish after the outage, if later.

Nothing is hidden: ``outage_total_s`` keeps the whole figure as measured before (from the moment the restarted
brokers' ports were open, every submission acknowledged before it, the agents' backoff included), and
``outage_parts`` splits each outage: ``kafka_ports_open_s`` (restart until the brokers' ports open),
``kafka_returned_s`` (restart until Kafka returns, as above), ``kafka_healthy_s``, ``agents_first_publish_s``
(per agent: Kafka's return until its first successful publish; reconnect + backoff; negative: before it),
``core_catch_up_s`` (the goal figure) split into ``published_before_s`` and ``outboxed_s``, the same goal figure
from the records' own timestamps (``core_catch_up_by_record_timestamps_s``: when the core produced them, not
when the bench's observer read them), clocked from ``kafka_healthy_s`` instead (``core_catch_up_from_healthy_s``,
for reference only), ``core_catch_up_from_each_publish_s`` (each submission clocked from the moment its agent
had published it: the agents' drain of their outboxes excluded too, the core's own part), ``core_first_output_s``
(Kafka's return until the core produced its first output for a submission outboxed during the outage) and
``outage_total_s``.
The ledger at the end (a fresh read of the events topic): ``lost`` = acknowledged event ids missing from it or
from the state, ``duplicated`` = event ids and (agent, seq) pairs present more than once.

Ports: ``--kafka-port``/``--mqtt-port`` or ``CONSENT_BENCH_FAULTS_KAFKA_PORT``/``_MQTT_PORT``; the three brokers
use kafka-port .. kafka-port+5. Writes ``bench/faults.json`` and prints the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from broker.infra import InfraConfig
from broker.keys_admin import publish_key_events
from broker.topics import Topic, TopicNames, create_topics
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_io.logs import quiet_client_retries
from consent_wire.authority import grantable
from consent_wire.dsse import public_key_bytes
from consent_wire.identity import patient_key
from consent_wire.keys import OperatorRoot
from consent_wire.signing import decode_verified_event
from edge_agent.api_auth import generate_token_file
from edge_agent.app import Agent
from edge_agent.config import Settings
from edge_agent.wire import generate_signing_key
from loadtests.coreproc import CoreEnv, CoreProcess, free_port
from loadtests.realfleet import SECRET, nhs_numbers
from loadtests.stack import BenchStack

__all__ = ["FAULTS_KAFKA_PORT", "FAULTS_MQTT_PORT", "main"]

log = logging.getLogger("loadtests.faults")

# The fault bench's own 3-broker stack (ports 28892-28897 and 20883): below Linux's ephemeral range (32768-60999)
# and apart from the tests' (19092.., 11883), the bench's (29792, 21783) and the demo's (29092, 21883) stacks.
FAULTS_KAFKA_PORT = 28892
FAULTS_MQTT_PORT = 20883
PARTITIONS = 4
OBSERVER_SILENT_S = 10.0  # the agents send steadily: this long without a record on either topic is a stalled fetcher
CATCH_UP_TIMEOUT_S = 180.0  # a catch-up longer than this is reported as this (and the goal is missed)
GOALS_S = {"stage_kill": 15.0, "broker_kill": 15.0, "broker_pause": 15.0, "outage": 10.0}
REPO = Path(__file__).resolve().parents[1]
MIN_ISR = 2  # the bench cluster's min.insync.replicas: below it a partition takes no acks=all write
HEALTH_POLL_S = 0.25
RESYNC_AFTER_S = 15.0  # no submission became visible for this long: re-read the topics (Observer.resync)


@dataclass(frozen=True, slots=True)
class Ack:
    at: float
    event_id: str
    patient: str
    agent_id: str
    seq: int


@dataclass
class Observer:
    """First time each event id (events topic) and patient key (state topic) was seen, from one clock."""

    conn: KafkaConnection
    names: TopicNames
    events_seen: dict[str, float] = field(default_factory=dict)
    state_seen: dict[str, float] = field(default_factory=dict)
    # the same on the core's own clock: each first record's timestamp (set when the core produced it), as monotonic
    events_stamped: dict[str, float] = field(default_factory=dict)
    state_stamped: dict[str, float] = field(default_factory=dict)
    _wall_offset: float = field(default_factory=lambda: time.time() - time.monotonic())
    resyncs: int = 0  # fresh re-reads (see resync) and the records they found the live consumer had missed
    resync_missed: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Follow both topics; a consumer that hears nothing for OBSERVER_SILENT_S is replaced (same positions).

        After a full outage aiokafka's fetcher can stay silent for minutes (an offset reset whose ListOffsets
        retries never refresh metadata; a restarted leader's high watermark briefly below the position): the
        observer must not turn that into catch-up time or "lost" events. No offset is ever reset: an
        out-of-range answer re-seeks the position the observer holds and tries again.
        """
        tps = [TopicPartition(t, p) for t in (self.names.events, self.names.state) for p in range(PARTITIONS)]
        positions: dict[TopicPartition, int] = {}
        while not stop.is_set():
            consumer = kafka.consumer(self.conn, auto_offset_reset="none")
            try:
                # bounded: right after an outage a start or a ListOffsets could otherwise hang the observer
                await asyncio.wait_for(self._position(consumer, tps, positions), OBSERVER_SILENT_S * 3)
                # the core's own remedy for a fetcher stuck on a stale leader: refresh metadata when a partition
                # goes silent (otherwise the observer's stall would count as the core's catch-up time)
                watch_stop = asyncio.Event()
                watcher = asyncio.create_task(kafka.watch_leaders(consumer, watch_stop, "observer"))
                try:
                    await self._follow(consumer, positions, stop)
                finally:
                    watch_stop.set()
                    await watcher
            except (KafkaError, TimeoutError) as exc:
                log.warning("observer consumer replaced error=%r", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(KafkaError):
                    await kafka.close_consumer(consumer)

    async def _position(self, consumer: Any, tps: list[TopicPartition], positions: dict[TopicPartition, int]) -> None:
        await consumer.start()
        consumer.assign(tps)
        await kafka.seek_to_start(consumer, [tp for tp in tps if tp not in positions])
        for tp, offset in positions.items():
            consumer.seek(tp, offset)

    async def _follow(self, consumer: Any, positions: dict[TopicPartition, int], stop: asyncio.Event) -> None:
        heard = time.monotonic()
        while not stop.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            except OffsetOutOfRangeError:
                for tp, offset in positions.items():
                    consumer.seek(tp, offset)
                await asyncio.sleep(0.5)
                batches = {}
            now = time.monotonic()
            if any(batches.values()):
                heard = now
            elif now - heard > OBSERVER_SILENT_S:
                log.warning("observer heard nothing for %.0f s: replacing its consumer", now - heard)
                return
            for tp, records in batches.items():
                for r in records:
                    stamped = r.timestamp / 1000 - self._wall_offset
                    if tp.topic == self.names.events:
                        event_id = decode_verified_event(r.value).event.event_id
                        self.events_seen.setdefault(event_id, now)
                        self.events_stamped.setdefault(event_id, stamped)
                    elif r.key is not None:
                        self.state_seen.setdefault(r.key.decode(), now)
                        self.state_stamped.setdefault(r.key.decode(), stamped)
                if records:
                    positions[tp] = records[-1].offset + 1

    async def resync(self) -> None:
        """Re-read both topics from their start (a fresh consumer): records the live consumer missed are noted
        as seen now. The live consumer has been seen to skip a few records for good after broker faults."""
        self.resyncs += 1
        missed = 0
        for topic in (self.names.events, self.names.state):
            try:
                records = await kafka.read_to_end(self.conn, topic)
            except KafkaError as exc:
                log.warning("observer resync of %s failed error=%r", topic, exc)
                continue
            now = time.monotonic()
            for r in records:
                stamped = r.timestamp / 1000 - self._wall_offset
                if topic == self.names.events:
                    key = decode_verified_event(r.value).event.event_id
                    seen, stamps = self.events_seen, self.events_stamped
                elif r.key is not None:
                    key = r.key.decode()
                    seen, stamps = self.state_seen, self.state_stamped
                else:
                    continue
                if key not in seen:
                    missed += 1
                    seen[key] = now
                    stamps.setdefault(key, stamped)
        self.resync_missed += missed
        log.warning("observer resync: %d records the live consumer had not seen", missed)

    def visible(self, ack: Ack) -> float | None:
        seen = (self.events_seen.get(ack.event_id), self.state_seen.get(ack.patient))
        return None if None in seen else max(s for s in seen if s is not None)

    def produced(self, ack: Ack) -> float | None:
        """When the core produced ``ack``'s event and state records (their timestamps), not when they were seen."""
        stamped = (self.events_stamped.get(ack.event_id), self.state_stamped.get(ack.patient))
        return None if None in stamped else max(s for s in stamped if s is not None)


@dataclass
class Fleet:
    """Real edge agents (Kafka transport) driven over HTTP; every 202 is noted as an :class:`Ack`."""

    agents: list[Agent]
    tokens: list[str]
    numbers: list[list[str]]
    rate_per_agent: float
    acks: list[Ack] = field(default_factory=list)
    refused: int = 0

    async def drive(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(self._drive(session, i, stop) for i in range(len(self.agents))))

    async def _drive(self, session: aiohttp.ClientSession, i: int, stop: asyncio.Event) -> None:
        agent, numbers = self.agents[i], self.numbers[i]
        url = f"http://127.0.0.1:{agent.settings.http_port}/v1/events"
        headers = {"Authorization": f"Bearer {self.tokens[i]}"}
        start, k = time.monotonic(), 0
        while not stop.is_set() and k < len(numbers):
            body = {
                "type": "consent_decision",
                "nhs_number": numbers[k],
                "event_id": secrets.token_hex(16),
                "payload": {"directive": "OPTOUT", "purpose": "HRESCH", "data_class": "ALL", "recipient": "*"},
            }
            async with session.post(url, json=body, headers=headers) as resp:
                receipt = await resp.json() if resp.status == 202 else None
            if receipt is None:
                self.refused += 1
            else:
                key = patient_key(SECRET, numbers[k])
                self.acks.append(
                    Ack(time.monotonic(), receipt["event_id"], key, agent.settings.agent_id, receipt["seq"])
                )
            k += 1
            await asyncio.sleep(max(0.0, start + k / self.rate_per_agent - time.monotonic()))

    async def pending(self) -> int:
        return sum([(await a.outbox.stats()).pending for a in self.agents])

    async def published_seqs(self) -> dict[str, int]:
        """Agent -> the highest seq its outbox has had acknowledged end to end (published to Kafka)."""
        return {a.settings.agent_id: (await a.outbox.stats()).acked_seq for a in self.agents}

    async def watch_publishes(self, stop: asyncio.Event, poll_s: float = 0.02) -> dict[str, list[tuple[float, int]]]:
        """Agent -> [(when, events published since this call)] each time its publisher's ``published_total`` grew,
        until ``stop`` (publishers send in seq order: the n-th event published is the n-th oldest outboxed)."""
        base = {a.settings.agent_id: a.publisher.published_total for a in self.agents}
        progress: dict[str, list[tuple[float, int]]] = {agent_id: [] for agent_id in base}
        while not stop.is_set():
            now = time.monotonic()
            for a in self.agents:
                agent_id = a.settings.agent_id
                done = a.publisher.published_total - base[agent_id]
                if done > (progress[agent_id][-1][1] if progress[agent_id] else 0):
                    progress[agent_id].append((now, done))
            await asyncio.sleep(poll_s)
        return progress


async def cluster_state(conn: KafkaConnection, ports: list[int]) -> int:
    """0: some broker does not answer; 1: every broker answers a metadata request on its own listener, all are
    registered and every partition of every topic has a leader ("Kafka returns"); 2: besides, every partition
    has at least :data:`MIN_ISR` replicas in sync (healthy: every acks=all write is taken)."""
    state = 2
    for port in ports:
        admin = kafka.admin(dataclasses.replace(conn, bootstrap=f"127.0.0.1:{port}"), request_timeout_ms=3000)
        try:
            await admin.start()  # bootstrap: a metadata request answered by this broker
            brokers = (await admin.describe_cluster())["brokers"]
            topics = await admin.describe_topics()
        except (KafkaError, OSError, TimeoutError):
            return 0
        finally:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await admin.close()
        if len(brokers) < len(ports):
            return 0
        for topic in topics:
            if topic["error_code"] or not topic["partitions"]:
                return 0
            for p in topic["partitions"]:
                if p["error_code"] not in (0, 9, 19) or p["leader"] < 0:  # 9, 19: replica, ISR short (below)
                    return 0
                if len(p["isr"]) < min(MIN_ISR, len(p["replicas"])):
                    state = 1
    return state


async def wait_cluster(conn: KafkaConnection, ports: list[int], timeout_s: float) -> tuple[float | None, float | None]:
    """When (monotonic) :func:`cluster_state` first reached 1 (Kafka answers) and 2 (healthy), polled every
    HEALTH_POLL_S; None for what did not happen within ``timeout_s``. Each moment is the start of the probe
    round that first saw it (a round takes a while on a loaded machine: the goal's clock must not start late)."""
    deadline = time.monotonic() + timeout_s
    answered: float | None = None
    while time.monotonic() < deadline:
        began = time.monotonic()
        state = await cluster_state(conn, ports)
        if state >= 1 and answered is None:
            answered = began
        if state == 2:
            return answered, began
        await asyncio.sleep(HEALTH_POLL_S)
    return answered, None


@dataclass
class Bench:
    stack: BenchStack
    names: TopicNames
    env: CoreEnv
    workdir: Path
    fleet: Fleet
    observer: Observer
    cores: list[CoreProcess] = field(default_factory=list)
    catch_up: dict[str, list[float]] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    _core_count: int = 0
    instances: dict[str, str] = field(default_factory=dict)  # core name -> its CONSENT_INSTANCE_ID
    outage_total: list[float] = field(default_factory=list)  # the whole figure per outage (module docstring)
    outage_parts: list[dict[str, Any]] = field(default_factory=list)

    def start_core(self, instance: str | None = None) -> CoreProcess:
        """A new core process; ``instance``: the static membership name of one it replaces (default: its own)."""
        self._core_count += 1
        name = f"core-{self._core_count}"
        core = CoreProcess(
            self.env, ("verifier", "reconciler"), self.workdir, name,
            extra_env={"CONSENT_INSTANCE_ID": instance or name},
        )  # fmt: skip
        self.instances[core.name] = instance or name
        self.cores.append(core)
        return core

    def lag(self, acks: list[Ack], clock_from: Callable[[Ack], float]) -> float | None:
        """Seconds until every one of ``acks`` was visible, each clocked from ``clock_from(ack)`` (the max; 0 when
        all already were before); None while some is not visible yet."""
        lags = []
        for a in acks:
            seen = self.observer.visible(a)
            if seen is None:
                return None
            lags.append(seen - clock_from(a))
        return round(max(0.0, *lags), 2) if lags else 0.0

    async def wait_visible(self, acks: list[Ack], clock_from: Callable[[Ack], float]) -> float:
        """:meth:`lag` once every one of ``acks`` is visible; CATCH_UP_TIMEOUT_S when they are not all by then.

        Only the still unseen are checked on each poll (tens of thousands of submissions: the bench must not eat
        the CPU the core needs). When none became visible for RESYNC_AFTER_S, the observer re-reads both topics
        (:meth:`Observer.resync`): what it had missed counts as visible at that moment (late, never early).
        """
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        pending = list(acks)
        progressed = time.monotonic()
        resync_after = RESYNC_AFTER_S  # doubled after each resync: a re-read costs CPU while the core is behind
        while time.monotonic() < deadline:
            still = [a for a in pending if self.observer.visible(a) is None]
            if not still:
                value = self.lag(acks, clock_from)
                return CATCH_UP_TIMEOUT_S if value is None else value
            if len(still) < len(pending):
                progressed = time.monotonic()
            elif time.monotonic() - progressed > resync_after:
                await self.observer.resync()
                progressed = time.monotonic()
                resync_after *= 2
            pending = still
            await asyncio.sleep(0.1)
        return CATCH_UP_TIMEOUT_S

    def first_output_after(self, acks: list[Ack], returned: float) -> float | None:
        """Seconds from ``returned`` until the core produced the first of ``acks`` (submissions that were still in
        their agents' outboxes during the outage, so could not be produced before Kafka was back)."""
        stamps = [p for p in (self.observer.produced(a) for a in acks) if p is not None]
        return round(min(stamps) - returned, 2) if stamps else None

    def produced_lag(self, acks: list[Ack], clock_from: Callable[[Ack], float]) -> float | None:
        """Like :meth:`wait_visible` (once all are visible) but from the records' timestamps: the core's part."""
        stamps = [(a, self.observer.produced(a)) for a in acks]
        lags = [p - clock_from(a) for a, p in stamps if p is not None]
        return round(max(0.0, *lags), 2) if lags else None

    async def catch_up_after(self, kind: str, restored: float) -> float:
        """Seconds from ``restored`` until every submission acknowledged before it is visible (0: it was)."""
        before = [a for a in self.fleet.acks if a.at <= restored]
        value = await self.wait_visible(before, lambda _: restored)
        self.catch_up.setdefault(kind, []).append(value)
        self.timeline.append({"fault": kind, "acked_before": len(before), "catch_up_s": value})
        print(f"  {kind:<13} catch-up {value:6.2f} s  ({len(before)} submissions acknowledged before)", flush=True)
        return value

    async def stage_kill(self) -> None:
        victim = next(c for c in reversed(self.cores) if c.alive())
        os.killpg(victim.pid, signal.SIGKILL)
        victim.proc.wait()
        core = self.start_core(self.instances[victim.name])  # restarted under its name: static membership
        await self.catch_up_after("stage_kill", time.monotonic())
        # how much of it was the new process starting (Python imports: ~1 s idle, far more on a loaded machine)
        self.timeline[-1]["process_start_s"] = core.started_after()

    async def broker_kill(self, down_s: float) -> None:
        await asyncio.to_thread(self.stack.infra.kill_node, 2)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.stack.infra.start_node, 2)
        await self.catch_up_after("broker_kill", time.monotonic())

    async def broker_pause(self, paused_s: float) -> None:
        self.stack.infra.pause_node(3)
        await asyncio.sleep(paused_s)
        self.stack.infra.pause_node(3, paused=False)
        await self.catch_up_after("broker_pause", time.monotonic())

    async def outage(self, down_s: float) -> None:
        """Every broker killed for ``down_s``; see the module docstring for the figures (goal and whole)."""
        for node in (1, 2, 3):
            await asyncio.to_thread(self.stack.infra.kill_node, node)
        published = await self.fleet.published_seqs()  # no publish succeeds from here until Kafka is back
        watch_stop = asyncio.Event()
        watcher = asyncio.create_task(self.fleet.watch_publishes(watch_stop))
        await asyncio.sleep(down_s)
        crashed = [c.name for c in self.cores if c.proc.returncode not in (None, -signal.SIGKILL, 0)]
        self.timeline.append({"fault": "outage", "core_exited_during_outage": crashed})
        ports = [n.port for n in self.stack.infra.config.kafka_nodes()]
        restarted = time.monotonic()
        health = asyncio.create_task(wait_cluster(self.stack.operator(), ports, CATCH_UP_TIMEOUT_S))
        await asyncio.to_thread(self.stack.infra.start_nodes, [1, 2, 3])
        ports_open = time.monotonic()
        whole_before = [a for a in self.fleet.acks if a.at <= ports_open]
        answered, healthy = await health
        returned = answered or ports_open  # (never answered: clock from the open ports; kafka_returned_s says so)
        before = [a for a in self.fleet.acks if a.at <= returned]
        # one wait for every submission counted below (a stalled one costs CATCH_UP_TIMEOUT_S once, not per figure)
        await self.wait_visible([a for a in self.fleet.acks if a.at <= max(ports_open, returned)], lambda _: 0.0)
        # the whole figure, as this bench measured it before: from the open ports, the agents' backoff included
        total = self.lag(whole_before, lambda _: ports_open)
        watch_stop.set()
        progress = await watcher
        first_publish = {agent_id: steps[0][0] for agent_id, steps in progress.items() if steps}

        def published_at(a: Ack) -> float:
            """When ``a``'s agent had published it (the poll that saw its count reached), at the earliest Kafka's
            return; Kafka's return for one published before the outage."""
            if not outboxed(a):
                return returned
            nth = a.seq - published[a.agent_id]
            when = next((t for t, done in progress[a.agent_id] if done >= nth), None)
            return returned if when is None else max(returned, when)

        def outboxed(a: Ack) -> bool:
            return a.seq > published[a.agent_id]

        def clock_from(a: Ack) -> float:
            return max(returned, first_publish.get(a.agent_id, returned)) if outboxed(a) else returned

        early = [a for a in before if not outboxed(a)]
        late = [a for a in before if outboxed(a)]
        value = self.lag(before, clock_from)
        if value is None or total is None:  # not all visible within CATCH_UP_TIMEOUT_S: the goal is missed
            value = total = CATCH_UP_TIMEOUT_S
        parts = {
            "kafka_ports_open_s": round(ports_open - restarted, 2),
            "kafka_returned_s": round(returned - restarted, 2) if answered is not None else None,
            "kafka_healthy_s": round(healthy - restarted, 2) if healthy is not None else None,
            "agents_first_publish_s": {k: round(v - returned, 2) for k, v in sorted(first_publish.items())},
            "core_catch_up_s": value,
            # the same, clocked from the later "healthy" moment instead (every partition at min ISR): for reference
            "core_catch_up_from_healthy_s": self.lag(before, lambda a: max(clock_from(a), healthy or returned)),
            "published_before_s": self.lag(early, lambda _: returned),
            "published_before_count": len(early),
            "outboxed_s": self.lag(late, clock_from),
            "outboxed_count": len(late),
            "outage_total_s": total,
            # the goal figure on the core's clock (record timestamps): above it, the observer's own delay
            "core_catch_up_by_record_timestamps_s": self.produced_lag(before, clock_from),
            # each submission clocked from when its agent had published it (the agents' drain of their outboxes,
            # batch after batch, not counted either): the core's own part, for profiling
            "core_catch_up_from_each_publish_s": self.lag(before, published_at),
            "core_first_output_s": self.first_output_after(late, returned),
        }
        self.catch_up.setdefault("outage", []).append(value)
        self.outage_total.append(total)
        self.outage_parts.append(parts)
        self.timeline.append({"fault": "outage", "acked_before": len(before), "catch_up_s": value, **parts})
        print(
            f"  {'outage':<13} catch-up {value:6.2f} s  ({len(before)} submissions acknowledged before Kafka "
            f"returned {parts['kafka_returned_s']} s after the restart); whole figure {total:.2f} s "
            f"(ports open after {parts['kafka_ports_open_s']} s; agents' first publish after Kafka's return "
            f"{parts['agents_first_publish_s']})",
            flush=True,
        )

    async def rebalance(self, settle_s: float) -> None:
        second = self.start_core()
        await self.catch_up_after("rebalance", time.monotonic())
        await asyncio.sleep(settle_s)
        await asyncio.to_thread(second.stop)
        await self.catch_up_after("rebalance", time.monotonic())


async def _setup(stack: BenchStack, workdir: Path, agents: int, per_agent: int, rate: float) -> Bench:
    prefix = f"faults{int(time.time())}"
    names = TopicNames(prefix)
    app_id = f"{prefix}-core"
    operator = stack.operator()
    partitioned = [t for t in Topic if t not in (Topic.KEYS, Topic.AUDIT)]
    await create_topics(operator, names, replication=3, partitions=dict.fromkeys(partitioned, PARTITIONS))
    root = OperatorRoot.generate()
    ids = [(f"faults-agent-{i}", f"A8{i:04d}") for i in range(agents)]
    await stack.deployment.grant(prefix, app_id, ids)
    registrations, settings, tokens = [], [], []
    for agent_id, site in ids:
        directory = workdir / agent_id
        directory.mkdir()
        public = generate_signing_key(directory / "signing.pem")
        registrations.append(root.register(agent_id, public, 0, site=site, capabilities=grantable(site)))
        token_file = directory / "api-token"
        tokens.append(generate_token_file(token_file).decode())
        security: dict[str, Any] = dict(stack.deployment.agent_settings(agent_id, site))
        settings.append(
            Settings(
                agent_id=agent_id,
                site=site,
                data_dir=directory,
                signing_key_file=directory / "signing.pem",
                transport="kafka",
                kafka_bootstrap=stack.bootstrap,
                ingress_topic=names.ingress,
                state_topic=names.state,
                shielding_topic=names.shielding,
                http_port=free_port(),
                backoff_cap_s=2.0,
                follow_replica=False,
                api_token_file=token_file,
                **security,
            )
        )
    await publish_key_events(operator, names.keys, registrations)
    env = CoreEnv(
        stack.bootstrap, prefix, app_id, public_key_bytes(root.public_key).hex(),
        mqtt_port=stack.mqtt_port,
        security={**stack.deployment.core_env(), "CONSENT_STATE_DIR": str(workdir / "state")},
    )  # fmt: skip
    started = [await Agent.start(s) for s in settings]
    numbers = [nhs_numbers(500_000_000 + i * per_agent * 2, per_agent) for i in range(agents)]
    fleet = Fleet(started, tokens, numbers, rate)
    return Bench(stack, names, env, workdir, fleet, Observer(operator, names))


async def _ledger(bench: Bench) -> dict[str, int]:
    """Fresh reads of the events and state topics (not the observer's, which may have stopped short)."""
    records = await kafka.read_to_end(bench.stack.operator(), bench.names.events)
    state_keys = {r.key.decode() for r in await kafka.read_to_end(bench.stack.operator(), bench.names.state) if r.key}
    ids: Counter[str] = Counter()
    pairs: Counter[tuple[str, int]] = Counter()
    for r in records:
        ve = decode_verified_event(r.value)
        ids[ve.event.event_id] += 1
        pairs[(ve.agent_id, ve.event.seq)] += 1
    acked = bench.fleet.acks
    by_id = {a.event_id for a in acked if a.event_id not in ids}
    by_pair = {a.event_id for a in acked if (a.agent_id, a.seq) not in pairs}
    no_state = {a.event_id for a in acked if a.patient not in state_keys}
    unseen = {a.event_id for a in acked if bench.observer.visible(a) is None}
    return {
        "acknowledged": len(acked),
        "event_records": len(records),
        "lost": len(by_id | by_pair | no_state),
        "lost_by_event_id": len(by_id),
        "lost_by_agent_seq": len(by_pair),
        "lost_from_state": len(no_state),
        "still_in_agent_outboxes": await bench.fleet.pending(),  # acknowledged, not yet published when it ended
        "observer_unseen": len(unseen),  # the live observer's view: above lost = its wait, not loss
        "duplicated": sum(1 for n in ids.values() if n > 1) + sum(1 for n in pairs.values() if n > 1),
        "duplicated_by_event_id": sum(1 for n in ids.values() if n > 1),
        "duplicated_by_agent_seq": sum(1 for n in pairs.values() if n > 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    config = InfraConfig(name="bench-faults", kafka_port=args.kafka_port, mqtt_port=args.mqtt_port, nodes=3)
    began = time.monotonic()
    print(f"bench-faults: 3-broker stack on 127.0.0.1:{args.kafka_port}.. (starting if needed)", flush=True)
    stack = await asyncio.to_thread(BenchStack.up, config)
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        bench = await _setup(stack, Path(tmp), args.agents, per_agent=int(args.rate * 900 * rounds), rate=args.rate)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(bench.observer.run(stop)), asyncio.create_task(bench.fleet.drive(stop))]
        try:
            bench.start_core()
            await asyncio.sleep(15.0)  # warm-up: the core joins, restores and takes the agents' first submissions
            await bench.catch_up_after("start", time.monotonic())
            for _ in range(rounds):
                await bench.stage_kill()
                await bench.broker_kill(down_s=5.0)
                await bench.broker_pause(paused_s=10.0)
                await bench.outage(down_s=20.0 if quick else 30.0)
                await bench.rebalance(settle_s=5.0)
            stop.set()
            await tasks[1]
            drain_deadline = time.monotonic() + 120
            while await bench.fleet.pending() and time.monotonic() < drain_deadline:  # noqa: ASYNC110 - polling
                await asyncio.sleep(0.2)
            await bench.catch_up_after("final", time.monotonic())
            ledger = await _ledger(bench)
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(Exception):
                    await task
            churn = {c.name: c.group_churn() for c in bench.cores}
            exits = {c.name: c.proc.returncode for c in bench.cores}
            for core in bench.cores:
                await asyncio.to_thread(core.stop)
            if args.keep_logs is not None:  # the core's own log lines, for profiling a catch-up
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for core in bench.cores:
                    with contextlib.suppress(OSError):
                        shutil.copy(core.log_path, args.keep_logs / core.log_path.name)
            for agent in bench.fleet.agents:
                with contextlib.suppress(Exception):
                    await agent.stop()
            if not args.keep_stack:
                await asyncio.to_thread(stack.down_if_started)
    catch_up = {k: v for k, v in bench.catch_up.items() if k not in ("start", "final")}
    return {
        "method": (__doc__ or "").split("Ports:")[0].strip(),
        "quick": quick,
        "machine_note": "2 shared cores (other work runs beside the bench): figures move between runs",
        "agents": args.agents,
        "rate_per_agent": args.rate,
        "catch_up_s": catch_up,
        "catch_up_definition": {
            "outage": "from Kafka's return (every broker answers metadata, cluster healthy); a submission still in "
            "its agent's outbox when Kafka went down from that agent's first successful publish after, if later",
            "others": "from the restore (restart, SIGCONT, join or leave)",
        },
        "outage_total_s": bench.outage_total,
        "outage_parts": bench.outage_parts,
        "goals_s": GOALS_S,
        "goals_met": {
            **{k: max(v) <= GOALS_S[k] for k, v in catch_up.items() if k in GOALS_S},
            # "at most one restore per assignment change" (and per recovery after a failed transaction)
            "no_rebalance_storm": all(c.get("excess_restores", 0) == 0 for c in churn.values()),
        },
        "lost": ledger["lost"],
        "duplicated": ledger["duplicated"],
        "ledger": ledger,
        "refused_submissions": bench.fleet.refused,
        "observer_resyncs": {"count": bench.observer.resyncs, "records_missed": bench.observer.resync_missed},
        "core_processes": {"exit_codes": exits, "churn": churn},
        "timeline": bench.timeline,
        "seconds": round(time.monotonic() - began, 1),
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.faults_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round of each fault (make bench-faults QUICK=1)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "faults.json")
    env = os.environ
    parser.add_argument(
        "--kafka-port", type=int, default=int(env.get("CONSENT_BENCH_FAULTS_KAFKA_PORT", FAULTS_KAFKA_PORT))
    )
    parser.add_argument(
        "--mqtt-port", type=int, default=int(env.get("CONSENT_BENCH_FAULTS_MQTT_PORT", FAULTS_MQTT_PORT))
    )
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50.0, help="submissions/s per agent")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the core processes' logs here")
    parser.add_argument("--keep-stack", action="store_true", help="leave a stack this run started running")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"
    )
    quiet_client_retries()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the faults are deliberate: their noise is expected
    args = _parse(argv)
    from consent_io import loop

    result = loop.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("catch_up_s", "goals_met", "lost", "duplicated", "seconds")}, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
