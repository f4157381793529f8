"""Edge agent benchmark: durable submissions per second and resident memory.

Runs the real path with synchronous=FULL on a temporary directory: JSON validation, NHS number
pseudonymisation, HLC stamping, Avro encoding, hash chaining and SQLite group commit. Mode
``intake`` calls the intake directly; mode ``http`` posts batches to the agent's aiohttp API on
loopback. Prints one JSON line (and writes it to --out if given).

    .venv/bin/python -m loadtests.edge_bench --events 200000 --batch 200 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from edge_agent.intake import Intake
    from edge_agent.outbox import Outbox

__all__ = ["main"]

NHS_NUMBERS = ("9434765919", "9434765870", "4010232137")  # modulus-11-valid test numbers
SECRET = bytes(range(32))


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


async def _run(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    from consent_wire.identity import patient_key
    from edge_agent.app import now_ms
    from edge_agent.intake import Intake
    from edge_agent.outbox import Outbox
    from edge_agent.wire import AvroEventCodec, make_clock

    outbox = await Outbox.open(
        workdir / "outbox.db",
        agent_id="bench-1",
        site="A12345",
        codec=AvroEventCodec(),
        cap_bytes=1 << 34,
        synchronous=args.synchronous,
    )
    intake = Intake(outbox, lambda nhs: patient_key(SECRET, nhs), make_clock(now_ms), now_ms)
    body = _batch_body(args.batch)
    batches = args.events // args.batch
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(batches):
        queue.put_nowait(i)
    latencies: list[float] = []

    async def submit_intake() -> None:
        while not queue.empty():
            queue.get_nowait()
            t0 = time.perf_counter()
            await intake.submit_json_batch(orjson.loads(body))
            latencies.append(time.perf_counter() - t0)

    submitter: Callable[[], Awaitable[None]] = submit_intake
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
    latencies.sort()
    return {
        "bench": "edge_outbox",
        "mode": args.mode,
        "synchronous": args.synchronous,
        "events": pending,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 3),
        "events_per_s": round(pending / elapsed),
        "batch_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "batch_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "rss_mib": round(_rss_kib("VmRSS") / 1024, 1),
        "peak_rss_mib": round(_rss_kib("VmHWM") / 1024, 1),
    }


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
    web_runner = web.AppRunner(make_app(ctx), access_log=None)
    await web_runner.setup()
    site = web.TCPSite(web_runner, "127.0.0.1", 0)
    await site.start()
    port = web_runner.addresses[0][1]
    session = aiohttp.ClientSession()
    url = f"http://127.0.0.1:{port}/v1/events/batch"

    async def submit() -> None:
        while not queue.empty():
            queue.get_nowait()
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                if resp.status != 202:
                    raise RuntimeError(f"HTTP {resp.status}: {await resp.text()}")
                await resp.read()
            latencies.append(time.perf_counter() - t0)

    async def close() -> None:
        await session.close()
        await web_runner.cleanup()

    return submit, close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mode", choices=("intake", "http"), default="intake")
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
