"""Decision API benchmark: latency (p50/p99) and decisions per second against the real service.

Creates topics under a fresh prefix, preloads the state topic with ``--patients`` patients (each
with a consent, an objection and, for one in ten, shielding), starts ``consent-broker run --stages
api`` as its own process (uvloop), waits for ``/v1/health``, then posts ``--requests`` decisions
with ``--concurrency`` concurrent aiohttp clients. Every live decision is appended to the audit
topic (acks=all) before it is answered, so the numbers include that durable write. Prints one JSON
object and writes it to ``--out``.

    .venv/bin/python -m loadtests.decision_bench --bootstrap 127.0.0.1:19092 --requests 5000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from broker.topics import TopicNames, create_topics
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_rules.state import replay
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    ShieldingAction,
)
from consent_wire.identity import patient_key
from consent_wire.model import ConsentDecision, Event, Objection, Payload, ShieldingFlag

__all__ = ["main"]

SECRET = bytes(range(32))  # benchmark-only pseudonym secret
T0 = 1_790_000_000_000  # fixed instant for the synthetic events
WARMUP = 200  # requests before measuring (connection pool, JIT-free but cache-warm paths)
PURPOSES = ("TREAT", "TREAT", "TREAT", "HRESCH", "COC")  # mostly direct care, some research


def nhs_numbers(count: int) -> list[str]:
    """Modulus-11-valid NHS numbers starting at 943 476 0000."""
    out: list[str] = []
    base = 943_476_000
    while len(out) < count:
        digits = str(base)
        total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = (11 - total % 11) % 11
        if check != 10:
            out.append(digits + str(check))
        base += 1
    return out


def _event(n: int, key: str, payload: Payload) -> Event:
    return Event(f"{n:032x}", "bench", "A81001", n, bytes(32), (T0 + n) << 16, T0 + n, key, payload)


def patient_events(i: int, key: str) -> list[Event]:
    action = ObjectionAction.REGISTER if i % 2 else ObjectionAction.WITHDRAW
    events = [
        _event(3 * i, key, ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, DataClass.ALL, "*")),
        _event(3 * i + 1, key, Objection(ObjectionKind.NDOP, action)),
    ]
    if i % 10 == 0:
        hides = (HiddenField.LOCATION, HiddenField.CONTACT)
        events.append(_event(3 * i + 2, key, ShieldingFlag(ShieldingAction.SET, hides, "SAFEGUARDING_LEAD")))
    return events


async def preload(bootstrap: str, topics: TopicNames, numbers: list[str]) -> None:
    producer = kafka.producer(KafkaConnection(bootstrap), acks="all", linger_ms=20)
    await producer.start()
    try:
        for i, nhs in enumerate(numbers):
            key = patient_key(SECRET, nhs)
            state = replay(key, patient_events(i, key))
            await producer.send(topics.state, state.to_bytes(), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_healthy(session: aiohttp.ClientSession, base: str, patients: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with session.get(base + "/v1/health") as resp:
                body = await resp.json()
                if resp.status == 200 and body["patients"] >= patients:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError("the API did not become healthy")


def body_for(k: int, numbers: list[str]) -> bytes:
    purpose = PURPOSES[k % len(PURPOSES)]
    direct = purpose in ("TREAT", "COC")
    requester = {"organisation": "RX1" if direct else "RESLAB1", "role": "CONSULTANT" if direct else "RESEARCHER",
                 "registered": True, "relationship": "LEGITIMATE" if direct else "NONE", "care_team": direct,
                 "accessor_id": f"staff-{k % 50}"}  # fmt: skip
    return orjson.dumps({"requester": requester, "purpose": purpose, "nhs_number": numbers[k % len(numbers)],
                         "data_classes": ["GENERAL", "PATLOC"]})  # fmt: skip


async def load(
    base: str, numbers: list[str], requests: int, concurrency: int
) -> tuple[list[float], float, dict[str, int]]:
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for k in counter:
                started = time.perf_counter()
                async with session.post(base + "/v1/decisions", data=body_for(k, numbers),
                                        headers={"Content-Type": "application/json"}) as resp:  # fmt: skip
                    result = await resp.json()
                latencies.append(time.perf_counter() - started)
                key = result.get("outcome", result.get("reason", "?"))
                outcomes[key] = outcomes.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started, outcomes


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    topics = TopicNames(f"bench{uuid.uuid4().hex[:8]}")
    await create_topics(KafkaConnection(args.bootstrap), topics)
    numbers = nhs_numbers(args.patients)
    await preload(args.bootstrap, topics, numbers)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        secret_file = Path(tmp) / "secret.hex"
        secret_file.write_text(SECRET.hex())
        env = {**os.environ, "CONSENT_BOOTSTRAP": args.bootstrap, "CONSENT_TOPIC_PREFIX": topics.prefix,
               "CONSENT_STAGES": "api", "CONSENT_APP_ID": f"{topics.prefix}-core", "CONSENT_HTTP_PORT": str(port),
               "CONSENT_PSEUDONYM_SECRET_FILE": str(secret_file)}  # fmt: skip
        cli = str(Path(sys.executable).with_name("consent-broker"))
        server = await asyncio.create_subprocess_exec(cli, "run", env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                await wait_healthy(session, base, args.patients)
            await load(base, numbers, WARMUP, args.concurrency)
            latencies, elapsed, outcomes = await load(base, numbers, args.requests, args.concurrency)
        finally:
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.wait(), 60)
    ordered = sorted(latencies)
    return {
        "benchmark": "decision_api",
        "topic_prefix": topics.prefix,  # `consent-broker audit verify --prefix` checks the log written
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "patients": args.patients,
        "requests": len(latencies),
        "concurrency": args.concurrency,
        "decisions_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(ordered, 0.50) * 1000, 2),
            "p90": round(percentile(ordered, 0.90) * 1000, 2),
            "p99": round(percentile(ordered, 0.99) * 1000, 2),
            "max": round(ordered[-1] * 1000, 2),
            "mean": round(statistics.fmean(ordered) * 1000, 2),
        },
        "outcomes": outcomes,
        "notes": "client and server on the same machine; each decision durably appended to the audit topic",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench/decision.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
