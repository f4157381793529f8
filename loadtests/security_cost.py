"""The cost of security: the main blast run on the secure stack against the same run on a plaintext stack.

The plaintext stack (``bench-plain``: no TLS, no authentication, no ACLs) exists only for this comparison;
it is started for the one run and stopped again (if this bench started it), and labelled plaintext wherever
its number appears. Both runs drain the same backlog with the same layout; the ratio is TLS / plaintext.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from broker.infra import InfraError
from loadtests.drive import BenchContext, RunResult, measured_run
from loadtests.stack import BenchStack, plaintext_infra_config

__all__ = ["churn_note", "measure_security_cost", "security_cost"]


def security_cost(tls: RunResult, plaintext: RunResult) -> dict[str, Any]:
    """Both throughputs and TLS / plaintext (1.0: security costs nothing; 0.8: 20% fewer events/s)."""
    tls_eps, plain_eps = tls.throughput_eps, plaintext.throughput_eps
    tls_steady, plain_steady = tls.extra.get("steady_eps"), plaintext.extra.get("steady_eps")
    return {
        "tls_events_per_s": tls_eps,
        "plaintext_events_per_s": plain_eps,
        "ratio": round(tls_eps / plain_eps, 3) if plain_eps else None,
        "tls_steady_events_per_s": tls_steady,
        "plaintext_steady_events_per_s": plain_steady,
        "steady_ratio": round(tls_steady / plain_steady, 3) if tls_steady and plain_steady else None,
        "tls_cpu_us_per_event": tls.cpu_us_per_event,
        "plaintext_cpu_us_per_event": plaintext.cpu_us_per_event,
        "tls_cores_ready_s": tls.extra.get("cores_ready_s"),
        "plaintext_cores_ready_s": plaintext.extra.get("cores_ready_s"),
        "tls_group_churn": tls.extra.get("group_churn"),
        "plaintext_group_churn": plaintext.extra.get("group_churn"),
        "runs": {"tls": tls.spec.label, "plaintext": plaintext.spec.label},
        "lost": plaintext.lost + plaintext.state_outstanding,
        "duplicated": plaintext.duplicated,
        "method": (
            f"the main blast run ({tls.events} events, {tls.spec.layout.value} layout, {tls.spec.partitions} "
            "partitions) on the secure stack (mutual TLS on every Kafka client, deny-by-default ACLs), repeated "
            "on a plaintext stack started for this comparison only; same machine, same run"
        ),
    }


def churn_note(cost: dict[str, Any]) -> str | None:
    """A plain statement when the secure run's core rejoined its groups more often than the plaintext run's."""

    def rejoins(churn: Any) -> int:
        return sum(int(c.get("rejoins", 0)) for c in churn.values()) if isinstance(churn, dict) else 0

    tls, plain = rejoins(cost.get("tls_group_churn")), rejoins(cost.get("plaintext_group_churn"))
    if tls <= plain:
        return None
    return (
        f"security cost: the secure run's core rejoined its consumer groups {tls} times (plaintext: {plain}) and "
        f"was ready after {cost.get('tls_cores_ready_s')} s (plaintext: {cost.get('plaintext_cores_ready_s')} s); "
        "each rejoin restores every partition again, so the ratio measures that churn more than encryption."
    )


async def measure_security_cost(ctx: BenchContext, tls: RunResult) -> tuple[dict[str, Any], RunResult | None]:
    """Start the plaintext stack, repeat ``tls``'s run spec on it, stop the stack again if started here."""
    progress = ctx.progress
    config = plaintext_infra_config()
    progress.step("security", f"plaintext stack for the comparison only: 127.0.0.1:{config.kafka_port}")
    try:
        plain = await asyncio.to_thread(BenchStack.up, config)
    except InfraError as exc:
        progress.step("security", f"plaintext stack failed: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}, None
    try:
        workdir = ctx.workdir / "plaintext"
        workdir.mkdir(parents=True, exist_ok=True)
        plain_ctx = BenchContext(ctx.plan, plain, ctx.root, workdir, progress)
        spec = dataclasses.replace(tls.spec, label=f"{tls.spec.label}-plaintext")
        result = await measured_run(plain_ctx, spec)
    finally:
        if plain.started_here:
            progress.step("security", "stopping the plaintext stack")
        await asyncio.to_thread(plain.down_if_started)
    cost = security_cost(tls, result)
    progress.step(
        "security",
        f"TLS {cost['tls_events_per_s']:.0f} events/s vs plaintext {cost['plaintext_events_per_s']:.0f} "
        f"events/s: ratio {cost['ratio']}",
    )
    return cost, result
