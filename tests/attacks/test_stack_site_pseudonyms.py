"""Issue 12 item 11 on the real Kafka: a compromised site holding only its site secret cannot write under, nor
compute, another site's or the national pseudonym. Each such event is dead-lettered ``INVALID_PATIENT_KEY`` by
the core's verifier, honest agents lose nothing (lost = 0) and the hostile agent's own later events flow on.

(The in-process twin, test_site_pseudonyms.py, checks the rule's edges and the key derivation's properties.)
"""

from __future__ import annotations

import pytest

from consent_rules.state import PatientState
from consent_wire.identity import patient_key
from consent_wire.signing import VerifiedEvent, decode_verified_event
from consent_wire.site_pseudonyms import site_patient_key, site_secret
from tests.factories import BASE_MS as T
from tests.factories import NATIONAL_SECRET, PSEUDONYMS, SimAgent, consent, nhs_number, patient, site_key
from tests.integration.pipeline.conftest import Harness, latest_by_key

pytestmark = pytest.mark.integration

HOSTILE, VICTIM = "VM1001", "A81001"


async def test_a_compromised_site_cannot_write_under_another_sites_or_the_national_pseudonym(harness: Harness) -> None:
    hostile, honest = SimAgent.create(site=HOSTILE), SimAgent.create(site=VICTIM)
    await harness.register(hostile, honest)
    await harness.start_core(stages="verifier,reconciler")
    nhs = nhs_number(4242)
    national = patient(4242)
    # what the compromised site holds: its own secret (and, at worst, the NHS numbers of people it serves)
    own = site_secret(NATIONAL_SECRET, HOSTILE)
    computable = {site_patient_key(own, nhs), patient_key(own, nhs)}
    victims = site_key(VICTIM, national)  # A's pseudonym of the person, e.g. stolen from A's feed
    assert not computable & {victims, national}  # it cannot compute A's key nor the national one

    forged = [
        hostile.event(victims, consent(), T, as_signed=True),  # writes under the victim site's pseudonym
        hostile.event(national, consent(), T + 1, as_signed=True),  # under the national pseudonym
        hostile.event(patient_key(own, nhs), consent(), T + 2, as_signed=True),  # its secret used as if national
    ]
    own_events = [hostile.event(patient(4243), consent(), T + 3 + i) for i in range(2)]  # its own patients: fine
    await harness.send(hostile, [hostile.batch([*forged, *own_events])])
    await harness.send(honest, [honest.batch([honest.event(patient(4300 + i), consent(), T + i) for i in range(5)])])

    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 3)
    assert sorted(dict(r.headers)["reason"].decode() for r in letters) == ["INVALID_PATIENT_KEY"] * 3
    assert sorted(r.value for r in letters) == sorted(forged)  # each event alone, never its batch
    assert not any(k.encode() in dict(r.headers)["message"] for r in letters for k in (victims, national))

    records = await harness.read(harness.topics.events, lambda rs: len(rs) >= 7)
    accepted: list[VerifiedEvent] = [decode_verified_event(r.value) for r in records]
    assert {(ve.agent_id, ve.event.seq) for ve in accepted} == {
        *((hostile.agent_id, s) for s in (4, 5)),
        *((honest.agent_id, s) for s in range(1, 6)),
    }  # lost = 0; the hostile agent's partition flows on past its forgeries
    for ve in accepted:  # forwarded under the national pseudonym, the site's own one kept beside the signed bytes
        assert ve.event.patient_key == PSEUDONYMS.to_national(ve.event.site, ve.site_key)
        assert ve.site_key == site_key(ve.event.site, ve.event.patient_key)
    assert {r.key for r in records} == {patient(4243).encode(), *(patient(4300 + i).encode() for i in range(5))}

    states = latest_by_key(await harness.read(harness.topics.state, lambda rs: len(latest_by_key(rs)) >= 6))
    assert national.encode() not in states  # no forged event reached the person's state
    assert PatientState.from_bytes(states[patient(4243).encode()]).version == 2
