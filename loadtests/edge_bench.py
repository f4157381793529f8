"""Edge agent benchmark: durable submissions per second, backlog drain rate and resident memory.

Runs the real path with synchronous=FULL on a temporary directory: JSON validation, NHS number
pseudonymisation, HLC stamping, Avro encoding, hash chaining and SQLite group commit. Mode
``intake`` calls the intake directly; mode ``http`` posts batches to the agent's aiohttp API on
loopback. Mode ``drain`` fills the outbox through the intake while no publisher runs (the
backlog an outage leaves), then starts the real publisher with the real Kafka transport
(idempotent, acks=all) against a local broker (the "edge-bench" stack, started if needed and
stopped again only if started here) and times until every batch is acknowledged and the outbox
is empty. Prints one JSON line (and writes it to --out if given).

    .venv/bin/python -m loadtests.edge_bench --events 200000 --batch 200 --concurrency 8
    .venv/bin/python -m loadtests.edge_bench --mode drain --events 1000000 --uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from consent_io import kafka
from consent_io.connection import KafkaConnection

if TYPE_CHECKING:
    from broker.topics import TopicNames
    from edge_agent.intake import Intake
    from edge_agent.outbox import Outbox
    from edge_agent.publisher import Publisher

__all__ = ["main", "projected_goal_drain_s"]

NHS_NUMBERS = ("9434765919", "9434765870", "4010232137")  # modulus-11-valid test numbers
SECRET = bytes(range(32))
AGENT_ID = "bench-1"


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _batch_body(n: int) -> bytes:
    events = [
        {
            "type": "consent_decision",
            "nhs_number": NHS_NUMBERS[i % len(NHS_NUMBERS)],
            "payload": {"directive": "OPTIN", "purpose": "TREAT", "data_class": "ALL", "recipient": "*"},
        }
        for i in range(n)
    ]
    return orjson.dumps({"events": events})


async def _open(args: argparse.Namespace, workdir: Path) -> tuple[Outbox, Intake]:
    from consent_wire.identity import patient_key
    from edge_agent.app import now_ms
    from edge_agent.intake import Intake
    from edge_agent.outbox import Outbox
    from edge_agent.wire import AvroEventCodec, make_clock

    outbox = await Outbox.open(
        workdir / "outbox.db",
        agent_id=AGENT_ID,
        site="A12345",
        codec=AvroEventCodec(),
        cap_bytes=1 << 34,
        synchronous=args.synchronous,
    )
    return outbox, Intake(outbox, lambda nhs: patient_key(SECRET, nhs), make_clock(now_ms), now_ms)


async def _run(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    if args.mode == "drain":
        return await _drain_on_local_kafka(args, workdir)
    outbox, intake = await _open(args, workdir)
    body = _batch_body(args.batch)
    queue = _batch_queue(args)
    latencies: list[float] = []
    submitter = _intake_submitter(intake, queue, body, latencies)
    runner: Callable[[], Awaitable[None]] | None = None
    if args.mode == "http":
        submitter, runner = await _http_submitter(intake, outbox, queue, body, latencies)
    start = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - start
    pending = outbox.pending_count
    if runner is not None:
        await runner()
    await outbox.close()
    return {
        "bench": "edge_outbox",
        "mode": args.mode,
        "synchronous": args.synchronous,
        "events": pending,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 3),
        "events_per_s": round(pending / elapsed),
        **_latency_summary(latencies),
        "rss_mib": _mib(_rss_kib("VmRSS")),
        "peak_rss_mib": _mib(_rss_kib("VmHWM")),
    }


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def _batch_queue(args: argparse.Namespace) -> asyncio.Queue[int]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.events // args.batch):
        queue.put_nowait(i)
    return queue


def _latency_summary(latencies: list[float]) -> dict[str, float]:
    latencies.sort()
    return {
        "batch_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "batch_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


def _intake_submitter(
    intake: Intake, queue: asyncio.Queue[int], body: bytes, latencies: list[float]
) -> Callable[[], Awaitable[None]]:
    async def submit() -> None:
        while not queue.empty():
            queue.get_nowait()
            t0 = time.perf_counter()
            await intake.submit_json_batch(orjson.loads(body))
            latencies.append(time.perf_counter() - t0)

    return submit


async def _http_submitter(
    intake: Intake, outbox: Outbox, queue: asyncio.Queue[int], body: bytes, latencies: list[float]
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import aiohttp
    from aiohttp import web
    from prometheus_client.core import CollectorRegistry

    from edge_agent.http_api import ApiContext, make_app
    from edge_agent.metrics import SubmissionCounts

    ctx = ApiContext(
        "bench-1", "A12345", intake, outbox, lambda n: n, SubmissionCounts(), CollectorRegistry(), lambda: 0
    )
    token = secrets.token_hex(32).encode()  # the agent API's bearer token, as in production
    web_runner = web.AppRunner(make_app(ctx, token), access_log=None)
    await web_runner.setup()
    site = web.TCPSite(web_runner, "127.0.0.1", 0)
    await site.start()
    port = web_runner.addresses[0][1]
    session = aiohttp.ClientSession()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token.decode()}"}
    url = f"http://127.0.0.1:{port}/v1/events/batch"

    async def submit() -> None:
        while not queue.empty():
            queue.get_nowait()
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                if resp.status != 202:
                    raise RuntimeError(f"HTTP {resp.status}: {await resp.text()}")
                await resp.read()
            latencies.append(time.perf_counter() - t0)

    async def close() -> None:
        await session.close()
        await web_runner.cleanup()

    return submit, close


# -- drain: the backlog an outage leaves, published to a local Kafka ----------------------------

# The bench's own stack, apart from the tests' ("test": 19092/11883) and loadtests.stack ("bench"), below
# Linux's ephemeral port range 32768-60999 (issue 13: a restarted broker could not bind a port in it).
DRAIN_KAFKA_PORT = 29992
DRAIN_MQTT_PORT = 21983
DRAIN_SITE = "A12345"  # the agent's site (its Kafka ACLs: write the ingress topic)
DRAIN_GOAL_EVENTS = 1_000_000  # edge-agent issue: a 1,000,000-event backlog ...
DRAIN_GOAL_S = 120.0  # ... drained in under two minutes on a local broker
RSS_GOAL_MIB = 80.0  # edge-agent issue: under 80 MB resident memory
_POLL_S = 0.02  # how often the drain watcher samples the outbox and VmRSS


async def _drain_on_local_kafka(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    from broker.infra import Infra, InfraConfig
    from broker.infra.local import LocalDeployment
    from broker.topics import TopicNames, create_topics

    # secure, as deployed: the agent publishes with its own certificate and only the ACLs an agent gets
    infra = Infra(InfraConfig(name="edge-bench", kafka_port=DRAIN_KAFKA_PORT, mqtt_port=DRAIN_MQTT_PORT))
    deployment = LocalDeployment(infra)
    started_here = not infra.status().healthy
    if started_here:
        await asyncio.to_thread(infra.up)
    try:
        operator = deployment.operator()
        names = TopicNames(f"edgebench{time.time_ns() // 1_000_000}")
        await create_topics(operator, names)
        await deployment.grant(names.prefix, f"{names.prefix}-core", [(AGENT_ID, DRAIN_SITE)])
        agent = deployment.agent_kafka(AGENT_ID, DRAIN_SITE)
        try:
            result = await _fill_and_drain(args, workdir, agent, operator, names.ingress)
        finally:
            await _delete_topics(operator, names)
    finally:
        if started_here:
            await asyncio.to_thread(infra.down)
    return {**result, "broker_started_here": started_here}


async def _fill_and_drain(
    args: argparse.Namespace, workdir: Path, agent: KafkaConnection, operator: KafkaConnection, topic: str
) -> dict[str, object]:
    from consent_wire.dsse import AgentSigner
    from edge_agent.publisher import Publisher, PublisherSettings
    from edge_agent.transport_kafka import KafkaTransport
    from edge_agent.wire import WireBatchSigner

    outbox, intake = await _open(args, workdir)
    latencies: list[float] = []
    submit = _intake_submitter(intake, _batch_queue(args), _batch_body(args.batch), latencies)
    t0 = time.perf_counter()
    await asyncio.gather(*(submit() for _ in range(args.concurrency)))
    fill_s = time.perf_counter() - t0
    backlog = outbox.pending_count
    fill_peak_kib = _rss_kib("VmHWM")
    fill_rss = {"fill_rss_mib": _mib(_rss_kib("VmRSS")), "fill_peak_rss_mib": _mib(fill_peak_kib)}
    hwm_reset = _reset_peak_rss()
    transport = KafkaTransport(agent, topic, AGENT_ID, ack_timeout_s=30.0)
    settings = PublisherSettings(batch_max_events=args.publish_batch)
    publisher = Publisher(outbox, WireBatchSigner(AgentSigner.generate(AGENT_ID)), transport, settings)
    drain_s, sampled_peak = await _timed_drain(publisher, outbox, args.profile)
    drain_hwm = _rss_kib("VmHWM")
    await transport.close()
    await outbox.close()
    records = await _count_records(operator, topic)
    rate = backlog / drain_s
    projected = projected_goal_drain_s(backlog, drain_s)
    peak = _mib(max(sampled_peak, drain_hwm if hwm_reset else 0))
    return {
        "bench": "edge_drain",
        "mode": "drain",
        "synchronous": args.synchronous,
        "events": backlog,
        "submit_batch": args.batch,
        "publish_batch": args.publish_batch,
        "concurrency": args.concurrency,
        "fill_seconds": round(fill_s, 3),
        "fill_events_per_s": round(backlog / fill_s),
        **_latency_summary(latencies),
        **fill_rss,
        "drain_seconds": round(drain_s, 3),
        "drain_events_per_s": round(rate),
        "published_events": publisher.published_total,
        "publish_failures": publisher.failures_total,
        "kafka_records": records,
        "projected_1m_drain_seconds": round(projected, 1),
        "drain_goal_met": projected < DRAIN_GOAL_S,
        "drain_peak_rss_mib": peak,
        "drain_peak_rss_source": "VmHWM reset before drain + VmRSS samples" if hwm_reset else "VmRSS samples",
        "process_peak_rss_mib": _mib(max(fill_peak_kib, _rss_kib("VmHWM"))),
        "rss_goal_met": peak < RSS_GOAL_MIB,
    }


def projected_goal_drain_s(events: int, seconds: float) -> float:
    """Seconds the goal's backlog (DRAIN_GOAL_EVENTS) takes at the measured rate (linear projection)."""
    if events <= 0 or seconds <= 0:
        raise ValueError(f"need a positive drain measurement, got {events} events in {seconds}s")
    return DRAIN_GOAL_EVENTS * seconds / events


