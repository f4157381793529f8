"""Issue 12 item 11: a compromised site cannot re-identify, nor write under, another site's or the national pseudonym.

In-process (the verifier's pure core with the core's :class:`CorePseudonyms`);
``test_stack_site_pseudonyms.py`` replays the attack on the real stack.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.verifier import VerifierCore
from consent_wire.errors import InvalidPatientKeyError
from consent_wire.identity import patient_key
from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.signing import decode_verified_event, encode_verified_event, verify_event_proof
from consent_wire.site_pseudonyms import open_site_key, site_patient_key, site_secret
from tests.factories import BASE_MS, NATIONAL_SECRET, PSEUDONYMS, SimAgent, consent, nhs_number, patient, site_key


def _setup(site: str = "A81001") -> tuple[VerifierCore, SimAgent, KeyRegistry]:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create(site=site)
    registry.apply(agent.register(root))
    return VerifierCore(registry, pseudonyms=PSEUDONYMS), agent, registry


def test_an_honest_sites_pseudonym_is_forwarded_under_the_national_one_and_still_verifies() -> None:
    core, agent, registry = _setup()
    result = core.process(agent.batch([agent.event(patient(1), consent(), BASE_MS)]), 0, BASE_MS + 10)
    (ve,) = result.accepted
    assert (ve.event.patient_key, ve.site_key) == (patient(1), site_key("A81001", patient(1)))
    again = decode_verified_event(encode_verified_event(ve))  # as the events topic carries it
    assert (again.event, again.site_key) == (ve.event, ve.site_key)
    verify_event_proof(again, registry)  # the signed bytes (with the site's key) still prove the event


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(lambda: patient(2), id="national pseudonym"),
        pytest.param(lambda: site_key("B82002", patient(2)), id="another site's pseudonym"),
        pytest.param(lambda: "0" * 32, id="made-up key"),
        pytest.param(lambda: "not-a-key", id="not hex"),
    ],
)
def test_an_event_keyed_by_anything_but_its_sites_pseudonym_is_invalid_patient_key_and_the_chain_flows(
    forged: object,
) -> None:
    core, agent, _ = _setup()
    key = forged()  # type: ignore[operator]
    first = agent.event(patient(1), consent(), BASE_MS)
    bad = agent.event(key, consent(), BASE_MS + 1, as_signed=True)
    result = core.process(agent.batch([first, bad]), 0, BASE_MS + 10)
    after = core.process(agent.batch([agent.event(patient(3), consent(), BASE_MS + 2)]), 1, BASE_MS + 10)
    assert [(d.reason, d.data) for d in result.rejected] == [("INVALID_PATIENT_KEY", bad)]  # the event alone
    assert [ve.event.seq for ve in result.accepted + after.accepted] == [1, 3]  # lost = 0, the agent still flows
    assert [ve.event.patient_key for ve in result.accepted + after.accepted] == [patient(1), patient(3)]
    assert all(key not in d.message for d in result.rejected)  # the reason never repeats the pseudonym


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=10**6))
def test_a_compromised_site_holding_its_secret_cannot_produce_another_sites_or_the_national_pseudonym(n: int) -> None:
    """With only its site secret (and even the NHS number), site A computes nothing that is B's or the national key."""
    nhs = nhs_number(n)
    mine = site_secret(NATIONAL_SECRET, "A81001")
    theirs, national = PSEUDONYMS.for_site("B82002", nhs), patient_key(NATIONAL_SECRET, nhs)
    attempts = {site_patient_key(mine, nhs), patient_key(mine, nhs)}
    assert not attempts & {theirs, national}
    with pytest.raises(InvalidPatientKeyError):
        open_site_key(mine, theirs)  # nor reverse another site's pseudonym seen on the wire
