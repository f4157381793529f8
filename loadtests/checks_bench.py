"""Batch opt-out check benchmark: ``--numbers`` NHS numbers through ``POST /v1/checks`` against the real service.

Creates topics under a fresh prefix, preloads the state topic with ``--patients`` patients (consents,
objections, shielding: :func:`loadtests.decision_bench.preload`), starts ``consent-broker run --stages api`` as
its own process with its own TLS principal, then streams ``--numbers`` NHS numbers (NDJSON, generated before
timing: every ``--invalid-every``-th one with a wrong check digit, the preloaded patients among them) in one
request over HTTPS with an OAuth access token, reading the answer as a stream. Measures the wall time, the
numbers per second, the counts the service answers, and the peak resident memory of the API process (sampled
from /proc every 50 ms: the request and the answer are streamed, so it must not grow with the batch).
Prints one JSON object and writes it to ``--out``.

    .venv/bin/python -m loadtests.checks_bench --stack bench-checks --kafka-port 26592 --mqtt-port 18583
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from broker.infra.local import ApiClientSpec, LocalDeployment
from broker.topics import TopicNames, create_topics
from loadtests.decision_bench import Door, api_process, nhs_numbers, preload
from loadtests.stack import add_stack_arguments, deployment_from_args

__all__ = ["main"]

CLIENTS = (ApiClientSpec("bench-reslab1", "RESLAB1", ("RESEARCHER",), ("decisions",)),)
QUERY = "/v1/checks?purpose=HRESCH&legal_basis=S251&role=RESEARCHER&accessor_id=bench-1"
_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
PIECE = 2000  # numbers per body piece sent


def _valid_from(base: int) -> tuple[str, int]:
    """The first modulus-11-valid NHS number at or after ``base`` (9 digits + check), and the next base."""
    while True:
        digits = f"{base:09d}"
        check = (11 - sum(int(d) * w for d, w in zip(digits, _WEIGHTS, strict=True)) % 11) % 11
        if check != 10:
            return digits + str(check), base + 1
        base += 1


def body_pieces(count: int, preloaded: list[str], invalid_every: int) -> list[bytes]:
    """NDJSON lines, built before timing (the client's CPU is not the service's): the preloaded patients first,
    then numbers nobody recorded; every ``invalid_every``-th one with a wrong check digit."""
    pieces: list[bytes] = []
    lines: list[bytes] = []
    base = 400_000_000
    for i in range(count):
        if i < len(preloaded):
            nhs = preloaded[i]
        else:
            nhs, base = _valid_from(base)
            if invalid_every and i % invalid_every == 0:
                nhs = nhs[:9] + str((int(nhs[9]) + 1) % 10)
        lines.append(b'"' + nhs.encode() + b'"\n')
        if len(lines) == PIECE:
            pieces.append(b"".join(lines))
            lines = []
    if lines:
        pieces.append(b"".join(lines))
    return pieces


async def body(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kib(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def check(door: Door, pieces: list[bytes]) -> tuple[float, dict[str, Any], int]:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        headers = await door.headers(session, "RESLAB1")
        headers["Content-Type"] = "application/x-ndjson"
        start = time.perf_counter()
        permitted_lines = 0
        data = body(pieces)
        async with session.post(door.base + QUERY, data=data, headers=headers, ssl=door.ssl) as resp:
            if resp.status != 200:
                raise RuntimeError(f"/v1/checks answered {resp.status}: {await resp.text()}")
            tail = b""
            async for chunk in resp.content.iter_chunked(1 << 16):  # count lines; parse only the summary (last)
                permitted_lines += chunk.count(b"\n")
                tail = (tail + chunk)[-4096:]
            summary = orjson.loads(tail.rstrip(b"\n").rsplit(b"\n", 1)[-1])["summary"]
            permitted_lines -= 1  # the summary line
        return time.perf_counter() - start, summary, permitted_lines


async def run(args: argparse.Namespace, deployment: LocalDeployment) -> dict[str, Any]:
    topics = TopicNames(f"bench{uuid.uuid4().hex[:8]}")
    app_id = f"{topics.prefix}-core"
    operator = deployment.operator()
    await create_topics(operator, topics)
    await deployment.grant(topics.prefix, app_id)
    preloaded = nhs_numbers(args.patients)
    await preload(operator, topics, preloaded)
    async with api_process(deployment, topics, app_id, CLIENTS, args.patients) as (door, server):
        await check(door, body_pieces(1000, preloaded, args.invalid_every))  # warm-up
        pieces = body_pieces(args.numbers, preloaded, args.invalid_every)
        idle_kib = rss_kib(server.pid)
        peak, stop = [idle_kib], asyncio.Event()
        sampler = asyncio.create_task(sample_rss(server.pid, peak, stop))
        load_before = os.getloadavg()
        elapsed, summary, lines = await check(door, pieces)
        load_after = os.getloadavg()
        stop.set()
        await sampler
    return {
        "benchmark": "batch_check",
        "topic_prefix": topics.prefix,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "numbers": args.numbers,
        "preloaded_patients": args.patients,
        "seconds": round(elapsed, 2),
        "numbers_per_s": round(args.numbers / elapsed, 1),
        "goal": "1,000,000 numbers in <= 60 s, memory bounded",
        "goal_met": elapsed <= 60 and summary.get("received") == args.numbers,
        "summary": summary,
        "permitted_lines_read": lines,
        "api_rss_mib": {"idle_after_warmup": round(idle_kib / 1024, 1), "peak_during_batch": round(peak[0] / 1024, 1)},
        "load_average_1_5_15": {"before": _rounded(load_before), "after": _rounded(load_after)},
        "transport": "HTTPS + OAuth 2.0 bearer token" if deployment.secure else "plaintext HTTP, no authentication",
        "notes": "client, API and Kafka on the same 2-core machine shared with other work; one streamed request",
    }


def _rounded(values: tuple[float, ...]) -> list[float]:
    return [round(x, 1) for x in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_stack_arguments(parser)
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=2000, help="patients with recorded state (preloaded)")
    parser.add_argument("--invalid-every", type=int, default=1000, help="every n-th number has a wrong check digit")
    parser.add_argument("--out", type=Path, default=Path("bench/checks.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args, deployment_from_args(args)))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