async def _timed_drain(publisher: Publisher, outbox: Outbox, profile: Path | None) -> tuple[float, int]:
    """Run the publisher until the outbox is empty; returns (seconds, peak sampled VmRSS KiB)."""
    import cProfile

    stop = asyncio.Event()
    profiler = cProfile.Profile() if profile is not None else None
    peak = _rss_kib("VmRSS")
    if profiler is not None:
        profiler.enable()
    start = time.perf_counter()
    task = asyncio.create_task(publisher.run(stop), name="publisher")
    while outbox.pending_count > 0:
        if task.done():
            task.result()  # surfaces the publisher's error
            raise RuntimeError("publisher stopped with events pending")
        await asyncio.sleep(_POLL_S)
        peak = max(peak, _rss_kib("VmRSS"))
    elapsed = time.perf_counter() - start
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return elapsed, peak


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5), so the drain's own peak is measured."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def _count_records(operator: KafkaConnection, topic: str) -> int:
    """Records on ``topic`` (one per signed batch): the sum of its partitions' end offsets."""
    consumer = kafka.consumer(operator, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await kafka.assign_all(consumer, topic))
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


async def _delete_topics(operator: KafkaConnection, names: TopicNames) -> None:
    """Best effort: keep the bench broker small across runs."""
    from aiokafka.errors import KafkaError

    from broker.topics import Topic

    admin = kafka.admin(operator)
    with contextlib.suppress(KafkaError, OSError):
        await admin.start()
        try:
            await admin.delete_topics([names.name(t) for t in Topic])
        finally:
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mode", choices=("intake", "http", "drain"), default="intake")
    parser.add_argument("--publish-batch", type=int, default=500, help="drain: publisher batch_max_events")
    parser.add_argument("--profile", type=Path, default=None, help="drain: write cProfile stats of the drain here")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as the agent does")
    parser.add_argument("--dir", type=Path, default=None, help="directory for the outbox (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = asyncio.run(_run(args, Path(tmp)))
    line = json.dumps(result)
    print(line)
    if args.out is not None:
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
