"""Synthetic agents: chained, signed batches built exactly as an edge agent builds them, made ahead of time.

Signing and encoding happen before the measured window, so the load generator costs almost
nothing while it runs (it only hands bytes to a Kafka producer). Every event about a patient uses a
patient key of its own within a run, so the arrival of a state record under that key marks the
arrival of that one event, and the events topic can be checked for loss and duplication by key.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256

from consent_wire.authority import grantable
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
from consent_wire.dsse import AgentSigner
from consent_wire.keys import OperatorRoot
from consent_wire.model import (
    AccessRecord,
    BreachReport,
    ConsentDecision,
    Event,
    Objection,
    Payload,
    ShieldingFlag,
)
from consent_wire.signing import sign_batch
from loadtests.agents import BENCH_PSEUDONYMS, bench_nhs
from loadtests.plan import AgentKind, BenchPlan, EventKind, KindSpec

__all__ = ["SynthAgent", "SynthBatch", "SynthFleet", "build_fleet", "event_topic_key", "patient_key_for"]

_SITE_PREFIX = {AgentKind.GP_PRACTICE: "A8", AgentKind.CARE_HOME: "VM", AgentKind.GATEWAY: "RGW"}
_STATEFUL = frozenset({EventKind.CONSENT, EventKind.OBJECTION, EventKind.SHIELDING})


def patient_key_for(tag: str, n: int) -> str:
    """The national pseudonym (under the bench stacks' national secret) of patient ``n`` of run ``tag``."""
    return BENCH_PSEUDONYMS.national(_nhs_for(tag, n))


def _nhs_for(tag: str, n: int) -> str:
    """A valid NHS number unique per (run tag, n) for n < 10**8 (from an offset given by the tag's hash)."""
    offset = int.from_bytes(sha256(tag.encode()).digest()[:4], "big")
    return bench_nhs((offset + n) % 10**8)


def event_topic_key(patient_key: str, site: str) -> str:
    """The events-topic key the verifier writes (broker/pipeline.py VerifierLogic.process)."""
    return patient_key or f"site:{site}"


@dataclass(frozen=True, slots=True)
class SynthBatch:
    agent_id: str
    data: bytes
    count: int
    state_keys: tuple[str, ...]  # patient keys whose state record marks arrival of one event each
    shielding_keys: tuple[str, ...]  # subset of state_keys: shielding SETs
    event_keys: tuple[str, ...]  # events-topic key of every event in the batch


@dataclass
class SynthAgent:
    spec: KindSpec
    agent_id: str
    site: str
    signer: AgentSigner
    offline: bool
    seq: int = 0
    last_hash: bytes = bytes(32)
    last_hlc: int = 0
    batches: list[SynthBatch] = field(default_factory=list)

    def event(self, patient_key: str, payload: Payload, at_ms: int) -> bytes:
        self.seq += 1
        hlc = max(at_ms << 16, self.last_hlc + 1)
        self.last_hlc = hlc
        event = Event(
            uuid.uuid4().hex, self.agent_id, self.site, self.seq, self.last_hash, hlc, at_ms, patient_key, payload
        )
        data = encode_event(event)
        self.last_hash = sha256(data).digest()
        return data

    @property
    def events(self) -> int:
        return sum(b.count for b in self.batches)


@dataclass
class SynthFleet:
    tag: str
    agents: list[SynthAgent]

    @property
    def events(self) -> int:
        return sum(a.events for a in self.agents)

    def registrations(self, root: OperatorRoot) -> list[bytes]:
        return [
            root.register(a.agent_id, a.signer.public_key_bytes, 0, site=a.site, capabilities=grantable(a.site))
            for a in self.agents
        ]

    def expected_event_keys(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for agent in self.agents:
            for batch in agent.batches:
                for key in batch.event_keys:
                    counts[key] = counts.get(key, 0) + 1
        return counts


def _payload(kind: EventKind, rng: random.Random, site: str) -> Payload:
    if kind is EventKind.CONSENT:
        directive = ConsentDirective.OPTOUT if rng.random() < 0.3 else ConsentDirective.OPTIN
        return ConsentDecision(
            directive, rng.choice((PurposeOfUse.HRESCH, PurposeOfUse.TREAT)), DataClass.ALL, "*", None, None, "GP"
        )
    if kind is EventKind.OBJECTION:
        return Objection(rng.choice((ObjectionKind.NDOP, ObjectionKind.TYPE1)), ObjectionAction.REGISTER, ())
    if kind is EventKind.SHIELDING:
        return ShieldingFlag(
            ShieldingAction.SET, (HiddenField.LOCATION, HiddenField.CONTACT), "SAFEGUARDING_LEAD", "CHILD_PROTECTION"
        )
    if kind is EventKind.BREACH:
        return BreachReport(
            site,
            BreachSeverity.LEVEL_1,
            "DISCLOSED_IN_ERROR",
            "letter sent to wrong address",
            "retrieved and staff retrained",
            True,
            1,
        )
    return AccessRecord(
        f"staff-{rng.randrange(1000)}",
        site,
        "GP",
        True,
        Relationship.LEGITIMATE,
        PurposeOfUse.TREAT,
        (DataClass.GENERAL,),
    )


def _new_agents(plan: BenchPlan, tag: str, rng: random.Random) -> list[SynthAgent]:
    agents: list[SynthAgent] = []
    for spec in plan.fleet:
        offline_count = round(spec.count * spec.offline_fraction)
        for i in range(spec.count):
            agent_id = f"bench-{tag}-{spec.kind.value[:4]}-{i}"
            site = f"{_SITE_PREFIX[spec.kind]}{1000 + i}"
            agents.append(SynthAgent(spec, agent_id, site, AgentSigner.generate(agent_id), i < offline_count))
    return agents


def _fill(agent: SynthAgent, events: int, next_patient: Callable[[], str], rng: random.Random, at_ms: int) -> None:
    kinds = [k for k, _ in agent.spec.mix]
    weights = [w for _, w in agent.spec.mix]
    remaining = events
    while remaining > 0:
        size = min(agent.spec.batch_events, remaining)
        encoded: list[bytes] = []
        state_keys: list[str] = []
        shielding_keys: list[str] = []
        event_keys: list[str] = []
        for kind in rng.choices(kinds, weights, k=size):
            nhs = "" if kind is EventKind.BREACH else next_patient()
            key = BENCH_PSEUDONYMS.national(nhs) if nhs else ""  # what the core keys the event by
            sent = BENCH_PSEUDONYMS.for_site(agent.site, nhs) if nhs else ""  # the site's pseudonym, as signed
            encoded.append(agent.event(sent, _payload(kind, rng, agent.site), at_ms))
            event_keys.append(event_topic_key(key, agent.site))
            if kind in _STATEFUL:
                state_keys.append(key)
            if kind is EventKind.SHIELDING:
                shielding_keys.append(key)
        data = sign_batch(agent.signer, encoded)
        agent.batches.append(
            SynthBatch(agent.agent_id, data, size, tuple(state_keys), tuple(shielding_keys), tuple(event_keys))
        )
        remaining -= size


def build_fleet(plan: BenchPlan, tag: str, total_events: int, at_ms: int, seed: int = 7) -> SynthFleet:
    """Sign ``total_events`` spread over the fleet by each kind's share of the load."""
    rng = random.Random(seed)
    agents = _new_agents(plan, tag, rng)
    counter = iter(range(1 << 62))

    def next_patient() -> str:
        return _nhs_for(tag, next(counter))

    for spec in plan.fleet:
        members = [a for a in agents if a.spec is spec]
        per_agent = max(1, round(total_events * spec.share / max(1, len(members))))
        for agent in members:
            _fill(agent, per_agent, next_patient, rng, at_ms)
    return SynthFleet(tag, agents)
