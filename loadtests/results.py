"""bench/results.json: the headline numbers, every run, goals met or missed, machine and configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from loadtests.drive import RunResult
from loadtests.latency import HDR_AVAILABLE, LatencySummary
from loadtests.machine import machine_info
from loadtests.runner import BenchOutcome, half_load

__all__ = ["assemble", "run_json"]


def _lat(summary: LatencySummary) -> dict[str, Any]:
    return {"p50": summary.p50, "p95": summary.p95, "p99": summary.p99, "max": summary.max, "count": summary.count}


def run_json(r: RunResult) -> dict[str, Any]:
    return {
        "label": r.spec.label,
        "layout": r.spec.layout.value,
        "processes": r.spec.processes,
        "partitions": r.spec.partitions,
        "offered_eps": r.spec.rate_eps,
        "offered_fraction": r.extra.get("offered_fraction"),
        "events": r.events,
        "seconds": r.seconds,
        "throughput_eps": r.throughput_eps,
        "latency_ms": _lat(r.latency),
        "shielding_ms": _lat(r.shielding),
        "state_outstanding": r.state_outstanding,
        "lost": r.lost,
        "duplicated": r.duplicated,
        "unexpected": r.unexpected,
        "mean_event_bytes": r.mean_event_bytes,
        "cpu_s": r.cpu_s,
        "cpu_us_per_event": r.cpu_us_per_event,
        **{k: v for k, v in r.extra.items() if k != "offered_fraction"},
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _full_load(curve: list[RunResult]) -> RunResult | None:
    return max(curve, key=lambda r: float(r.extra.get("offered_fraction", 0.0)), default=None)


def _least_load(curve: list[RunResult]) -> RunResult | None:
    """The paced run with the least bulk load: the bench's nearest to idle for shielding propagation."""
    paced = [r for r in curve if r.extra.get("offered_fraction") is not None]
    return min(paced, key=lambda r: float(r.extra["offered_fraction"]), default=None)


def _peer_ratio(peers: dict[str, Any], stage: str) -> float | None:
    """Product / quix-streams peer events/s for a stage, when the peer bench ran (loadtests.peers)."""
    entry = peers.get(stage)
    if not isinstance(entry, dict):
        return None
    return _ratio(entry.get("product_eps"), entry.get("peer_eps"))


def _goal(value: float | None, goal: float, at_least: bool) -> dict[str, Any]:
    met = None if value is None else (value >= goal if at_least else value <= goal)
    return {"goal": goal, "value": value, "met": met, "direction": ">=" if at_least else "<="}


