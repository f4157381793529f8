"""What runs next to the synthetic load: real edge agents per paced run, and the decision API phase."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from broker.settings import STAGES
from broker.topics import TopicNames
from loadtests.drive import BenchContext, Companion
from loadtests.plan import BenchPlan
from loadtests.realfleet import RealFleet
from loadtests.stack import RunTopics

__all__ = ["make_companions", "make_decisions"]

DECISION_PATIENTS = 1000  # patients preloaded into the state topic for the decision phase


def make_companions(plan: BenchPlan, workdir: Path) -> dict[float, Companion]:
    """Real agents ride along the half-load run (latency from acknowledged submission) and the full-load
    run (shielding to subscribers and replicas under full load)."""
    with_bridge = "bridge" in STAGES
    fractions = {f for f in plan.load_fractions if f in (0.5, max(plan.load_fractions))}
    out: dict[float, Companion] = {}
    for fraction in sorted(fractions):
        label = f"{round(fraction * 100)}"
        directory = workdir / f"agents-{label}"
        directory.mkdir(parents=True, exist_ok=True)
        out[fraction] = RealFleet(plan, directory, label, with_bridge)
    return out


def make_decisions(plan: BenchPlan, workdir: Path) -> Callable[[BenchContext], Awaitable[dict[str, Any]]]:
    async def unavailable(ctx: BenchContext) -> dict[str, Any]:
        return {"per_s": None, "p99_ms": None, "skipped": "the core has no stage 'api'"}

    if "api" not in STAGES:
        return unavailable

    async def run(ctx: BenchContext) -> dict[str, Any]:
        from loadtests import decision_bench  # aiohttp and orjson only when the phase runs

        ctx.progress.step("decisions", f"{plan.decision_requests} decisions, {plan.decision_concurrency} concurrent")
        args = argparse.Namespace(
            requests=plan.decision_requests, concurrency=plan.decision_concurrency, patients=DECISION_PATIENTS
        )
        try:
            result: dict[str, Any] = await decision_bench.run(args, ctx.stack.deployment)
        except Exception as exc:  # noqa: BLE001 - the phase reports any failure instead of sinking the whole bench
            ctx.progress.step("decisions", f"failed: {exc!r}")
            return {"per_s": None, "p99_ms": None, "error": f"{type(exc).__name__}: {exc}"}
        prefix = result.get("topic_prefix")
        if isinstance(prefix, str):
            await RunTopics(ctx.stack.operator(), TopicNames(prefix), 0).delete()
        latency = result.get("latency_ms", {})
        ctx.progress.step("decisions", f"{result.get('decisions_per_s')} decisions/s, p99 {latency.get('p99')} ms")
        return {
            "per_s": result.get("decisions_per_s"),
            "p99_ms": latency.get("p99"),
            "p50_ms": latency.get("p50"),
            "source": "loadtests.decision_bench",
            **result,
        }

    return run
