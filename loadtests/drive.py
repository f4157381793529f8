"""One measured run: fresh topics, core processes, warm-up, then a blast or a paced load, then the audit."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.topics import TopicNames
from consent_io import kafka
from consent_io.secrets import write_secret
from consent_wire.dsse import public_key_bytes
from consent_wire.keys import OperatorRoot
from loadtests.coreproc import CoreEnv, CoreProcess, cpu_seconds, wait_assigned
from loadtests.latency import LatencySummary
from loadtests.plan import BenchPlan, Layout
from loadtests.probe import ArrivalProbe, audit_topic
from loadtests.progress import Progress
from loadtests.schedule import Send, blast_schedule, paced_schedule
from loadtests.scrape import StageCounters, scrape
from loadtests.stack import BenchStack, RunTopics
from loadtests.synth import SynthFleet, build_fleet

__all__ = ["BenchContext", "Companion", "RunResult", "RunSpec", "measured_run"]

READY_TIMEOUT_S = 90.0  # group joins + changelog restore on 2 busy cores
WARMUP_EVENTS = 300
DRAIN_TIMEOUT_S = 120.0


@dataclass
class BenchContext:
    plan: BenchPlan
    stack: BenchStack
    root: OperatorRoot
    workdir: Path
    progress: Progress

    @property
    def root_hex(self) -> str:
        return public_key_bytes(self.root.public_key).hex()


class Companion(Protocol):
    """Something that runs next to the synthetic load (real edge agents, the decision API client)."""

    extra_stages: tuple[str, ...]

    def registrations(self, root: OperatorRoot) -> list[bytes]: ...

    def principals(self) -> list[tuple[str, str]]:
        """(agent id, site) of each real agent, for the run's Kafka ACLs (after ``registrations``)."""
        ...

    async def start(self, names: TopicNames, core: CoreEnv, probe: ArrivalProbe, stack: BenchStack) -> None: ...

    async def run(self, duration_s: float) -> None: ...

    async def finish(self, timeout_s: float) -> None: ...

    def expected_event_keys(self) -> dict[str, int]: ...

    def summary(self) -> dict[str, Any]: ...

    async def outbox_report(self) -> dict[str, Any]: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RunSpec:
    label: str
    layout: Layout
    processes: int
    partitions: int
    rate_eps: float | None  # None: blast (backlog drained as fast as the core can)
    events: int
    duration_s: float = 0.0
    profile: bool = False