def assemble(outcome: BenchOutcome, repo: Path) -> dict[str, Any]:
    main, ceilings, plan = outcome.main, outcome.ceilings, outcome.plan
    half, full = half_load(outcome.curve), _full_load(outcome.curve)
    every = [*outcome.scaling, *outcome.curve, *([outcome.plaintext] if outcome.plaintext is not None else [])]
    decisions = outcome.decisions
    real = half.extra.get("real_agents", {}).get("e2e_ms", {}) if half is not None else {}
    synthetic = half.latency if half is not None else main.latency
    headline_latency = LatencySummary(**real) if real.get("count") else synthetic
    shield_p99 = full.shielding.p99 if full is not None else None
    least = _least_load(outcome.curve)
    shield_idle_p99 = least.shielding.p99 if least is not None and least is not full else None
    peers = outcome.peers
    twohop_p99 = outcome.twohop_latency.p99 if outcome.twohop_latency is not None else None
    replica = full.extra.get("replica_shielding_ms") if full is not None else None
    result: dict[str, Any] = {
        "throughput_eps": main.throughput_eps,
        "latency_ms": _lat(headline_latency),
        "latency_measured_at": {
            "offered_eps": half.spec.rate_eps if half else None,
            "fraction_of_max": half.extra.get("offered_fraction") if half else None,
            "from": "real agents' HTTP 202" if real.get("count") else "synthetic batch send",
        },
        "latency_ms_synthetic": _lat(synthetic),
        "ceiling_passthrough_eps": ceilings.passthrough_eps,
        "ceiling_kafka_producer_eps": ceilings.producer_eps,
        "ceiling_kafka_consumer_eps": ceilings.consumer_fetch_eps,
        "ratio_to_passthrough": _ratio(main.throughput_eps, ceilings.passthrough_eps),
        # issue 18: the two-hop transactional pass-through (ingress -> events -> state shape, no processing)
        "ceiling_twohop_eps": ceilings.twohop_eps,
        "ratio_to_twohop": _ratio(main.throughput_eps, ceilings.twohop_eps),
        # the two-hop pass-through's end-to-end latency at the half-load run's offered rate (loadtests.twohop)
        "twohop_latency_ms": _lat(outcome.twohop_latency) if outcome.twohop_latency is not None else None,
        "twohop_latency_error": outcome.twohop_latency_error,
        "ratio_to_peer_verifier": _peer_ratio(peers, "verifier"),
        "ratio_to_peer_reconciler": _peer_ratio(peers, "reconciler"),
        "peers": peers,
        "ratio_to_kafka_producer": _ratio(main.throughput_eps, ceilings.producer_eps),
        "ratio_to_kafka_consumer": _ratio(main.throughput_eps, ceilings.consumer_fetch_eps),
        "shielding_p99_ms": shield_p99,
        # shielding propagation p99 in the least-loaded paced run (the bench has no run without bulk load)
        "shielding_p99_idle_ms": shield_idle_p99,
        "shielding_idle_measured_at_fraction": least.extra.get("offered_fraction") if least is not None else None,
        "shielding_replica_p99_ms": replica.get("p99") if isinstance(replica, dict) else None,
        "decision_p99_ms": decisions.get("p99_ms"),
        "decisions_per_s": decisions.get("per_s"),
        "security_cost": outcome.security_cost,
        "lost": sum(r.lost + r.state_outstanding for r in every),
        "duplicated": sum(r.duplicated for r in every),
        "cpu_us_per_event": main.cpu_us_per_event,
        "ceilings": ceilings.to_json(),
        "main_run": run_json(main),
        "scaling": [run_json(r) for r in outcome.scaling],
        "plaintext_run": run_json(outcome.plaintext) if outcome.plaintext is not None else None,
        "latency_curve": [run_json(r) for r in outcome.curve],
        "decisions": decisions,
        "real_agents": outcome.agents,
        "profile": outcome.profile,
        "machine": machine_info(repo),
        "load_average": {"before": outcome.load_before, "after": outcome.load_after},
        "config": {"quick": plan.quick, **_plan_json(plan)},
        "histograms": "hdr" if HDR_AVAILABLE else "exact (hdrh not installed)",
        "bench_seconds": outcome.seconds,
        "notes": outcome.notes,
    }
    result["goals"] = {
        "throughput_eps": _goal(main.throughput_eps, plan.goals["throughput_eps"], True),
        "ratio_to_passthrough": _goal(result["ratio_to_passthrough"], plan.goals["ratio_to_passthrough"], True),
        "ratio_to_twohop": _goal(result["ratio_to_twohop"], plan.goals["ratio_to_twohop"], True),
        "ratio_to_peer_verifier": _goal(result["ratio_to_peer_verifier"], plan.goals["ratio_to_peer"], True),
        "ratio_to_peer_reconciler": _goal(result["ratio_to_peer_reconciler"], plan.goals["ratio_to_peer"], True),
        "latency_p99_ms_at_half": _goal(headline_latency.p99, plan.goals["latency_p99_ms_at_half"], False),
        "latency_p99_vs_twohop": _goal(_ratio(headline_latency.p99, twohop_p99), 2.0, False),  # issue 18: <= 2x
        "shielding_p99_ms": _goal(shield_p99, plan.goals["shielding_p99_ms"], False),
        "shielding_p99_vs_idle": _goal(_ratio(shield_p99, shield_idle_p99), 1.5, False),
        "decisions_per_s": _goal(decisions.get("per_s"), plan.goals["decisions_per_s"], True),
        "decision_p99_ms": _goal(decisions.get("p99_ms"), plan.goals["decision_p99_ms"], False),
        "lost": _goal(result["lost"], 0, False),
        "duplicated": _goal(result["duplicated"], 0, False),
    }
    return result


def _plan_json(plan: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(plan):
        value = getattr(plan, f.name)
        if f.name == "quick":
            continue
        if f.name == "fleet":
            value = [
                {
                    "kind": k.kind.value,
                    "count": k.count,
                    "share": k.share,
                    "batch_events": k.batch_events,
                    "mix": {e.value: w for e, w in k.mix},
                    "burst_factor": k.burst_factor,
                    "offline_fraction": k.offline_fraction,
                }
                for k in value
            ]
        elif f.name == "scaling":
            value = [{"layout": lay.value, "processes": p, "partitions": n} for lay, p, n in value]
        elif f.name == "real_agents":
            value = {k.value: n for k, n in value}
        out[f.name] = value
    return out
