"""bench/report.md and bench/*.png from the results dictionary (results.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_plots", "write_report"]


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3f}{unit}" if abs(value) < 10 else f"{value:,.1f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def _goal_rows(goals: dict[str, Any]) -> list[str]:
    rows = ["| goal | target | measured | met |", "|---|---|---|---|"]
    for name, g in goals.items():
        met = {True: "yes", False: "**NO**", None: "not measured"}[g["met"]]
        rows.append(f"| {name} | {g['direction']} {_fmt(g['goal'])} | {_fmt(g['value'])} | {met} |")
    return rows


def _run_rows(runs: list[dict[str, Any]]) -> list[str]:
    rows = [
        "| run | layout | procs | partitions | offered ev/s | events | ev/s | steady ev/s | p50 ms | p99 ms | "
        "max ms | shielding p99 ms | lost | dup |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lat, sh = r["latency_ms"], r["shielding_ms"]
        rows.append(
            f"| {r['label']} | {r['layout']} | {r['processes']} | {r['partitions']} | {_fmt(r['offered_eps'])} | "
            f"{_fmt(r['events'])} | {_fmt(r['throughput_eps'])} | {_fmt(r.get('steady_eps'))} | "
            f"{_fmt(lat['p50'])} | {_fmt(lat['p99'])} | "
            f"{_fmt(lat['max'])} | {_fmt(sh['p99'])} | {r['lost'] + r['state_outstanding']} | {r['duplicated']} |"
        )
    return rows


def _agent_rows(agents: dict[str, Any]) -> list[str]:
    rows = ["| run | measure | count | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|"]
    outbox = [
        "| run | agent | kind | submitted | refused | outbox last seq | acked seq | pending |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run, info in agents.items():
        for measure in ("e2e_ms", "shielding_subscriber_ms", "shielding_replica_ms"):
            m = info.get(measure, {})
            rows.append(
                f"| {run} | {measure} | {m.get('count')} | {_fmt(m.get('p50'))} | {_fmt(m.get('p95'))} | "
                f"{_fmt(m.get('p99'))} | {_fmt(m.get('max'))} |"
            )
        outbox.extend(
            f"| {run} | {a['agent']} | {a['kind']} | {a['submitted']} | {a['refused']} | "
            f"{a['outbox_last_seq']} | {a['outbox_acked_seq']} | {a['outbox_pending']} |"
            for a in info.get("agents", [])
        )
    return [*rows, "", *outbox]


def _decision_lines(d: dict[str, Any]) -> list[str]:
    if d.get("per_s") is None:
        return [f"Not measured: {d.get('skipped') or d.get('error')}"]
    lat = d.get("latency_ms", {})
    return [
        f"{_fmt(d['per_s'])} decisions/s over {d.get('requests')} requests, {d.get('concurrency')} concurrent "
        f"clients, {d.get('patients')} patients: p50 {lat.get('p50')} ms, p90 {lat.get('p90')} ms, "
        f"p99 {lat.get('p99')} ms, max {lat.get('max')} ms. Outcomes {d.get('outcomes')}. {d.get('notes', '')}"
    ]


def _stage_rows(run: dict[str, Any]) -> list[str]:
    rows = [
        "| stage | wall s | in process+transaction s | busy share | ms per partition batch | process CPU s | "
        "CPU us/event | busy minus CPU s (waiting on Kafka) | records per partition batch | aborts |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    cpu, per_event = run["cpu_s"], run["cpu_us_per_event"]
    for stage, t in run.get("stage_time", {}).items():
        per_batch = 1000.0 * t["batch_s"] / t["partition_batches"] if t["partition_batches"] else None
        waiting = t["batch_s"] - cpu[stage] if stage in cpu else None
        rows.append(
            f"| {stage} | {t['wall_s']} | {t['batch_s']} | {_fmt(t['busy_share'])} | {_fmt(per_batch)} | "
            f"{_fmt(cpu.get(stage))} | {_fmt(per_event.get(stage))} | {_fmt(waiting)} | "
            f"{_fmt(t['records_per_batch'])} | {t['transaction_aborts']} |"
        )
    others = ", ".join(f"{k} {v} s ({per_event.get(k)} us/event)" for k, v in cpu.items() if k in ("kafka", "bench"))
    return [*rows, "", f"Other CPU in the same window: {others}."]


def _time_runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The main (blast) run and the paced run nearest half of max throughput."""
    paced = [r for r in results["latency_curve"] if r.get("offered_fraction") is not None]
    half = min(paced, key=lambda r: abs(float(r["offered_fraction"]) - 0.5), default=None)
    return [results["main_run"], *([half] if half is not None else [])]


