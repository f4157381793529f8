"""National-scale benchmark of the API (issue 16): memory, restart, decision, access-log and report latency.

Method: brings up (or reuses) a secure local stack on ``--kafka-port``/``--mqtt-port`` (name ``--stack``),
creates topics under a fresh prefix, then generates ``--events`` events about ``--patients`` patients of a
realistic mix (mostly access records; consents, objections, shielding, disclosures, a few breaches; one
busy patient with 1% of the events, one patient with exactly 1,000 access records) straight into the events
topic with the product's encoders (VerifiedEvent records as the verifier writes them; proofs are not
checked downstream) and each touched patient's state record, folded by the product's merge, into the state
topic. The API (``consent-broker run --stages api``, its own process and principal, views in a SQLite
folder, state cache ``--cache``) follows the topics live; its resident memory is read from /proc once it
has caught up at 25%, 50% and 100% of the events. Then it is restarted (restart-to-ready: SIGTERM to
``/v1/health`` ready; and until it holds the audit log again, ``restart_to_audit_holder_s``) and measured:
decisions at a fixed rate (``--rate``/s, open loop: latency counted from each request's scheduled time) over
uniformly random patients, the access-log query for the 1,000-access patient (a page of 100, and all 1,000 in
one answer), and the three report queries, answered from the
aggregates of the ``reports`` stage (``--stages reports``, its own process; the queries start once it has
counted every disclosure), each both as answered (reused while the aggregates are unchanged) and rendered
anew (``Cache-Control: no-cache``). Writes ``--out`` (JSON) and a section of ``--report``.

    .venv/bin/python -m loadtests.scale_bench --quick --kafka-port 24592 --mqtt-port 16583
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from broker.auth.client import TokenSource, client_tls
from broker.infra.local import ApiClientSpec, LocalDeployment
from broker.infra.manager import InfraConfig
from broker.topics import TopicNames, create_topics
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_io.kafka import MAX_REQUEST_BYTES
from consent_io.secrets import write_secret
from consent_rules.state import PatientState, apply, empty_state
from consent_wire.avro_codec import encode_event
from consent_wire.codes import (
    BreachSeverity,
    ConsentDirective,
    DataClass,
    HiddenField,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
)
from consent_wire.identity import patient_key
from consent_wire.model import AccessRecord, BreachReport, ConsentDecision, Event, Objection, Payload, ShieldingFlag
from consent_wire.signing import VerifiedEvent, encode_verified_event
from loadtests.coreproc import free_port
from loadtests.decision_bench import nhs_numbers, percentile
from loadtests.stack import BenchStack

__all__ = ["main"]

SECRET = bytes(range(32))  # benchmark-only pseudonym secret
T0 = 1_790_000_000_000
SITES = [f"S{i:05d}" for i in range(500)]  # one agent per site
ORGS = [f"R{i:03d}" for i in range(50)]
CLIENTS = (ApiClientSpec("scale-rx1", "RX1", ("CONSULTANT",), ("decisions", "patient.read", "reports")),)
BUSY, LOGGED = 0, 1  # patient indexes: 1% of all events; exactly 1,000 access records
PAGE = 100  # access-log entries per page (the API's ?limit=)
LOGGED_ACCESSES = 1000
GOALS = {"rss_mib": 512, "rss_growth_ratio": 0.10, "restart_s": 30, "decision_p99_ms": 10, "access_log_p99_ms": 50,
         "report_p99_ms": 100, "max_state_record_bytes": 16 * 1024}  # fmt: skip


@dataclass
class Generator:
    """The synthetic history: events in order, each touched patient's state kept to publish it."""

    patients: int
    rng: random.Random
    keys: list[str]
    seqs: dict[str, int] = field(default_factory=dict)
    states: dict[int, PatientState] = field(default_factory=dict)
    n: int = 0
    accesses: int = 0
    disclosures: int = 0
    logged: int = 0
    max_state_bytes: int = 0

    def next(self) -> tuple[int, Event]:
        rng = self.rng
        roll = rng.random()
        payload: Payload
        if self.logged < LOGGED_ACCESSES and roll < 0.002:
            index, payload = LOGGED, self._access(disclosed=False)
            self.logged += 1
        elif roll < 0.012:
            index, payload = BUSY, self._state_payload(rng.random())
        else:
            index = rng.randrange(2, self.patients)
            payload = self._payload(rng.random())
        site = rng.choice(SITES)
        if isinstance(payload, Objection) and payload.kind is ObjectionKind.TYPE1:
            site = SITES[index % len(SITES)]  # a type 1 is recorded by the patient's own GP practice only
        agent = f"agent-{site}"
        seq = self.seqs[agent] = self.seqs.get(agent, 0) + 1
        self.n += 1
        key = "" if isinstance(payload, BreachReport) else self.keys[index]
        event = Event(uuid.UUID(int=rng.getrandbits(128)).hex, agent, site, seq, bytes(32), (T0 + self.n) << 16,
                      T0 + self.n, key, payload)  # fmt: skip
        if isinstance(payload, AccessRecord):
            self.accesses += 1
            self.disclosures += int(bool(payload.disclosed_to))
        return index, event

    def _payload(self, r: float) -> Payload:
        if r < 0.80:
            return self._access(disclosed=False)
        if r < 0.83:
            return self._access(disclosed=True)
        if r < 0.999:
            return self._state_payload((r - 0.83) / 0.169)
        return BreachReport(self.rng.choice(ORGS), self.rng.choice(list(BreachSeverity)), "DISCLOSED_IN_ERROR",
                            "misdirected letter", "retrained", True, 1)  # fmt: skip

    def _access(self, *, disclosed: bool) -> AccessRecord:
        org = self.rng.choice(ORGS)
        if disclosed:
            return AccessRecord(f"staff-{self.rng.randrange(100)}", org, "GP", True, Relationship.NONE,
                                PurposeOfUse.HRESCH, (DataClass.GENERAL,), None, self.rng.choice(ORGS))  # fmt: skip
        return AccessRecord(f"staff-{self.rng.randrange(100)}", org, "NURSE", True, Relationship.LEGITIMATE,
                            PurposeOfUse.TREAT, (DataClass.GENERAL,), None, "")  # fmt: skip

    def _state_payload(self, r: float) -> Payload:
        rng = self.rng
        if r < 0.55:
            return ConsentDecision(rng.choice(list(ConsentDirective)), rng.choice([PurposeOfUse.TREAT,
                                   PurposeOfUse.HRESCH, PurposeOfUse.ANY]), rng.choice([DataClass.GENERAL,
                                   DataClass.ALL]), rng.choice(["*", *ORGS[:5]]))  # fmt: skip
        if r < 0.85:
            return Objection(rng.choice([ObjectionKind.NDOP, ObjectionKind.TYPE1]), rng.choice(list(ObjectionAction)))
        action = rng.choice(list(ShieldingAction))
        hides = (HiddenField.LOCATION, HiddenField.CONTACT) if action is ShieldingAction.SET else ()
        return ShieldingFlag(action, hides, "SAFEGUARDING_LEAD", "DOMESTIC_ABUSE")

    def fold(self, index: int, event: Event) -> bool:
        """Apply a state-changing event to the patient's state; True when it changed."""
        before = self.states.get(index) or empty_state(event.patient_key)
        after = apply(before, event)
        if after is before:
            return False
        self.states[index] = after
        return True


