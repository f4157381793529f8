"""Decision API benchmark: latency (p50/p99) and decisions per second against the real service.

Creates topics under a fresh prefix (with the api stage's ACLs on it), preloads the state topic with
``--patients`` patients (each with a consent, an objection and, for one in ten, shielding) as the operator,
starts ``consent-broker run --stages api`` as its own process (uvloop) with its own TLS principal, waits for
``/v1/health``, then posts ``--requests`` decisions with ``--concurrency`` concurrent aiohttp clients. On a
secure stack the API serves HTTPS and every call carries an OAuth 2.0 access token (client credentials with
``private_key_jwt``), one registered client per requesting organisation, fetched before measuring. Every
live decision's audit record is durable before it is answered (an ``acks=all`` audit request, appended to the
log behind the answer; or, with ``CONSENT_AUDIT_ANSWER_AFTER=append`` in the environment, the appender's batch
transaction itself), so the numbers include that durable write. Prints one JSON object and writes it to ``--out``.

    .venv/bin/python -m loadtests.decision_bench --stack test --kafka-port 19092 --mqtt-port 11883
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from broker.auth.client import TokenSource, client_tls
from broker.infra.local import ApiClientSpec, LocalDeployment
from broker.topics import TopicNames, create_topics
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_io.secrets import write_secret
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
from loadtests.coreproc import free_port
from loadtests.stack import add_stack_arguments, deployment_from_args

__all__ = ["main"]

SECRET = bytes(range(32))  # benchmark-only pseudonym secret
T0 = 1_790_000_000_000  # fixed instant for the synthetic events
WARMUP = 200  # requests before measuring (connection pool, JIT-free but cache-warm paths)
PURPOSES = ("TREAT", "TREAT", "TREAT", "HRESCH", "COC")  # mostly direct care, some research
# The requesting organisations and roles the bodies assert; each is one registered API client
CLIENTS = (
    ApiClientSpec("bench-rx1", "RX1", ("CONSULTANT",), ("decisions",)),
    ApiClientSpec("bench-reslab1", "RESLAB1", ("RESEARCHER",), ("decisions",)),
)


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


async def preload(operator: KafkaConnection, topics: TopicNames, numbers: list[str]) -> None:
    producer = kafka.producer(operator, acks="all", linger_ms=20)
    await producer.start()
    try:
        for i, nhs in enumerate(numbers):
            key = patient_key(SECRET, nhs)
            state = replay(key, patient_events(i, key))
            await producer.send(topics.state, state.to_bytes(), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


class Door:
    """How the load reaches the API: its URL, the TLS context and one token source per organisation."""

    def __init__(self, base: str, tls: ssl.SSLContext | None, tokens: dict[str, TokenSource]) -> None:
        self.base = base
        self.ssl: ssl.SSLContext | bool = tls if tls is not None else True
        self._tls = tls
        self._tokens = tokens

    async def headers(self, session: aiohttp.ClientSession, organisation: str) -> dict[str, str]:
        source = self._tokens.get(organisation)
        headers = {"Content-Type": "application/json"}
        if source is not None:
            headers.update(await source.headers(session, self._tls))
        return headers

    async def fetch_tokens(self, session: aiohttp.ClientSession) -> None:
        for organisation in self._tokens:
            await self.headers(session, organisation)


async def wait_healthy(door: Door, patients: int, server: asyncio.subprocess.Process, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.returncode is not None:
            raise RuntimeError(f"the API process exited with status {server.returncode} (its error is above)")
        try:
            async with aiohttp.ClientSession() as session, session.get(door.base + "/v1/health", ssl=door.ssl) as resp:
                body = await resp.json()
                if resp.status == 200 and body["patients"] >= patients:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError("the API did not become healthy")


def body_for(k: int, numbers: list[str]) -> tuple[str, bytes]:
    """(requesting organisation, request body) of the k-th decision."""
    purpose = PURPOSES[k % len(PURPOSES)]
    direct = purpose in ("TREAT", "COC")
    direct_client, research_client = CLIENTS
    client = direct_client if direct else research_client
    requester = {"organisation": client.organisation, "role": client.roles[0],
                 "registered": True, "relationship": "LEGITIMATE" if direct else "NONE", "care_team": direct,
                 "accessor_id": f"staff-{k % 50}"}  # fmt: skip
    return client.organisation, orjson.dumps({"requester": requester, "purpose": purpose,
                                              "nhs_number": numbers[k % len(numbers)],
                                              "data_classes": ["GENERAL", "PATLOC"]})  # fmt: skip


async def load(
    door: Door, numbers: list[str], requests: int, concurrency: int
) -> tuple[list[float], float, dict[str, int]]:
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await door.fetch_tokens(session)  # token requests are not part of the measured decisions

        async def worker() -> None:
            for k in counter:
                started = time.perf_counter()
                organisation, body = body_for(k, numbers)
                headers = await door.headers(session, organisation)
                async with session.post(door.base + "/v1/decisions", data=body, headers=headers,
                                        ssl=door.ssl) as resp:  # fmt: skip
                    result = await resp.json()
                latencies.append(time.perf_counter() - started)
                key = result.get("outcome", result.get("reason", "?"))
                outcomes[key] = outcomes.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started, outcomes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; 0.0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


@contextlib.asynccontextmanager
async def api_process(
    deployment: LocalDeployment,
    topics: TopicNames,
    app_id: str,
    clients: tuple[ApiClientSpec, ...],
    patients: int,
) -> AsyncIterator[tuple[Door, asyncio.subprocess.Process]]:
    """`consent-broker run` with the api stage alone (its own door: HTTPS and OAuth clients when secure), healthy
    with ``patients`` states read; stopped with SIGTERM on exit. Yields the door and the process (for its pid)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        secret_file = Path(tmp) / "secret.hex"
        write_secret(secret_file, SECRET.hex().encode())  # mode 0600, as the core requires
        door_settings, keys = deployment.api_door(Path(tmp) / "door", clients)
        env = {**os.environ, **deployment.core_env(), "CONSENT_TOPIC_PREFIX": topics.prefix,
               "CONSENT_STAGES": "api", "CONSENT_APP_ID": app_id, "CONSENT_HTTP_PORT": str(port),
               "CONSENT_PSEUDONYM_SECRET_FILE": str(secret_file),
               **{f"CONSENT_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                  for k, v in door_settings.items()}}  # fmt: skip
        tokens = {
            c.organisation: TokenSource(deployment.api_credentials(c.client_id, keys[c.client_id], port), "decisions")
            for c in clients
            if c.client_id in keys
        }
        door = Door(deployment.api_url(port), client_tls(deployment.ca_file) if deployment.secure else None, tokens)
        cli = str(Path(sys.executable).with_name("consent-broker"))
        server = await asyncio.create_subprocess_exec(cli, "run", env=env)
        try:
            await wait_healthy(door, patients, server)
            yield door, server
        finally:
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.wait(), 60)


async def run(args: argparse.Namespace, deployment: LocalDeployment) -> dict[str, Any]:
    topics = TopicNames(f"bench{uuid.uuid4().hex[:8]}")
    app_id = f"{topics.prefix}-core"
    operator = deployment.operator()
    await create_topics(operator, topics)
    await deployment.grant(topics.prefix, app_id)
    numbers = nhs_numbers(args.patients)
    await preload(operator, topics, numbers)
    async with api_process(deployment, topics, app_id, CLIENTS, args.patients) as (door, server):
        await load(door, numbers, WARMUP, args.concurrency)
        cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
        latencies, elapsed, outcomes = await load(door, numbers, args.requests, args.concurrency)
        cpu_used, client_used = cpu_seconds(server.pid) - cpu_before, time.process_time() - client_before
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
        # CPU the API process spent per decision: less sensitive than latency to other load on the machine
        "api_cpu_ms_per_decision": round(cpu_used * 1000 / max(1, len(latencies)), 3),
        "client_cpu_ms_per_decision": round(client_used * 1000 / max(1, len(latencies)), 3),  # the load generator
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine at the end of the run
        "outcomes": outcomes,
        "transport": "HTTPS + OAuth 2.0 bearer tokens" if deployment.secure else "plaintext HTTP, no authentication",
        "audit_answer_after": os.environ.get("CONSENT_AUDIT_ANSWER_AFTER", "request"),  # what an answer waited for
        "notes": "client and server on the same machine; each decision's audit record durable before its answer",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_stack_arguments(parser)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench/decision.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args, deployment_from_args(args)))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
