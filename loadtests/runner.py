"""The whole bench: max throughput, ceilings, scaling, latency curve, real agents, decisions, profile."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.infra.manager import InfraConfig, default_cache_dir
from consent_wire.keys import OperatorRoot
from loadtests.ceilings import (
    Ceilings,
    client_config,
    consumer_perf,
    create_scratch_topic,
    passthrough_perf,
    producer_perf,
)
from loadtests.drive import BenchContext, Companion, RunResult, RunSpec, measured_run
from loadtests.latency import LatencySummary
from loadtests.machine import load_average
from loadtests.plan import BenchPlan, Layout
from loadtests.profile import product_functions, top_functions
from loadtests.progress import Progress
from loadtests.security_cost import churn_note, measure_security_cost
from loadtests.stack import BenchStack, RunTopics
from loadtests.twohop import twohop_latency, twohop_perf

__all__ = ["BenchOutcome", "half_load", "run_bench"]

log = logging.getLogger(__name__)

PEER_BATCH = 100  # events per signed batch in the peer comparison (loadtests.core_bench's default)
FELL_BEHIND_FACTOR = 1.5  # a paced run that drains within 1.5x its duration kept up (latency tail included)


@dataclass
class BenchOutcome:
    plan: BenchPlan
    main: RunResult
    ceilings: Ceilings
    scaling: list[RunResult]
    curve: list[RunResult]
    decisions: dict[str, Any]
    profile: dict[str, list[dict[str, Any]]]
    load_before: dict[str, float]
    load_after: dict[str, float]
    seconds: float
    notes: list[str] = field(default_factory=list)
    agents: dict[str, Any] = field(default_factory=dict)
    security_cost: dict[str, Any] = field(default_factory=dict)
    plaintext: RunResult | None = None  # the plaintext comparison run (security cost only)
    peers: dict[str, Any] = field(default_factory=dict)  # stage -> product_eps, peer_eps, ratio (issue 18)
    twohop_latency: LatencySummary | None = None  # the two-hop pass-through at the half-load run's offered rate
    twohop_latency_error: str | None = None


async def _ceilings(ctx: BenchContext, main: RunResult) -> Ceilings:
    """Kafka's tools and the pass-through, over records the size of our events (the main run's events topic)."""
    assert main.topics is not None
    size = max(1, round(main.mean_event_bytes))
    records = ctx.plan.ceiling_records
    scratch = f"bench.ceiling-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    producer: tuple[float, float, float] | None = None
    consumer: tuple[float, float] | None = None
    passthrough: tuple[float, float] | None = None
    twohop: tuple[float, float] | None = None
    cache = default_cache_dir()
    operator = ctx.stack.operator()  # the tools connect as the operator, over the same TLS as the core
    config = client_config(operator, ctx.workdir)
    try:
        await create_scratch_topic(operator, f"{scratch}.perf", ctx.plan.partitions)
        await create_scratch_topic(operator, f"{scratch}.pass", ctx.plan.partitions)
        ctx.progress.step("ceilings", f"Kafka ProducerPerformance: {records} records of {size} bytes")
        producer = await producer_perf(cache, operator, config, f"{scratch}.perf", records, size)
        ctx.progress.step("ceilings", f"Kafka ConsumerPerformance: {records} records")
        consumer = await consumer_perf(cache, operator, config, f"{scratch}.perf", records)
        ctx.progress.step("ceilings", f"aiokafka pass-through of the main run's {main.event_records} event records")
        passthrough = await passthrough_perf(operator, main.topics.events, f"{scratch}.pass", main.event_records)
        await create_scratch_topic(operator, f"{scratch}.mid", ctx.plan.partitions)
        await create_scratch_topic(operator, f"{scratch}.sink", ctx.plan.partitions)
        ctx.progress.step("ceilings", f"two-hop transactional pass-through of {main.event_records} event records")
        twohop = await twohop_perf(
            operator, main.topics.events, f"{scratch}.mid", f"{scratch}.sink", main.event_records
        )
    except (RuntimeError, TimeoutError, OSError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        ctx.progress.step("ceilings", f"failed: {exc}")
    finally:
        scratches = tuple(f"{scratch}.{t}" for t in ("perf", "pass", "mid", "sink"))
        await RunTopics(operator, main.topics, ctx.plan.partitions).delete(scratches)
    return Ceilings(
        size,
        producer[0] if producer else None,
        producer[1] if producer else None,
        producer[2] if producer else None,
        consumer[0] if consumer else None,
        consumer[1] if consumer else None,
        passthrough[0] if passthrough else None,
        round(passthrough[1], 2) if passthrough else None,
        tuple(errors),
        round(twohop[0], 1) if twohop else None,
        round(twohop[1], 2) if twohop else None,
    )


def half_load(curve: list[RunResult]) -> RunResult | None:
    """The paced run nearest to half of max throughput."""
    paced = [r for r in curve if r.extra.get("offered_fraction") is not None]
    return min(paced, key=lambda r: abs(float(r.extra["offered_fraction"]) - 0.5), default=None)


async def _twohop_latency(ctx: BenchContext, main: RunResult, curve: list[RunResult]) -> LatencySummary:
    """The two-hop pass-through's end-to-end latency at the half-load run's offered rate (issue 18)."""
    half = half_load(curve)
    if half is None or not half.spec.rate_eps:
        raise RuntimeError("no paced half-load run to match")
    operator = ctx.stack.operator()
    scratch = f"bench.twohop-latency-{uuid.uuid4().hex[:6]}"
    names = tuple(f"{scratch}.{t}" for t in ("src", "mid", "sink"))
    try:
        for name in names:
            await create_scratch_topic(operator, name, ctx.plan.partitions)
        rate, seconds = half.spec.rate_eps, half.spec.duration_s
        ctx.progress.step("ceilings", f"two-hop pass-through latency at {rate:.0f} records/s for {seconds} s")
        summary = await twohop_latency(
            operator, (names[0], names[1], names[2]), ctx.plan.partitions, half.spec.rate_eps,
            half.spec.duration_s, max(1, round(main.mean_event_bytes)),
        )  # fmt: skip
    finally:
        assert main.topics is not None
        await RunTopics(operator, main.topics, ctx.plan.partitions).delete(names)
    ctx.progress.step("ceilings", f"two-hop latency p99 {summary.p99} ms over {summary.count} records")
    return summary


async def _curve(ctx: BenchContext, max_eps: float, companions: dict[float, Companion]) -> list[RunResult]:
    plan = ctx.plan
    results = []
    for fraction in plan.load_fractions:
        rate = max(100.0, fraction * max_eps)
        spec = RunSpec(
            f"load-{round(fraction * 100)}pct",
            Layout.SPLIT,
            2,
            plan.partitions,
            rate,
            round(rate * plan.paced_seconds),
            plan.paced_seconds,
        )
        result = await measured_run(ctx, spec, companions.get(fraction))
        result.extra["offered_fraction"] = fraction
        results.append(result)
    return results


async def _profile(ctx: BenchContext) -> dict[str, list[dict[str, Any]]]:
    plan = ctx.plan
    spec = RunSpec("profile", Layout.SPLIT, 2, plan.partitions, None, plan.profile_events, profile=True)
    result = await measured_run(ctx, spec)
    ctx.progress.step("profile", f"cProfile run at {result.throughput_eps:.0f} events/s (slowed by profiling)")
    out: dict[str, list[dict[str, Any]]] = {}
    for name, path in result.profiles.items():
        out[f"{name}: own time"] = [row.to_json() for row in top_functions(Path(path))]
        out[f"{name}: product code, cumulative"] = [row.to_json() for row in product_functions(Path(path))]
    return out


def _observations(main: RunResult, scaling: list[RunResult], curve: list[RunResult]) -> list[str]:
    """Plain statements the numbers support, so a reader need not derive them."""
    notes: list[str] = []
    steady = main.extra.get("steady_eps")
    if steady:
        notes.append(f"main run: drained at {main.throughput_eps:.0f} events/s overall, {steady:.0f} events/s in "
                     "steady state; the gap is start-up (first polls, first transactions, pipeline fill).")  # fmt: skip
    # the core fell behind when draining took half as long again as the offered load lasted
    notes.extend(
        f"{r.spec.label}: offered {r.spec.rate_eps:.0f} events/s for {r.spec.duration_s:.0f} s but draining took "
        f"{r.seconds:.1f} s: the core fell behind, so latency there is queueing (real agents, their replicas and "
        "the bridge share the same cores)."
        for r in curve
        if r.spec.rate_eps and r.seconds > FELL_BEHIND_FACTOR * r.spec.duration_s
    )
    best = max(scaling, key=lambda r: r.extra.get("steady_eps") or r.throughput_eps)
    notes.append(f"best steady throughput among the scaling runs: {best.spec.label} "
                 f"({best.extra.get('steady_eps') or best.throughput_eps:.0f} events/s).")  # fmt: skip
    return notes


def _goal_missed(plan: BenchPlan, main: RunResult, ceilings: Ceilings) -> bool:
    goals = plan.goals
    ratio = main.throughput_eps / ceilings.passthrough_eps if ceilings.passthrough_eps else 0.0
    return main.throughput_eps < goals["throughput_eps"] or ratio < goals["ratio_to_passthrough"]


async def _peers(ctx: BenchContext) -> dict[str, Any]:
    """Each stage alone, then its quix-streams peer alone, on the same pre-loaded input (loadtests.core_bench)."""
    from loadtests.core_bench import BenchConfig, peer_ratios
    from loadtests.core_bench import run as core_run

    config = ctx.stack.infra.config
    batches = max(50, ctx.plan.peer_events // PEER_BATCH)
    bench = BenchConfig(
        config.name, config.kafka_port, config.mqtt_port, config.secure, batches, PEER_BATCH, 8, 10_000,
        ctx.plan.partitions, profile=False, repeats=1, peers=True,
    )  # fmt: skip
    ctx.progress.step("peers", f"each stage, then its quix-streams peer, over {batches * PEER_BATCH} events")
    try:
        results, _ = await core_run(bench)
    except (RuntimeError, TimeoutError, OSError) as exc:
        ctx.progress.step("peers", f"failed: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}
    ratios: dict[str, Any] = peer_ratios(results)
    for stage, r in ratios.items():
        ctx.progress.step("peers", f"{stage}: product {r['product_eps']} events/s, peer {r['peer_eps']}: {r['ratio']}")
    return ratios


async def run_bench(
    plan: BenchPlan,
    workdir: Path,
    companions: dict[float, Companion] | None = None,
    decisions: Any = None,
    stack_config: InfraConfig | None = None,
    peers: bool = True,
) -> BenchOutcome:
    """Start (or reuse) the bench stack, run every phase, stop the stack if this call started it."""
    progress = Progress()
    started = time.monotonic()
    load_before = load_average()
    stack = await asyncio.to_thread(BenchStack.up, stack_config)
    progress.step("stack", stack.describe())
    ctx = BenchContext(plan, stack, OperatorRoot.generate(), workdir, progress)
    notes: list[str] = []
    try:
        main = await measured_run(
            ctx, RunSpec("main", Layout.SPLIT, 2, plan.partitions, None, plan.blast_events), keep_topics=True
        )
        # right after the main run, so both see the same machine load
        cost, plaintext = (
            await measure_security_cost(ctx, main) if plan.security_cost else ({"skipped": "--no-security-cost"}, None)
        )
        ceilings = await _ceilings(ctx, main)
        peer_ratios = await _peers(ctx) if peers else {"skipped": "--no-peers"}
        scaling = [main]
        for layout, processes, partitions in plan.scaling:
            spec = RunSpec(
                f"scale-{layout.value}-{processes}p-{partitions}parts",
                layout,
                processes,
                partitions,
                None,
                plan.blast_events,
            )
            scaling.append(await measured_run(ctx, spec))
        curve = await _curve(ctx, main.throughput_eps, companions or {})
        twohop_latency_summary: LatencySummary | None = None
        twohop_latency_error: str | None = None
        try:
            twohop_latency_summary = await _twohop_latency(ctx, main, curve)
        except (RuntimeError, TimeoutError, OSError) as exc:
            twohop_latency_error = f"{type(exc).__name__}: {exc}"
            ctx.progress.step("ceilings", f"two-hop latency failed: {exc}")
        decision_result: dict[str, Any] = (
            await decisions(ctx) if decisions is not None else {"skipped": "no decision bench"}
        )
        profile = await _profile(ctx) if _goal_missed(plan, main, ceilings) else {}
    finally:
        if stack.started_here:
            progress.step("stack", "stopping the bench stack (this run started it)")
        await asyncio.to_thread(stack.down_if_started)
    agents = {r.spec.label: r.extra["real_agents"] for r in curve if "real_agents" in r.extra}
    notes.extend(_observations(main, scaling, curve))
    note = churn_note(cost)
    if note is not None:
        notes.append(note)
    return BenchOutcome(
        plan,
        main,
        ceilings,
        scaling,
        curve,
        decision_result,
        profile,
        load_before,
        load_average(),
        round(time.monotonic() - started, 1),
        notes,
        agents,
        cost,
        plaintext,
        peer_ratios,
        twohop_latency_summary,
        twohop_latency_error,
    )