def verified(event: Event) -> bytes:
    """The events-topic record the verifier would write (proof fields filled, not checked downstream)."""
    data = encode_event(event)
    ve = VerifiedEvent(data, event, bytes(32), event.agent_id, "bench", type(event.payload).__name__, event.seq, 1,
                       0, (), bytes(32), bytes(64))  # fmt: skip
    return encode_verified_event(ve)


async def produce(operator: KafkaConnection, topics: TopicNames, gen: Generator, count: int) -> None:
    """``count`` more events into the events topic and the changed patients' states into the state topic."""
    producer = kafka.producer(operator, acks="all", linger_ms=50, max_batch_size=512 * 1024)
    await producer.start()
    try:
        pending: list[asyncio.Future[Any]] = []
        changed: set[int] = set()
        for i in range(count):
            index, event = gen.next()
            pending.append(await producer.send(topics.events, verified(event), key=event.patient_key.encode()))
            if event.patient_key and gen.fold(index, event):
                changed.add(index)
            if len(pending) >= 20_000 or i == count - 1:
                for index in changed:
                    record = gen.states[index].to_bytes()
                    gen.max_state_bytes = max(gen.max_state_bytes, len(record))
                    pending.append(await producer.send(topics.state, record, key=gen.keys[index].encode()))
                changed.clear()
                await asyncio.gather(*pending)
                pending.clear()
    finally:
        await producer.stop()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def reports_counted(api: Api, disclosures: int, timeout_s: float = 900) -> float:
    """Wait until the report aggregates count every disclosure produced; returns the seconds waited."""
    t = time.monotonic()
    async with aiohttp.ClientSession() as session:
        headers = await api.headers(session)
        while time.monotonic() - t < timeout_s:
            async with session.get(api.base + "/v1/reports/disclosures", headers=headers, ssl=api.tls) as resp:
                if resp.status == 200 and sum(r["disclosures"] for r in (await resp.json())["rows"]) >= disclosures:
                    return time.monotonic() - t
            await asyncio.sleep(1.0)
    raise TimeoutError("the reports stage did not count every disclosure")


