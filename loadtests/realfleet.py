"""Real edge agents (edge_agent.app.Agent) next to the synthetic load: latency from acknowledged submission.

Each agent runs in this process with its own SQLite outbox, HTTP API, publisher and replica follower.
Submissions go over HTTP (``POST /v1/events``); the 202 reply is the acknowledgement the clinical
system sees, and the clock starts there. Every submission names a patient of its own, so its state
record (and, for a shielding flag, its shielding record and the agent's replica row) marks arrival.
Loss and duplication are checked against each agent's outbox: seq numbers handed out, all
acknowledged end to end, and every event on the events topic exactly once.

On a secure stack each agent connects with its own certificate (CN = agent id) and the Kafka ACLs the table
gives an agent on the run's prefix, and every submission carries the agent API's bearer token. An agent on
Kafka may then only write ingress (issue 11: no agent reads the whole state topic), so replica latency is
measured where a site's replica feed exists: on the MQTT gateways, fed by the core's mirror stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from broker.topics import TopicNames
from consent_wire.authority import grantable
from consent_wire.identity import patient_key
from consent_wire.keys import OperatorRoot
from edge_agent.api_auth import generate_token_file
from edge_agent.app import Agent
from edge_agent.config import Settings
from edge_agent.replica import ReplicaKind
from edge_agent.wire import generate_signing_key
from loadtests.agents import BENCH_NATIONAL_SECRET, BENCH_PSEUDONYMS
from loadtests.coreproc import CoreEnv, free_port
from loadtests.latency import LatencyRecorder
from loadtests.plan import AgentKind, BenchPlan
from loadtests.probe import ArrivalProbe
from loadtests.stack import BenchStack

__all__ = ["RealFleet", "nhs_numbers"]

SECRET = BENCH_NATIONAL_SECRET  # the bench stacks' national pseudonym secret (agents hold their sites' only)
_SITES = {AgentKind.GP_PRACTICE: "A81", AgentKind.CARE_HOME: "VM1", AgentKind.GATEWAY: "RGX"}


def nhs_numbers(start: int, count: int) -> list[str]:
    """Modulus-11-valid NHS numbers from the 9-digit stem ``start`` upwards (NHS Data Dictionary)."""
    out: list[str] = []
    stem = start
    while len(out) < count:
        digits = f"{stem:09d}"
        total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = (11 - total % 11) % 11
        if check != 10:
            out.append(digits + str(check))
        stem += 1
    return out


@dataclass
class _Member:
    kind: AgentKind
    agent_id: str
    site: str
    directory: Path
    public_key: bytes
    numbers: list[str]
    agent: Agent | None = None
    submitted: int = 0
    failed: int = 0
    token: str = ""  # the agent API's bearer token
    replica_fed: bool = False  # does this agent's replica receive its site's records here?

    def key(self, nhs: str) -> str:
        """The core's (national) pseudonym of the person."""
        return patient_key(SECRET, nhs)

    def site_key(self, nhs: str) -> str:
        """This agent's site's pseudonym of the person (its replica's key)."""
        return BENCH_PSEUDONYMS.for_site(self.site, nhs)