@dataclass
class RunResult:
    spec: RunSpec
    events: int
    seconds: float
    throughput_eps: float
    latency: LatencySummary
    shielding: LatencySummary
    state_outstanding: int
    lost: int
    duplicated: int
    unexpected: int
    mean_event_bytes: float
    event_records: int  # records on the events topic (warm-up included)
    cpu_s: dict[str, float]  # per core process name, plus "kafka" and "bench"
    cpu_us_per_event: dict[str, float]
    profiles: dict[str, str] = field(default_factory=dict)  # process name -> .prof path
    topics: TopicNames | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _stage_sets(spec: RunSpec, extra: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    sets: list[tuple[str, tuple[str, ...]]]
    if spec.layout is Layout.SPLIT:
        sets = [("verifier", ("verifier",)), ("reconciler", ("reconciler",))]
    else:
        sets = [(f"core-{i + 1}", ("verifier", "reconciler")) for i in range(spec.processes)]
    if extra:
        sets.append(("services", extra))
    return sets


async def _send(
    producer: AIOKafkaProducer,
    topic: str,
    fleet: SynthFleet,
    sends: list[Send],
    probe: ArrivalProbe,
    names: TopicNames,
    t0: float,
) -> None:
    futures = []
    for send in sends:
        at = t0 + send.at_s
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        batch = fleet.agents[send.agent].batches[send.batch]
        origin = max(at, time.perf_counter()) if send.held else at
        probe.expect_many(names.state, batch.state_keys, origin)
        probe.expect_many(names.shielding, batch.shielding_keys, origin)
        futures.append(await producer.send(topic, batch.data, key=batch.agent_id.encode()))
    await asyncio.gather(*futures)


def _core_key(workdir: Path) -> tuple[Path, str]:
    """The run's core signing key (hex, 0600), made once per bench, and its public half for the agents."""
    path = workdir / "core-signing.key"
    if not path.exists():
        write_secret(path, os.urandom(32).hex().encode())
    raw = bytes.fromhex(path.read_text().strip())
    return path, Ed25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw().hex()


async def _start_cores(ctx: BenchContext, spec: RunSpec, env: CoreEnv, extra: tuple[str, ...]) -> list[CoreProcess]:
    workdir = ctx.workdir / spec.label
    workdir.mkdir(parents=True, exist_ok=True)
    procs = [CoreProcess(env, stages, workdir, name, profile=spec.profile) for name, stages in _stage_sets(spec, extra)]
    try:
        await asyncio.to_thread(wait_assigned, procs, spec.partitions, READY_TIMEOUT_S)
    except BaseException:
        for p in procs:
            p.stop()
        raise
    return procs


async def _warm_up(
    ctx: BenchContext, producer: AIOKafkaProducer, names: TopicNames, probe: ArrivalProbe, warm: SynthFleet
) -> None:
    await _send(producer, names.ingress, warm, blast_schedule(warm), probe, names, time.perf_counter())
    if not await probe.wait_drained(names.state, READY_TIMEOUT_S):
        raise TimeoutError("warm-up events never reached the state topic")
    # the warm-up's latencies are not part of any result
    for watch in probe.watches.values():
        watch.recorder = type(watch.recorder)()
        watch.arrived = 0
        watch.timeline.clear()


async def _counters(procs: list[CoreProcess]) -> dict[str, StageCounters]:
    """Stage counters summed over processes (several processes run the same stage when combined)."""
    total: dict[str, StageCounters] = {}
    for proc in procs:
        for stage, c in (await scrape(proc.metrics_port)).items():
            total[stage] = total.get(stage, StageCounters()).plus(c)
    return total


def _stage_time(before: dict[str, StageCounters], after: dict[str, StageCounters], wall_s: float) -> dict[str, Any]:
    """Per stage: time inside process + transaction against wall time (the rest is polling and waiting)."""
    out: dict[str, Any] = {}
    for stage, end in after.items():
        d = end.minus(before.get(stage, StageCounters()))
        out[stage] = {"wall_s": round(wall_s, 3), "batch_s": round(d.batch_seconds, 3),
                      "busy_share": round(d.batch_seconds / wall_s, 3) if wall_s > 0 else None,
                      "partition_batches": int(d.batches), "records_in": int(d.records_in),
                      "records_per_batch": round(d.records_in / d.batches, 1) if d.batches else None,
                      "transaction_aborts": int(d.aborts)}  # fmt: skip
    return out


def _cpu(procs: list[CoreProcess], broker_pid: int | None) -> dict[str, float]:
    snap = {p.name: p.cpu() for p in procs}
    snap["kafka"] = cpu_seconds(broker_pid) if broker_pid else 0.0
    snap["bench"] = time.process_time()
    return snap


async def measured_run(
    ctx: BenchContext,
    spec: RunSpec,
    companion: Companion | None = None,
    on_running: Callable[[], Coroutine[Any, Any, None]] | None = None,
    keep_topics: bool = False,
) -> RunResult:
    tag = f"{spec.label}-{uuid.uuid4().hex[:6]}"
    names = TopicNames(f"bench.{tag}")
    operator = ctx.stack.operator()
    topics = RunTopics(operator, names, spec.partitions)
    progress = ctx.progress
    progress.step(spec.label, f"signing {spec.events} events, topics with {spec.partitions} partitions")
    await topics.create()
    fleet = await asyncio.to_thread(build_fleet, ctx.plan, tag, spec.events, time.time_ns() // 1_000_000)
    warm = await asyncio.to_thread(build_fleet, ctx.plan, tag + "w", WARMUP_EVENTS, time.time_ns() // 1_000_000)
    regs = fleet.registrations(ctx.root) + warm.registrations(ctx.root)
    if companion is not None:
        regs += companion.registrations(ctx.root)
    await topics.register(regs)
    app_id = f"bench-{tag}"
    deployment = ctx.stack.deployment
    await deployment.grant(names.prefix, app_id, companion.principals() if companion is not None else ())
    core_key_file, core_public_hex = _core_key(ctx.workdir)
    env = CoreEnv(
        ctx.stack.bootstrap,
        names.prefix,
        app_id,
        ctx.root_hex,
        mqtt_port=ctx.stack.mqtt_port,
        core_signing_key_file=str(core_key_file),
        core_public_key_hex=core_public_hex,
        security=deployment.core_env(),
    )
    extra = companion.extra_stages if companion is not None else ()
    progress.step(
        spec.label, f"starting {spec.layout.value} core x{spec.processes} {'+ ' + ','.join(extra) if extra else ''}"
    )
    ready_started = time.perf_counter()
    procs = await _start_cores(ctx, spec, env, extra)
    ready_s = time.perf_counter() - ready_started
    probe = ArrivalProbe(operator, (names.state, names.shielding))
    producer = kafka.producer(
        operator,
        enable_idempotence=True,
        acks="all",
        linger_ms=0,  # max_request_size: kafka.MAX_REQUEST_BYTES, set by the factory
    )
    try:
        await probe.start()
        await producer.start()
        await _warm_up(ctx, producer, names, probe, warm)
        if companion is not None:
            await companion.start(names, env, probe, ctx.stack)
        sends = (
            blast_schedule(fleet)
            if spec.rate_eps is None
            else paced_schedule(fleet, spec.rate_eps, spec.duration_s, ctx.plan.offline_seconds)
        )
        mode = "blast" if spec.rate_eps is None else f"{spec.rate_eps:.0f} ev/s offered for {spec.duration_s:.0f}s"
        progress.step(spec.label, f"driving {fleet.events} events ({mode})")
        counters_before = await _counters(procs)
        before = _cpu(procs, ctx.stack.broker_pid())
        t0 = time.perf_counter()
        jobs = [asyncio.create_task(_send(producer, names.ingress, fleet, sends, probe, names, t0))]
        if companion is not None:
            jobs.append(asyncio.create_task(companion.run(max(spec.duration_s, 1.0))))
        if on_running is not None:
            jobs.append(asyncio.create_task(on_running()))

        def tick() -> None:
            done = probe.arrived(names.state)
            progress.status(
                f"{done} state records, {probe.waiting(names.state)} outstanding, "
                f"{done / max(1e-9, time.perf_counter() - t0):.0f}/s"
            )

        await asyncio.gather(*jobs)
        drained = await probe.wait_drained(names.state, DRAIN_TIMEOUT_S, tick)
        await probe.wait_drained(names.shielding, 5.0)
        end = probe.watches[names.state].last_arrival if drained else time.perf_counter()
        after = _cpu(procs, ctx.stack.broker_pid())
        stage_time = _stage_time(counters_before, await _counters(procs), end - t0)
        agents: dict[str, Any] = {}
        if companion is not None:
            await companion.finish(30.0)
            agents = {**companion.summary(), **(await companion.outbox_report())}
    finally:
        await producer.stop()
        await probe.stop()
        if companion is not None:
            await companion.stop()
        for p in procs:
            p.stop()
    seconds = max(1e-9, end - t0)
    progress.step(spec.label, f"{fleet.events / seconds:.0f} events/s; auditing the events topic")
    expected = fleet.expected_event_keys()
    extra_keys = [warm.expected_event_keys(), companion.expected_event_keys() if companion is not None else {}]
    for more in extra_keys:
        for key, n in more.items():
            expected[key] = expected.get(key, 0) + n
    audit = await audit_topic(operator, names.events, expected)
    cpu = {k: round(after[k] - before.get(k, 0.0), 3) for k in after}
    result = RunResult(
        spec,
        fleet.events,
        round(seconds, 3),
        round(fleet.events / seconds, 1),
        probe.watches[names.state].recorder.summary(),
        probe.watches[names.shielding].recorder.summary(),
        probe.waiting(names.state),
        audit.lost,
        audit.duplicated,
        audit.unexpected,
        round(audit.mean_value_bytes, 1),
        audit.records,
        cpu,
        {k: round(v * 1e6 / fleet.events, 2) for k, v in cpu.items()},
        {p.name: str(p.profile_path) for p in procs if p.profile_path is not None},
        names,
    )
    result.extra["stage_time"] = stage_time
    # start-up until every partition is held, and the group churn over the whole run (restores per assignment)
    result.extra["cores_ready_s"] = round(ready_s, 1)
    result.extra["group_churn"] = {p.name: p.group_churn() for p in procs}
    steady = probe.watches[names.state].steady_rate()
    # state records mark the stateful share of events; scale to all events for an events/s figure
    share = fleet.events / max(1, sum(len(b.state_keys) for a in fleet.agents for b in a.batches))
    result.extra["steady_eps"] = round(steady * share, 1) if steady else None
    if agents:
        result.extra["real_agents"] = agents
        result.extra["replica_shielding_ms"] = agents.get("shielding_replica_ms")
    if not keep_topics:
        await topics.delete()
    return result
