"""Issue 12 item 6: event clocks are bounded by arrival time; key validity is decided by arrival time."""

from __future__ import annotations

import uuid
from hashlib import sha256

from broker.verifier import MAX_FUTURE_MS, MAX_PAST_MS, VerifierCore
from consent_wire.authority import grantable
from consent_wire.avro_codec import encode_event
from consent_wire.codes import ShieldingAction
from consent_wire.dsse import AgentSigner
from consent_wire.keys import ROTATION_GRACE_MS, KeyRegistry, OperatorRoot
from consent_wire.model import Event
from tests.factories import BASE_MS, SimAgent, consent, patient, shielding

HLC_MAX = 2**63 - 1
YEAR_MS = 365 * 24 * 3600 * 1000


def _setup() -> tuple[OperatorRoot, KeyRegistry, SimAgent]:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create()
    registry.apply(agent.register(root))
    return root, registry, agent


def _stamped(agent: SimAgent, payload_hlc: int, recorded_ms: int) -> bytes:
    agent.seq += 1
    event = Event(
        uuid.uuid4().hex,
        agent.agent_id,
        agent.site,
        agent.seq,
        agent.last_hash,
        payload_hlc,
        recorded_ms,
        patient(1),
        shielding(ShieldingAction.CLEAR),
    )
    data = encode_event(event)
    agent.last_hash = sha256(data).digest()
    return data


def test_clear_stamped_with_hlc_2_63_minus_1_is_dead_lettered_as_clock_skew() -> None:
    _, registry, agent = _setup()
    core = VerifierCore(registry)
    result = core.process(agent.batch([_stamped(agent, HLC_MAX, BASE_MS)]), 0, BASE_MS)
    assert result.accepted == []
    assert [d.reason for d in result.rejected] == ["CLOCK_SKEW"]


def test_hlc_just_beyond_the_future_bound_is_clock_skew_and_just_within_is_accepted() -> None:
    _, registry, agent = _setup()
    core = VerifierCore(registry)
    within = agent.batch([_stamped(agent, (BASE_MS + MAX_FUTURE_MS) << 16, BASE_MS)])
    assert len(core.process(within, 0, BASE_MS).accepted) == 1
    beyond = agent.batch([_stamped(agent, (BASE_MS + MAX_FUTURE_MS + 1) << 16, BASE_MS)])
    assert [d.reason for d in core.process(beyond, 1, BASE_MS).rejected] == ["CLOCK_SKEW"]


def test_events_stamped_before_the_past_bound_are_clock_skew() -> None:
    _, registry, agent = _setup()
    core = VerifierCore(registry)
    old = BASE_MS - MAX_PAST_MS - 1
    result = core.process(agent.batch([_stamped(agent, old << 16, old)]), 0, BASE_MS)
    assert [d.reason for d in result.rejected] == ["CLOCK_SKEW"]


def test_revoked_keys_back_dated_events_arriving_71_hours_after_revocation_are_refused() -> None:
    root, registry, agent = _setup()
    registry.apply(root.revoke(agent.agent_id, agent.signer.public_key_bytes, BASE_MS))
    back_dated = agent.batch([agent.event(patient(1), consent(), BASE_MS - 3_600_000)])
    result = VerifierCore(registry).process(back_dated, 0, BASE_MS + 71 * 3_600_000)
    assert [d.reason for d in result.rejected] == ["REVOKED_KEY"]


def test_rotated_out_keys_back_dated_events_a_year_later_are_refused() -> None:
    root, registry, agent = _setup()
    new = AgentSigner.generate(agent.agent_id)
    registry.apply(
        root.rotate(agent.signer, new.public_key_bytes, BASE_MS, site=agent.site, capabilities=grantable(agent.site))
    )
    back_dated = agent.batch([agent.event(patient(1), consent(), BASE_MS - 60_000)])  # signed by the old key
    result = VerifierCore(registry).process(back_dated, 0, BASE_MS + YEAR_MS)
    assert [d.reason for d in result.rejected] == ["ROTATED_OUT_KEY"]


def test_batch_signed_before_a_rotation_and_in_flight_within_the_grace_is_accepted() -> None:
    root, registry, agent = _setup()
    registry.apply(
        root.rotate(
            agent.signer,
            AgentSigner.generate(agent.agent_id).public_key_bytes,
            BASE_MS,
            site=agent.site,
            capabilities=grantable(agent.site),
        )
    )
    batch = agent.batch([agent.event(patient(1), consent(), BASE_MS - 60_000)])
    assert len(VerifierCore(registry).process(batch, 0, BASE_MS + ROTATION_GRACE_MS - 1).accepted) == 1


def test_honest_backlog_recorded_before_a_rotation_and_signed_after_it_is_accepted() -> None:
    root, registry, agent = _setup()
    new = AgentSigner.generate(agent.agent_id)
    registry.apply(
        root.rotate(agent.signer, new.public_key_bytes, BASE_MS, site=agent.site, capabilities=grantable(agent.site))
    )
    events = [agent.event(patient(i), consent(), BASE_MS - 3_600_000 + i) for i in range(3)]
    agent.signer = new  # the agent re-signs its outbox backlog with its current key
    result = VerifierCore(registry).process(agent.batch(events), 0, BASE_MS + YEAR_MS // 2)
    assert [ve.event.seq for ve in result.accepted] == [1, 2, 3]
