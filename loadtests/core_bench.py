"""Core stage benchmark on the real broker: events per second through the verifier, then the reconciler, alone.

1. Pre-load the ingress topic with ``--batches`` signed batches of ``--batch-size`` events from
   ``--agents`` load agents (round robin, so every agent's chain is in order).
2. Run only the verifier (a :class:`broker.runtime.Core` with ``stages=("verifier",)``) and time from
   its first consumed record until every event is committed to the events topic.
3. Run only the reconciler over that events topic and time until every event is consumed and its
   last transaction committed.
4. For comparison, time each stage's pure logic alone on the same data (no Kafka).

Timing uses the stages' own Prometheus counters (records in, records out after commit).
``--profile`` runs cProfile over each timed phase and prints where the time goes.

    .venv/bin/python -m loadtests.core_bench --stack test --kafka-port 19092 --mqtt-port 11883 --out bench/core.json

On a secure stack (the default) provisioning and the preload act as the operator and each stage runs as its
own principal ``core.<stage>`` with the ACLs the table gives it on the run's prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvloop
from prometheus_client import REGISTRY

from broker.infra.local import LocalDeployment
from broker.keys_admin import publish_key_events
from broker.pipeline import ReconcilerLogic
from broker.runtime import Core
from broker.settings import CoreSettings
from broker.topics import Topic, TopicNames, create_topics
from broker.verifier import VerifierCore
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_wire.dsse import public_key_bytes
from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.signing import encode_verified_event
from loadtests.agents import BASE_MS, LoadAgent, patient_keys
from loadtests.stack import add_stack_arguments, deployment_from_args

__all__ = ["GOAL_EVENTS_PER_S", "BenchConfig", "StageResult", "main", "run"]

GOAL_EVENTS_PER_S = 20_000  # the core brief's throughput target per stage on the reference machine
POLL_S = 0.01  # completion polling interval: small against runs of several seconds
STAGE_TIMEOUT_S = 600.0  # generous: the machine is shared
MAX_RECORDS = 5000  # StageConfig.max_records: logic-only sees the batches the stage would


@dataclass(frozen=True, slots=True)
class BenchConfig:
    stack: str  # the local stack (consent-broker infra) by name and ports
    kafka_port: int
    mqtt_port: int
    secure: bool
    batches: int
    batch_size: int
    agents: int
    patients: int
    partitions: int
    profile: bool
    repeats: int
    peers: bool = False  # also run the quix-streams peer of each stage on the same input (loadtests.peers)

    def stack_args(self) -> argparse.Namespace:
        return argparse.Namespace(
            stack=self.stack, kafka_port=self.kafka_port, mqtt_port=self.mqtt_port, insecure=not self.secure
        )


@dataclass(frozen=True, slots=True)
class StageResult:
    stage: str
    mode: str  # "kafka" (the stage on the broker), "logic" (the pure core, no I/O) or "peer" (quix-streams)
    events: int
    seconds: float
    events_per_s: float
    transaction_aborts: int = 0
    profile_top: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Record:
    value: bytes
    offset: int


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _make_batches(config: BenchConfig, agents: list[LoadAgent]) -> list[bytes]:
    patients = patient_keys(config.patients)
    out: list[bytes] = []
    for i in range(config.batches):
        agent = agents[i % len(agents)]
        out.append(agent.batch(patients, config.batch_size, BASE_MS + i * config.batch_size))
    return out


async def _preload(
    operator: KafkaConnection, topics: TopicNames, agents: list[LoadAgent], batches: list[bytes]
) -> float:
    started = time.perf_counter()
    producer = kafka.producer(operator, enable_idempotence=True, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [
            await producer.send(topics.ingress, b, key=agents[i % len(agents)].agent_id.encode())
            for i, b in enumerate(batches)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def _top(profiler: cProfile.Profile, limit: int = 15) -> tuple[str, ...]:
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(limit)
    lines = [ln.strip() for ln in buffer.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("ncalls"))
    return tuple(lines[start : start + limit + 1])


async def _timed_stage(settings: CoreSettings, name: str, events: int, profile: bool) -> StageResult:
    core = Core(settings)
    await core.start()
    stage = core.stages[name]
    profiler = cProfile.Profile() if profile else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STAGE_TIMEOUT_S
    first: float | None = None
    aborts_before = _sample("broker_stage_transaction_aborts_total", stage=name)
    try:
        if profiler is not None:
            profiler.enable()
        while True:
            consumed = _sample("broker_stage_records_in_total", stage=name)
            if first is None and consumed > 0:
                first = time.perf_counter() - POLL_S / 2  # the first record arrived within the last poll
            if _done(name, settings.topic_prefix, events, consumed) and not stage._lock.locked() and not stage.pending:
                break
            if loop.time() > deadline:
                raise TimeoutError(f"stage {name} did not finish {events} events in {STAGE_TIMEOUT_S} s")
            await asyncio.sleep(POLL_S)
        elapsed = time.perf_counter() - (first or time.perf_counter())
    finally:
        if profiler is not None:
            profiler.disable()
        await core.stop()
    aborts = int(_sample("broker_stage_transaction_aborts_total", stage=name) - aborts_before)
    top = _top(profiler) if profiler is not None else ()
    return StageResult(name, "kafka", events, round(elapsed, 3), round(events / elapsed), aborts, top)


def _done(name: str, prefix: str, events: int, consumed: float) -> bool:
    if name == "verifier":  # counted after each commit: every event is in the events topic
        return _sample("broker_stage_records_out_total", stage=name, topic=TopicNames(prefix).events) >= events
    return consumed >= events  # plus the stage lock free and no open transaction: the last one has committed


def _logic_only(batches: list[bytes], registry: KeyRegistry, repeats: int) -> list[StageResult]:
    """The pure cores alone (best of ``repeats``): what the stages would reach with free I/O."""
    verify_s = reconcile_s = float("inf")
    encoded: list[bytes] = []
    for _ in range(repeats):
        verifier = VerifierCore(registry)
        started = time.perf_counter()
        verified = [ve for i, b in enumerate(batches) for ve in verifier.process(b, i, BASE_MS).accepted]
        encoded = [encode_verified_event(ve) for ve in verified]
        verify_s = min(verify_s, time.perf_counter() - started)
        logic = ReconcilerLogic(TopicNames("bench"))
        records = [_Record(v, i) for i, v in enumerate(encoded)]
        started = time.perf_counter()
        for i in range(0, len(records), MAX_RECORDS):
            logic.process(0, records[i : i + MAX_RECORDS], BASE_MS)
        reconcile_s = min(reconcile_s, time.perf_counter() - started)
    n = len(encoded)
    return [
        StageResult("verifier", "logic", n, round(verify_s, 3), round(n / verify_s)),
        StageResult("reconciler", "logic", n, round(reconcile_s, 3), round(n / reconcile_s)),
    ]


async def run(config: BenchConfig, logic_only: bool = False) -> tuple[list[StageResult], float]:
    """Kafka phases (unless ``logic_only``), then the pure cores on the same batches."""
    deployment = deployment_from_args(config.stack_args())
    root = OperatorRoot.generate()
    agents = [LoadAgent.create(i) for i in range(config.agents)]
    batches = _make_batches(config, agents)
    results: list[StageResult] = []
    preload_s = 0.0
    if not logic_only:
        topics = TopicNames(f"bench{uuid.uuid4().hex[:8]}")
        partitioned = [t for t in Topic if t not in (Topic.KEYS, Topic.AUDIT)]
        operator = deployment.operator()
        await create_topics(operator, topics, partitions=dict.fromkeys(partitioned, config.partitions))
        await deployment.grant(topics.prefix, f"{topics.prefix}-core")
        await publish_key_events(operator, topics.keys, [a.register(root) for a in agents])
        preload_s = await _preload(operator, topics, agents, batches)
        events = config.batches * config.batch_size
        for stage in ("verifier", "reconciler"):  # one after the other: each stage alone on the machine
            settings = _settings(deployment, topics, root, stage)
            results.append(await _timed_stage(settings, stage, events, config.profile))
        if config.peers:
            results.extend(await _peers(operator, topics, root, config))
    registry = KeyRegistry(root.public_key)
    for a in agents:
        registry.apply(a.register(root))
    results.extend(_logic_only(batches, registry, config.repeats))
    return results, preload_s


async def _peers(
    operator: KafkaConnection, topics: TopicNames, root: OperatorRoot, config: BenchConfig
) -> list[StageResult]:
    """The quix-streams peer of each stage on the same input topics, alone on the machine, one after the other."""
    from loadtests.ceilings import create_scratch_topic
    from loadtests.peers import peer_perf

    out: list[StageResult] = []
    events = config.batches * config.batch_size
    plan = (
        ("verifier", topics.ingress, f"{topics.prefix}.peer-events", config.batches),
        ("reconciler", topics.events, f"{topics.prefix}.peer-state", events),
    )
    for stage, source, sink, records in plan:
        await create_scratch_topic(operator, sink, config.partitions)
        r = await peer_perf(
            operator, stage, source, sink, records, topics.keys, public_key_bytes(root.public_key).hex()
        )
        out.append(StageResult(stage, "peer", events, float(r["seconds"]), round(float(r["events_per_s"]))))
    return out


def peer_ratios(results: Sequence[StageResult]) -> dict[str, dict[str, float | None]]:
    """Per stage: the product's events/s, the peer's, and product / peer."""
    out: dict[str, dict[str, float | None]] = {}
    for stage in ("verifier", "reconciler"):
        product = next((r.events_per_s for r in results if r.stage == stage and r.mode == "kafka"), None)
        peer = next((r.events_per_s for r in results if r.stage == stage and r.mode == "peer"), None)
        ratio = round(product / peer, 3) if product is not None and peer else None
        out[stage] = {"product_eps": product, "peer_eps": peer, "ratio": ratio}
    return out


def _settings(deployment: LocalDeployment, topics: TopicNames, root: OperatorRoot, stage: str) -> CoreSettings:
    security: dict[str, Any] = deployment.core_settings()
    return CoreSettings.load(
        None,
        **security,
        topic_prefix=topics.prefix,
        app_id=f"{topics.prefix}-core",
        root_public_key_hex=public_key_bytes(root.public_key).hex(),
        stages=stage,
    )


def _report(config: BenchConfig, results: Sequence[StageResult], preload_s: float) -> dict[str, Any]:
    kafka = {r.stage: r.events_per_s for r in results if r.mode == "kafka"}
    return {
        "benchmark": "core",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "config": {k: v for k, v in asdict(config).items() if k != "profile"},
        "preload_seconds": round(preload_s, 3),
        "results": [{k: v for k, v in asdict(r).items() if k != "profile_top"} for r in results],
        "peers": peer_ratios(results),
        "goal": {
            "events_per_s_per_stage": GOAL_EVENTS_PER_S,
            "measured": kafka,
            "met": all(v >= GOAL_EVENTS_PER_S for v in kafka.values()),
        },
    }


def _table(results: Sequence[StageResult]) -> str:
    lines = [f"{'stage':<11} {'mode':<6} {'events':>8} {'seconds':>8} {'events/s':>9} {'aborts':>6}"]
    lines.extend(
        f"{r.stage:<11} {r.mode:<6} {r.events:>8} {r.seconds:>8.2f} {r.events_per_s:>9} {r.transaction_aborts:>6}"
        for r in results
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.core_bench", description=(__doc__ or "").splitlines()[0])
    add_stack_arguments(parser)
    parser.add_argument("--batches", type=int, default=1000, help="signed batches pre-loaded into ingress")
    parser.add_argument("--batch-size", type=int, default=100, help="events per signed batch")
    parser.add_argument("--agents", type=int, default=8, help="load agents, round robin")
    parser.add_argument("--patients", type=int, default=10_000, help="distinct patient keys")
    parser.add_argument("--partitions", type=int, default=6, help="partitions per topic (the registry's default)")
    parser.add_argument("--profile", action="store_true", help="cProfile each timed phase and print the top")
    parser.add_argument("--repeats", type=int, default=3, help="logic-only runs; the best is kept")
    parser.add_argument("--logic-only", action="store_true", help="skip Kafka: time the pure cores only")
    parser.add_argument("--peers", action="store_true", help="also run the quix-streams peers (pip install .[bench])")
    parser.add_argument("--out", type=Path, default=Path("bench/core.json"), help="JSON results file")
    args = parser.parse_args(argv)
    config = BenchConfig(
        args.stack,
        args.kafka_port,
        args.mqtt_port,
        not args.insecure,
        args.batches,
        args.batch_size,
        args.agents,
        args.patients,
        args.partitions,
        args.profile,
        args.repeats,
        args.peers,
    )
    results, preload_s = uvloop.run(run(config, args.logic_only))
    if not args.logic_only:
        print(f"pre-loaded {config.batches} batches x {config.batch_size} events in {preload_s:.2f} s")
    print(_table(results))
    for r in results:
        if r.profile_top:
            print(f"\nprofile of {r.stage} (top by own time):")
            print("\n".join(r.profile_top))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_report(config, results, preload_s), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