def _profile_rows(profile: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines: list[str] = []
    for process, rows in profile.items():
        lines += [f"### {process}", "", "| function | calls | own s | own % | cumulative s |", "|---|---|---|---|---|"]
        lines += [
            f"| `{r['function']}` | {r['calls']:,} | {r['own_s']} | {r['own_pct']} | {r['cumulative_s']} |"
            for r in rows
        ]
        lines.append("")
    return lines


METHOD = (
    "## Method",
    "",
    "- Everything runs on the bench's own single-node Kafka (KRaft) and Mosquitto, started by the bench if not "
    "running (and stopped again), on the same machine as the core, the load generator and the real agents.",
    "- The core runs as `python -m broker run` subprocesses with `CONSENT_*` settings: `split` = one process per "
    "stage (CPU per stage from /proc), `combined` = each process runs verifier and reconciler (scale-out).",
    "- Synthetic agents (GP practices, care homes, biometric gateways; event mix, batch sizes, on-off bursts and "
    "offline periods from `loadtests/plan.py`) sign chained batches before the measured window; during it the "
    "generator only hands bytes to Kafka. Every event about a patient names a patient key of its own, so a state "
    "record under that key marks that event's arrival and the events topic is checked for loss and duplication "
    "by key.",
    "- Throughput: a backlog is sent at once and drained; events / (last state record - first send). The steady "
    "figure counts arrivals between 10% and 90% of the total (start-up and tail cut).",
    "- Latency: synthetic events from their scheduled send instant (open loop, so no coordinated omission; an "
    "offline agent's events from its reconnection); real edge agents from the HTTP 202 of `POST /v1/events` "
    "(durably in the outbox) to the record on the state topic, read by a read_committed subscriber. Shielding: "
    "to the shielding topic and into the real agents' replicas.",
    "- Ceilings use records the size of our verified events: Kafka's ProducerPerformance / ConsumerPerformance "
    "(acks=all, idempotent, linger 5 ms, lz4, 1 MiB batches) and an aiokafka pass-through of the main run's "
    "events topic with the core's batching, in its own process.",
    "",
)


def _security_line(cost: dict[str, Any]) -> str:
    if "tls_events_per_s" not in cost:
        return f"- Cost of security: not measured ({cost.get('error') or cost.get('skipped') or 'no comparison'})"
    return (
        f"- Cost of security (main run repeated on a plaintext stack kept for this comparison only): "
        f"**{_fmt(cost['tls_events_per_s'])} events/s with mutual TLS and ACLs vs "
        f"{_fmt(cost['plaintext_events_per_s'])} events/s plaintext, ratio {_fmt(cost['ratio'])}** "
        f"(steady state {_fmt(cost['tls_steady_events_per_s'])} vs {_fmt(cost['plaintext_steady_events_per_s'])}, "
        f"ratio {_fmt(cost['steady_ratio'])}); cores ready after {_fmt(cost.get('tls_cores_ready_s'))} s vs "
        f"{_fmt(cost.get('plaintext_cores_ready_s'))} s, group rejoins {_churn(cost.get('tls_group_churn'))} vs "
        f"{_churn(cost.get('plaintext_group_churn'))}"
    )


def _churn(churn: Any) -> str:
    """Group rejoins summed over a run's core processes (each rejoin restores every partition again)."""
    if not isinstance(churn, dict):
        return "n/a"
    return str(sum(int(c.get("rejoins", 0)) for c in churn.values()))


def write_report(results: dict[str, Any], path: Path) -> None:
    m, cfg = results["machine"], results["config"]
    ceil = results["ceilings"]
    lines = [
        "# Load test report",
        "",
        f"Mode: {'QUICK' if cfg['quick'] else 'full'}; {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{_fmt(m['mem_total_mib'])} MiB, Python {m['python']}, Kafka {m['kafka']}, commit {m['git_commit']}.",
        f"Load average before {results['load_average']['before']}, after {results['load_average']['after']} "
        "(the machine is shared: numbers are noisy). Histograms: " + results["histograms"] + ".",
        "",
        "## Headline",
        "",
        f"- Throughput through verifier and reconciler (2 processes, one per stage): "
        f"**{_fmt(results['throughput_eps'])} signed events/s** (backlog drained; steady state between 10% and 90% "
        f"of arrivals: {_fmt(results['main_run'].get('steady_eps'))} events/s)",
        f"- Ceilings on the same broker: raw aiokafka pass-through {_fmt(ceil['passthrough_eps'])} records/s, "
        f"Kafka ProducerPerformance {_fmt(ceil['producer_eps'])} records/s, ConsumerPerformance (fetch) "
        f"{_fmt(ceil['consumer_fetch_eps'])} records/s, records of {ceil['record_bytes']} bytes",
        f"- Ratio to pass-through {_fmt(results['ratio_to_passthrough'])}, to Kafka producer "
        f"{_fmt(results['ratio_to_kafka_producer'])}, to Kafka consumer {_fmt(results['ratio_to_kafka_consumer'])}",
        f"- Two-hop transactional pass-through (the stages' own transactions, no processing) "
        f"{_fmt(results.get('ceiling_twohop_eps'))} records/s: ratio {_fmt(results.get('ratio_to_twohop'))}; "
        f"product/quix-streams peer: verifier {_fmt(results.get('ratio_to_peer_verifier'))}, reconciler "
        f"{_fmt(results.get('ratio_to_peer_reconciler'))}",
        f"- End-to-end latency at {_fmt(results['latency_measured_at']['offered_eps'])} ev/s offered (from "
        f"{results['latency_measured_at']['from']}): "
        f"p50 {_fmt(results['latency_ms']['p50'])} ms, p95 {_fmt(results['latency_ms']['p95'])} ms, "
        f"p99 {_fmt(results['latency_ms']['p99'])} ms, max {_fmt(results['latency_ms']['max'])} ms; the two-hop "
        f"pass-through at the same offered rate: p99 {_fmt((results.get('twohop_latency_ms') or {}).get('p99'))} ms",
        f"- Shielding propagation under full load: subscribers p99 {_fmt(results['shielding_p99_ms'])} ms, "
        f"agent replicas p99 {_fmt(results['shielding_replica_p99_ms'])} ms; in the least-loaded run "
        f"({_fmt(results.get('shielding_idle_measured_at_fraction'))} of max) p99 "
        f"{_fmt(results.get('shielding_p99_idle_ms'))} ms",
        f"- Decision API: {_fmt(results['decisions_per_s'])} decisions/s, p99 {_fmt(results['decision_p99_ms'])} ms",
        _security_line(results.get("security_cost", {})),
        f"- Lost {results['lost']}, duplicated {results['duplicated']} (all runs, checked by key on the events "
        "topic and against the real agents' outboxes)",
        f"- CPU per event (us) in the main run: {results['cpu_us_per_event']}",
        "",
        *METHOD,
        "## Goals",
        "",
        *_goal_rows(results["goals"]),
        "",
        "## Runs",
        "",
        *_run_rows(results["scaling"] + results["latency_curve"]),
        "",
        "![latency curve](latency_curve.png)",
        "",
        "![throughput](throughput.png)",
        "",
        "![cpu](cpu_per_event.png)",
        "",
        "## Where the time goes",
        "",
        "Each stage's wall time split into time inside `process` + its Kafka transaction (the core's own "
        "`broker_stage_batch_seconds`) and the rest (polling, waiting for input); CPU from /proc.",
        "",
        *[line for run in _time_runs(results) for line in [f"### {run['label']}", "", *_stage_rows(run), ""]],
        "## Decision API",
        "",
        *_decision_lines(results["decisions"]),
        "",
        "## Real edge agents",
        "",
        "Latency from the agent's HTTP 202 (durably in its outbox) to the record on the state / shielding topic "
        "and in the agent's replica; every submission checked against the outbox.",
        "",
        *_agent_rows(results["real_agents"]),
        "",
    ]
    if results["profile"]:
        lines += [
            "## Profile (goal missed: where the time goes)",
            "",
            "cProfile of each stage process during a blast run; idle waiting shows as the event loop's own time.",
            "",
            *_profile_rows(results["profile"]),
        ]
    if results["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in results["notes"]], ""]
    path.write_text("\n".join(lines) + "\n")


def write_plots(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    curve = [r for r in results["latency_curve"] if r["latency_ms"]["p50"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    for pct in ("p50", "p95", "p99"):
        ax.plot([r["offered_eps"] for r in curve], [r["latency_ms"][pct] for r in curve], marker="o", label=pct)
    ax.set_xlabel("offered load (events/s)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("Latency against offered load")
    ax.legend()
    written.append(_save(fig, out / "latency_curve.png"))
    fig, ax = plt.subplots(figsize=(8, 4))
    ceil = results["ceilings"]
    labels = [r["label"] for r in results["scaling"]] + ["passthrough", "kafka-producer", "kafka-consumer"]
    values = [r["throughput_eps"] for r in results["scaling"]] + [
        ceil["passthrough_eps"] or 0,
        ceil["producer_eps"] or 0,
        ceil["consumer_fetch_eps"] or 0,
    ]
    ax.bar(labels, values, color=["tab:blue"] * len(results["scaling"]) + ["tab:gray"] * 3)
    ax.set_ylabel("events (records) / s")
    ax.set_title("Throughput and ceilings")
    ax.tick_params(axis="x", labelrotation=30)
    written.append(_save(fig, out / "throughput.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    cpu = results["cpu_us_per_event"]
    ax.bar(list(cpu), list(cpu.values()))
    ax.set_ylabel("CPU us per event")
    ax.set_title("CPU time per event per process (main run)")
    written.append(_save(fig, out / "cpu_per_event.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