class Api:
    """The API process and how to reach it."""

    def __init__(
        self, deployment: LocalDeployment, env: dict[str, str], port: int, keys: dict[str, Path], log: Path | None
    ) -> None:
        self.deployment, self.env, self.port, self.log = deployment, env, port, log
        self.base = deployment.api_url(port)
        self.tls = client_tls(deployment.ca_file)
        self.tokens = TokenSource(deployment.api_credentials("scale-rx1", keys["scale-rx1"], port))
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        cli = str(Path(sys.executable).with_name("consent-broker"))
        if self.log is None:
            self.process = await asyncio.create_subprocess_exec(cli, "run", env=self.env)
            return
        with self.log.open("ab") as out:  # INFO lines, appended across the restart: where a start's time goes
            self.process = await asyncio.create_subprocess_exec(cli, "-v", "run", env=self.env, stderr=out)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 120)

    async def health(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        if self.process is not None and self.process.returncode is not None:
            raise RuntimeError(f"the API process exited with status {self.process.returncode}")
        try:
            async with session.get(self.base + "/v1/health", ssl=self.tls) as resp:
                body: dict[str, Any] = await resp.json()
                body["http_status"] = resp.status
                return body
        except (aiohttp.ClientError, OSError):
            return {"http_status": 0}

    async def health_now(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            return await self.health(session)

    async def until(self, check: Callable[[dict[str, Any]], bool], timeout_s: float = 900) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if check(await self.health(session)):
                    return
                await asyncio.sleep(0.2)
        raise TimeoutError("the API did not reach the expected state")

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        return {"Content-Type": "application/json", **await self.tokens.headers(session, self.tls)}


async def timed(n: int, request: Callable[[], Awaitable[None]]) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await request()
        out.append(time.perf_counter() - started)
    return out


async def decisions(api: Api, numbers: list[str], rate: int, seconds: float, rng: random.Random) -> dict[str, Any]:
    """Open loop at ``rate``/s; latency from each request's scheduled start (no coordinated omission)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = await api.headers(session)
        start = time.perf_counter() + 0.2

        async def one(k: int) -> None:
            scheduled = start + k / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            body = {"requester": {"organisation": "RX1", "role": "CONSULTANT", "registered": True,
                                  "relationship": "LEGITIMATE", "care_team": True, "accessor_id": f"staff-{k % 50}"},
                    "purpose": "TREAT", "nhs_number": rng.choice(numbers), "data_classes": ["GENERAL"]}  # fmt: skip
            async with session.post(api.base + "/v1/decisions", data=orjson.dumps(body), headers=headers,
                                    ssl=api.tls) as resp:  # fmt: skip
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(k) for k in range(total)))
    ordered = sorted(latencies)
    return {"rate_per_s": rate, "requests": total, "statuses": statuses, "answered": statuses.get(200, 0),
            "p50_ms": ms(percentile(ordered, 0.5)),
            "p99_ms": ms(percentile(ordered, 0.99)), "max_ms": ms(ordered[-1])}  # fmt: skip


async def queries(api: Api, logged_nhs: str, sites: list[str], n: int) -> dict[str, Any]:
    reader = "accessor_id=staff-7&role=CONSULTANT&purpose=TREAT"
    sizes = ",".join(f"{s}:100000" for s in sites)
    paths = {
        "access_log": f"/v1/patients/{logged_nhs}/accesses?{reader}&limit={PAGE}",  # the first page
        "access_log_whole": f"/v1/patients/{logged_nhs}/accesses?{reader}",  # every entry in one answer
        "report_disclosures": "/v1/reports/disclosures",
        "report_breaches": "/v1/reports/breaches",
        "report_objections": f"/v1/reports/objections?list_sizes={sizes}",
    }
    # the same reports rendered anew on every request (``Cache-Control: no-cache``): the API keeps each report's
    # answer while the aggregates are unchanged, as they are here, so the figures above are mostly reused answers
    paths.update({f"{name}_uncached": path for name, path in paths.items() if name.startswith("report_")})
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        auth = await api.headers(session)
        for name, path in paths.items():
            statuses: set[int] = set()
            sizes_seen: list[int] = []
            headers = {**auth, "Cache-Control": "no-cache"} if name.endswith("_uncached") else auth

            async def request(
                p: str = path, h: dict[str, str] = headers, st: set[int] = statuses, sz: list[int] = sizes_seen
            ) -> None:
                async with session.get(api.base + p, headers=h, ssl=api.tls) as resp:
                    sz.append(len(await resp.read()))
                    st.add(resp.status)

            # ``n`` of each kind, reports too: with a tenth of them (10) their "p99" was the slowest of ten answers
            times = sorted(await timed(n, request))
            out[name] = {"p50_ms": ms(percentile(times, 0.5)), "p99_ms": ms(percentile(times, 0.99)),
                         "requests": len(times), "statuses": sorted(statuses), "bytes": sizes_seen[-1]}  # fmt: skip
    return out


def caught_up(health: dict[str, Any], *, events: int, accesses: int) -> bool:
    """Ready, every event read (events counted since this process started), and every access appended and read back
    into the access-log index (so the restart measured next is the restart's own time, not a backlog's)."""
    appended = health.get("audit_next_index", 0) >= accesses and health.get("audit_indexed", 0) >= accesses
    return bool(health.get("status") == "ok" and health["events"] >= events and appended)


def audit_settled(health: dict[str, Any], *, entries: int) -> bool:
    """At least ``entries`` in the log, and the access-log index has read every entry appended."""
    appended = int(health.get("audit_next_index", 0))
    return appended >= entries and int(health.get("audit_indexed", 0)) >= appended


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def run(args: argparse.Namespace, deployment: LocalDeployment) -> dict[str, Any]:
    started_at = time.monotonic()
    topics = TopicNames(f"scale{uuid.uuid4().hex[:8]}")
    app_id = f"{topics.prefix}-core"
    operator = deployment.operator()
    await create_topics(operator, topics)
    await deployment.grant(topics.prefix, app_id)
    numbers = nhs_numbers(args.patients)
    keys = [patient_key(SECRET, nhs) for nhs in numbers]
    gen = Generator(args.patients, random.Random(16), keys)
    result: dict[str, Any] = {"benchmark": "scale", "patients": args.patients, "events": args.events,
                              "cache_entries": args.cache, "topic_prefix": topics.prefix,
                              "cpus": os.cpu_count()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        secret_file = Path(tmp) / "secret.hex"
        write_secret(secret_file, SECRET.hex().encode())
        door_settings, client_keys = deployment.api_door(Path(tmp) / "door", CLIENTS)
        port = free_port()
        env = {**os.environ, **deployment.core_env(), "CONSENT_TOPIC_PREFIX": topics.prefix, "CONSENT_STAGES": "api",
               "CONSENT_APP_ID": app_id, "CONSENT_HTTP_PORT": str(port),
               "CONSENT_PSEUDONYM_SECRET_FILE": str(secret_file),
               "CONSENT_API_VIEW_DIR": str(Path(tmp) / "views"), "CONSENT_API_VIEW_CACHE_ENTRIES": str(args.cache),
               **{f"CONSENT_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                  for k, v in door_settings.items()}}  # fmt: skip
        api = Api(deployment, env, port, client_keys, args.api_log)
        # the reports stage (issue 16) in its own process: the API's RSS stays the API's own
        reports_env = {**env, "CONSENT_STAGES": "reports", "CONSENT_HTTP_PORT": "0"}
        reports = Api(deployment, reports_env, port, client_keys, None)
        rss: dict[str, float] = {}
        produced = 0
        try:
            for share in (25, 50, 100):
                target = args.events * share // 100
                t = time.monotonic()
                await produce(operator, topics, gen, target - produced)
                produced = target
                print(f"preloaded {produced} events in {time.monotonic() - t:.1f}s", flush=True)
                if api.process is None:
                    await api.start()
                    await reports.start()
                accesses = gen.accesses
                t = time.monotonic()
                await api.until(partial(caught_up, events=produced, accesses=accesses))
                await asyncio.sleep(2)  # the last batch's rows are written after its appends
                rss[str(share)] = round(rss_mib(api.process.pid), 1)  # type: ignore[union-attr]
                print(f"api caught up at {share}% in {time.monotonic() - t:.1f}s rss={rss[str(share)]} MiB", flush=True)
            await api.stop()
            t = time.monotonic()
            await api.start()
            # ready = answering from caught-up views; decisions go as audit requests until the restarted instance
            # holds the audit log again (its appender resumes from the point it saved). Each is clocked on its own
            # from the same polls (a 503 "starting" answer says audit_holder too), so neither waits for the other.
            seen: dict[str, float] = {}

            def restarted(h: dict[str, Any]) -> bool:
                for what, reached in (("ready", h.get("status") == "ok"), ("holder", bool(h.get("audit_holder")))):
                    if reached:
                        seen.setdefault(what, time.monotonic() - t)
                return len(seen) == 2

            await api.until(restarted)
            restart_s = seen["ready"]
            rss["after_restart"] = round(rss_mib(api.process.pid), 1)  # type: ignore[union-attr]
            result["restart_to_audit_holder_s"] = round(seen["holder"], 2)
            print(f"restart to ready {restart_s:.1f}s, holding the audit log after "
                  f"{result['restart_to_audit_holder_s']:.1f}s", flush=True)  # fmt: skip
            result["reports_catch_up_s"] = round(await reports_counted(api, gen.disclosures), 1)
            health_before = await api.health_now()
            result["decisions"] = await decisions(api, numbers, args.rate, args.seconds, random.Random(7))
            # answers wait for their durable audit requests; the holder appends them behind. The queries are timed
            # once every answered decision is in the log and the access-log index, not against that backlog
            t = time.monotonic()
            await api.until(
                partial(audit_settled, entries=health_before["audit_next_index"] + result["decisions"]["answered"])
            )
            result["decisions"]["in_log_after_s"] = round(time.monotonic() - t, 2)
            result["queries"] = await queries(api, numbers[LOGGED], SITES, args.queries)
            rss["end"] = round(rss_mib(api.process.pid), 1)  # type: ignore[union-attr]
        finally:
            await api.stop()
            await reports.stop()
    q = result["queries"]
    result.update(
        rss_mib=max(rss.values()),
        rss_by_share_mib=rss,
        rss_growth_ratio=round(rss["100"] / rss["50"] - 1, 3),
        restart_s=round(restart_s, 2),
        decision_p99_ms=result["decisions"]["p99_ms"],
        access_log_p99_ms=q["access_log"]["p99_ms"],
        access_log_whole_p99_ms=q["access_log_whole"]["p99_ms"],
        report_p99_ms=max(v["p99_ms"] for k, v in q.items() if k.startswith("report_") and "uncached" not in k),
        report_uncached_p99_ms=max(v["p99_ms"] for k, v in q.items() if k.endswith("_uncached")),
        max_state_record_bytes=gen.max_state_bytes,
        max_request_bytes=MAX_REQUEST_BYTES,
        busy_patient_events=gen.states[BUSY].version if BUSY in gen.states else 0,
        access_log_entries=LOGGED_ACCESSES,
        access_log_page=PAGE,
        wall_s=round(time.monotonic() - started_at, 1),
    )
    result["goals"] = {k: {"target": v, "measured": result[k], "met": result[k] <= v} for k, v in GOALS.items()}
    return result


def report_section(r: dict[str, Any]) -> str:
    lines = [
        "## Scale (issue 16): `make bench-scale`",
        "",
        f"{r['patients']:,} patients, {r['events']:,} events (80% access records, 3% disclosures, 17% consent/"
        f"objection/shielding, 0.1% breaches; one patient with 1% of the events), state cache {r['cache_entries']:,}"
        f" entries; {r['cpus']} cores shared with other work; wall time {r['wall_s']} s.",
        "",
        "| goal | target | measured | met |",
        "|---|---|---|---|",
    ]
    for name, g in r["goals"].items():
        lines.append(f"| {name} | {g['target']} | {g['measured']} | {'yes' if g['met'] else 'NO'} |")
    lines += ["", f"RSS by share of events (MiB): {r['rss_by_share_mib']}", ""]
    lines += [
        f"Restart: ready (answering from caught-up views, decisions as audit requests) after {r['restart_s']} s; "
        f"holding the audit log again after {r.get('restart_to_audit_holder_s')} s (the appender resumes from the "
        "point it saved at stop and reads only the log after it).",
        "",
    ]
    d = r["decisions"]
    lines += [
        f"Decisions: {d['requests']:,} at {d['rate_per_s']:,}/s (open loop), {d.get('answered', '-')} answered "
        f"(statuses {d['statuses']}), p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms; each answered once its audit "
        f"record was durable; every one was in the log and its index {d.get('in_log_after_s', '-')} s after the "
        "last answer (the queries below were timed after that).",
        "",
    ]
    lines += [
        f"Access log: a page of {r.get('access_log_page')} of the {r['access_log_entries']:,} entries p99 "
        f"{r['access_log_p99_ms']} ms, all in one answer p99 {r.get('access_log_whole_p99_ms')} ms. Reports "
        f"from the reports stage's aggregates (caught up {r.get('reports_catch_up_s')} s after the API): p99 "
        f"{r['report_p99_ms']} ms as answered (a report's answer is reused while the aggregates are unchanged), "
        f"{r.get('report_uncached_p99_ms')} ms rendered anew on every request (Cache-Control: no-cache).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200,000 patients and 2,000,000 events")
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--cache", type=int, default=10_000, help="API state cache entries (cold for most patients)")
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--stack", default="scale")
    parser.add_argument("--kafka-port", type=int, default=int(os.environ.get("CONSENT_BENCH_KAFKA_PORT", "24592")))
    parser.add_argument("--mqtt-port", type=int, default=int(os.environ.get("CONSENT_BENCH_MQTT_PORT", "16583")))
    parser.add_argument("--keep-stack", action="store_true")
    parser.add_argument("--api-log", type=Path, default=None, help="the API's INFO log lines to this file")
    parser.add_argument("--out", type=Path, default=Path("bench/scale.json"))
    parser.add_argument("--report", type=Path, default=Path("bench/report.md"))
    args = parser.parse_args()
    args.patients = args.patients or (200_000 if args.quick else 1_000_000)
    args.events = args.events or (2_000_000 if args.quick else 10_000_000)
    args.seconds = args.seconds or (5.0 if args.quick else 30.0)
    stack = BenchStack.up(InfraConfig(name=args.stack, kafka_port=args.kafka_port, mqtt_port=args.mqtt_port))
    try:
        result = asyncio.run(run(args, stack.deployment))
    finally:
        if stack.started_here and not args.keep_stack:
            stack.infra.down()
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    section = report_section(result)
    previous = args.report.read_text() if args.report.exists() else ""
    head, marker, _ = previous.partition("## Scale (issue 16)")
    args.report.write_text((head if marker else previous).rstrip() + "\n\n" + section)


if __name__ == "__main__":
    main()