@dataclass
class RealFleet:
    """One run's real agents (a fresh instance per run: agents, outboxes and ids are per run)."""

    plan: BenchPlan
    workdir: Path
    label: str
    with_bridge: bool
    members: list[_Member] = field(default_factory=list)
    e2e: LatencyRecorder = field(default_factory=LatencyRecorder)
    shielding_sub: LatencyRecorder = field(default_factory=LatencyRecorder)
    shielding_replica: LatencyRecorder = field(default_factory=LatencyRecorder)
    _replica_wait: dict[str, float] = field(default_factory=dict)
    _probe: ArrivalProbe | None = None
    _names: TopicNames | None = None
    _stem: int = 400_000_000

    def __post_init__(self) -> None:
        gateways = self.with_bridge and self.plan.real_gateways
        # the bridge carries the gateways' submissions; the mirror feeds their sites' replicas
        self.extra_stages: tuple[str, ...] = ("bridge", "mirror") if gateways else ()

    def _gateways(self) -> int:
        return self.plan.real_gateways

    def _kinds(self) -> list[AgentKind]:
        kinds = [k for k, n in self.plan.real_agents for _ in range(n)]
        return kinds + ([AgentKind.GATEWAY] * self._gateways() if self.with_bridge else [])

    def registrations(self, root: OperatorRoot) -> list[bytes]:
        per_agent = int(self.plan.real_rate_per_agent * self.plan.paced_seconds * 2 + 200)
        regs = []
        for i, kind in enumerate(self._kinds()):
            agent_id = f"real-{self.label}-{kind.value[:4]}-{i}"
            directory = self.workdir / agent_id
            directory.mkdir(parents=True)
            public = generate_signing_key(directory / "signing.pem")
            numbers = nhs_numbers(self._stem + i * per_agent * 2, per_agent)
            member = _Member(kind, agent_id, f"{_SITES[kind]}{i:03d}", directory, public, numbers)
            (directory / "patients.txt").write_text("\n".join(member.site_key(n) for n in numbers) + "\n")
            self.members.append(member)
            regs.append(root.register(agent_id, public, 0, site=member.site, capabilities=grantable(member.site)))
        return regs

    def principals(self) -> list[tuple[str, str]]:
        return [(m.agent_id, m.site) for m in self.members]

    def _settings(self, m: _Member, names: TopicNames, core: CoreEnv, stack: BenchStack) -> Settings:
        token_file = m.directory / "api-token"
        m.token = generate_token_file(token_file).decode()
        security: dict[str, Any] = dict(stack.deployment.agent_settings(m.agent_id, m.site))
        return Settings(
            agent_id=m.agent_id,
            site=m.site,
            data_dir=m.directory,
            signing_key_file=m.directory / "signing.pem",
            transport="mqtt" if m.kind is AgentKind.GATEWAY else "kafka",
            kafka_bootstrap=core.bootstrap,
            ingress_topic=names.ingress,
            state_topic=names.state,
            shielding_topic=names.shielding,
            mqtt_host=core.mqtt_host,
            mqtt_port=core.mqtt_port,
            http_port=free_port(),
            ack_timeout_s=10.0,
            backoff_cap_s=2.0,
            patients_file=m.directory / "patients.txt",
            api_token_file=token_file,
            core_public_key_hex=core.core_public_key_hex,
            **security,
        )

    async def start(self, names: TopicNames, core: CoreEnv, probe: ArrivalProbe, stack: BenchStack) -> None:
        self._probe, self._names = probe, names
        for m in self.members:
            # every site's replica is fed by the mirror (Kafka: its own site feed; MQTT: retained per site)
            m.replica_fed = "mirror" in self.extra_stages
            m.agent = await Agent.start(self._settings(m, names, core, stack))
            self._watch_replica(m.agent)

    def _watch_replica(self, agent: Agent) -> None:
        waiting = self._replica_wait
        recorder = self.shielding_replica

        def stored(kind: ReplicaKind, key: str) -> None:  # once the replica's transaction holding it committed
            origin = waiting.pop(key, None) if kind is ReplicaKind.SHIELDING else None
            if origin is not None:
                recorder.record((time.perf_counter() - origin) * 1000.0)

        agent.replica.on_change = stored

    async def run(self, duration_s: float) -> None:
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(self._drive(session, m, duration_s) for m in self.members))

    async def _drive(self, session: aiohttp.ClientSession, m: _Member, duration_s: float) -> None:
        assert m.agent is not None and self._probe is not None and self._names is not None
        plan = self.plan
        interval = 1.0 / plan.real_rate_per_agent
        shield_every = max(
            1, round(plan.real_rate_per_agent * len(self.members) / max(0.1, plan.shielding_probes_per_s))
        )
        url = f"http://127.0.0.1:{m.agent.settings.http_port}/v1/events"
        headers = {"Authorization": f"Bearer {m.token}"}
        start = time.perf_counter()
        k = 0
        while time.perf_counter() - start < duration_s and k < len(m.numbers):
            nhs = m.numbers[k]
            shielding = k % shield_every == shield_every - 1
            body = _shielding_body(nhs) if shielding else _consent_body(nhs, k)
            async with session.post(url, json=body, headers=headers) as resp:
                acked = time.perf_counter()
                ok = resp.status == 202
                await resp.read()
            k += 1
            if not ok:
                m.failed += 1
                continue
            m.submitted += 1
            key = m.key(nhs)
            self._probe.expect(self._names.state, key, acked, self.e2e)
            if shielding:
                self._probe.expect(self._names.shielding, key, acked, self.shielding_sub)
                if m.replica_fed:
                    self._replica_wait[m.site_key(nhs)] = acked  # its replica keys it by its site's pseudonym
            await asyncio.sleep(max(0.0, start + k * interval - time.perf_counter()))

    def expected_event_keys(self) -> dict[str, int]:
        return {m.key(n): 1 for m in self.members for n in m.numbers[: m.submitted + m.failed]}

    async def finish(self, timeout_s: float) -> None:
        """Wait for every outbox to be acknowledged end to end and the replicas to catch up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pending = 0
            for m in self.members:
                if m.agent is not None:
                    pending += (await m.agent.outbox.stats()).pending
            if pending == 0 and not self._replica_wait:
                return
            await asyncio.sleep(0.1)

    def summary(self) -> dict[str, Any]:
        return {
            "e2e_ms": self.e2e.summary().to_json(),
            "shielding_subscriber_ms": self.shielding_sub.summary().to_json(),
            "shielding_replica_ms": self.shielding_replica.summary().to_json(),
            "shielding_replica_from": sorted(m.kind.value for m in self.members if m.replica_fed),
        }

    async def outbox_report(self) -> dict[str, Any]:
        rows = []
        for m in self.members:
            stats = await m.agent.outbox.stats() if m.agent is not None else None
            rows.append(
                {
                    "agent": m.agent_id,
                    "kind": m.kind.value,
                    "submitted": m.submitted,
                    "refused": m.failed,
                    "outbox_last_seq": stats.next_seq - 1 if stats else None,
                    "outbox_acked_seq": stats.acked_seq if stats else None,
                    "outbox_pending": stats.pending if stats else None,
                }
            )
        return {"agents": rows, "replica_outstanding": len(self._replica_wait)}

    async def stop(self) -> None:
        for m in self.members:
            if m.agent is not None:
                with contextlib.suppress(Exception):
                    await m.agent.stop()


def _consent_body(nhs: str, k: int) -> dict[str, Any]:
    directive = "OPTOUT" if k % 4 == 0 else "OPTIN"
    return {
        "type": "consent_decision",
        "nhs_number": nhs,
        "payload": {"directive": directive, "purpose": "HRESCH", "data_class": "ALL", "recipient": "*"},
    }


def _shielding_body(nhs: str) -> dict[str, Any]:
    return {
        "type": "shielding_flag",
        "nhs_number": nhs,
        "payload": {
            "action": "SET",
            "hides": ["LOCATION", "CONTACT"],
            "set_by_role": "SAFEGUARDING_LEAD",
            "reason": "CHILD_PROTECTION",
        },
    }
