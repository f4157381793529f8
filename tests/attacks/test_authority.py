"""Issue 12 item 5: authority is not free text. A key records only for its registered site, within its capabilities.

In-process (the verifier's pure core); ``test_stack_attacks.py`` replays the site forgery on the real stack.
"""

from __future__ import annotations

from broker.verifier import VerifierCore
from consent_wire.avro_codec import encode
from consent_wire.codes import Capability, ObjectionKind, PurposeOfUse, Relationship, ShieldingAction
from consent_wire.dsse import KEY_PAYLOAD_TYPE, key_id, seal_envelope
from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.model import AccessRecord, Payload
from tests.factories import BASE_MS, SimAgent, consent, objection, patient, shielding


def _setup(site: str = "A81001", capabilities: tuple[Capability, ...] | None = None) -> tuple[VerifierCore, SimAgent]:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create(site=site)
    registry.apply(agent.register(root, capabilities=capabilities))
    return VerifierCore(registry), agent


def _access(organisation: str) -> Payload:
    return AccessRecord("staff-9", organisation, "GP", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT, ())


def _run(core: VerifierCore, agent: SimAgent, hostile: Payload, *, site: str | None = None) -> tuple[list[str], int]:
    """An honest event, the hostile one (optionally claiming another site), another honest one: reasons, accepted."""
    honest_site = agent.site
    first = agent.event(patient(1), consent(), BASE_MS)
    if site is not None:
        agent.site = site
    bad = agent.event(patient(2), hostile, BASE_MS + 1)
    agent.site = honest_site
    result = core.process(agent.batch([first, bad]), 0, BASE_MS + 10)
    after = core.process(agent.batch([agent.event(patient(3), consent(), BASE_MS + 2)]), 1, BASE_MS + 10)
    assert [d.data for d in result.rejected] == [bad]  # the event alone, never its neighbours
    assert [ve.event.seq for ve in result.accepted + after.accepted] == [1, 3]  # lost = 0, the agent still flows
    return [d.reason for d in result.rejected], core.cursors[agent.agent_id].next_seq


def test_an_event_claiming_another_site_is_dead_lettered_site_mismatch() -> None:
    core, agent = _setup()
    assert _run(core, agent, consent(), site="B82001") == (["SITE_MISMATCH"], 4)


def test_a_fake_access_log_entry_for_another_organisation_is_site_mismatch() -> None:
    core, agent = _setup()
    assert _run(core, agent, _access("RXX"))[0] == ["SITE_MISMATCH"]


def test_shielding_set_without_the_capability_is_capability_denied() -> None:
    core, agent = _setup(capabilities=(Capability.CONSENT,))
    assert _run(core, agent, shielding(ShieldingAction.SET))[0] == ["CAPABILITY_DENIED"]


def test_shielding_clear_needs_its_own_capability() -> None:
    core, agent = _setup(capabilities=(Capability.CONSENT, Capability.SHIELDING_SET))
    assert _run(core, agent, shielding(ShieldingAction.CLEAR))[0] == ["CAPABILITY_DENIED"]


def test_a_type1_objection_from_a_care_home_key_is_capability_denied() -> None:
    core, agent = _setup(site="VM1001")  # every capability a care home may hold
    assert _run(core, agent, objection(ObjectionKind.TYPE1))[0] == ["CAPABILITY_DENIED"]


def test_a_type1_objection_from_a_gp_practice_key_is_accepted() -> None:
    core, agent = _setup(site="A81001")
    batch = agent.batch([agent.event(patient(1), objection(ObjectionKind.TYPE1), BASE_MS)])
    assert len(core.process(batch, 0, BASE_MS).accepted) == 1


def test_a_site_less_v1_registration_may_record_nothing() -> None:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create()
    record = {
        "action": "REGISTER",
        "agent_id": agent.agent_id,
        "key_id": key_id(agent.signer.public_key_bytes),
        "public_key": agent.signer.public_key_bytes,
        "effective_ms": 0,
        "endorsement": b"",
    }
    registry.apply(seal_envelope(root.signer, KEY_PAYLOAD_TYPE, encode("KeyEvent", record, version=1)))
    core = VerifierCore(registry)
    result = core.process(agent.batch([agent.event(patient(1), consent(), BASE_MS)]), 0, BASE_MS)
    assert [d.reason for d in result.rejected] == ["CAPABILITY_DENIED"]
    assert result.accepted == []
    assert core.cursors[agent.agent_id].next_seq == 2  # authentic and in sequence: the chain moves on
