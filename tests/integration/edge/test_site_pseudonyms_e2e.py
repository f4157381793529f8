"""Issue 12 item 11 end to end on the real stack: each site knows a person only by its own pseudonym.

Site A (a GP's agent over Kafka) records a national data opt-out for a person site B (a remote-monitoring
gateway over MQTT) also cares for. B's replica and B's Kafka feed carry the change under B's pseudonym
only (never A's, never the national one), and the core's API, asked by NHS number, answers from the
same state.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from broker.api import ApiService
from consent_rules.state import PatientState
from edge_agent.app import Agent
from tests.integration.api.test_api_service import CLIENTS, Api, Door, researcher, until
from tests.integration.edge.conftest import EdgeKit, http_post, nhs_numbers
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration

SITE_A, SITE_B = "A81001", "G81001"
_CARE = {
    "type": "consent_decision",
    "payload": {"directive": "OPTIN", "purpose": "TREAT", "data_class": "ALL", "recipient": "*",
                "recorded_by_role": "GP"},
}  # fmt: skip
_NDOP = {"type": "objection", "payload": {"kind": "NDOP", "action": "REGISTER", "exemptions": []}}


async def test_a_consent_recorded_at_site_a_reaches_site_b_under_bs_pseudonym_and_the_api_agrees(
    harness: Harness, kit: EdgeKit, tmp_path: Path
) -> None:
    (nhs,) = nhs_numbers(1, start=972_000_000)
    key_a, key_b, national = kit.site_key(SITE_A, nhs), kit.site_key(SITE_B, nhs), kit.national_key(nhs)
    assert len({key_a, key_b, national}) == 3
    door = Door(harness.deployment, *harness.deployment.api_door(tmp_path / "door", CLIENTS))
    core = await harness.start_core(stages="verifier,reconciler,bridge,mirror,api", http_port=0, **door.settings)
    site_b = await Agent.start(
        await kit.agent_settings(f"gw-{harness.topics.prefix}", site=SITE_B, transport="mqtt", linger_ms=0)
    )
    site_a = await Agent.start(await kit.agent_settings(f"gp-{harness.topics.prefix}", site=SITE_A, linger_ms=0))
    try:

        async def b_holds(version: int) -> PatientState | None:
            record = await site_b.replica.get(key_b)  # B looks the person up by its own pseudonym
            state = None if record is None or record.state is None else PatientState.from_bytes(record.state)
            return state if state is not None and state.version == version else None

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 300  # generous: a shared, loaded machine; not a speed assertion
        assert (await http_post(site_b.settings, "/v1/events", {**_CARE, "nhs_number": nhs}))[0] == 202
        while await b_holds(1) is None:  # B's own event came back through the mirror: B is the person's site
            assert loop.time() < deadline, "site B's replica never got its own event back"
            await asyncio.sleep(0.1)
        assert (await http_post(site_a.settings, "/v1/events", {**_NDOP, "nhs_number": nhs}))[0] == 202
        while (replicated := await b_holds(2)) is None:  # B's event and A's
            assert loop.time() < deadline, "site B's replica never got site A's opt-out"
            await asyncio.sleep(0.1)
        assert replicated.patient_key == key_b
        assert replicated.objections  # A's NDOP objection, in B's replica under B's key

        # B's Kafka feed: every record keyed by B's pseudonym; neither A's nor the national one anywhere
        feed = await harness.read(harness.topics.site_feed(SITE_B), lambda rs: len(rs) >= 1)
        assert {r.key for r in feed} <= {f"state/{key_b}".encode(), f"shielding/{key_b}".encode()}
        for r in feed:
            for other in (key_a, national):
                assert other.encode() not in r.key and other.encode() not in (r.value or b"")

        # the core, asked by NHS number, answers from the same (nationally keyed) state
        service = core.services["api"]
        assert isinstance(service, ApiService)
        assert (await service.state(national)).version == 2
        async with aiohttp.ClientSession() as session:
            api = Api(session, core, door)
            consent = await until(lambda: api.get(f"/v1/patients/{nhs}/consent"), lambda s: s.get("version") == 2)
            assert consent["version"] == replicated.version
            decision = await api.decide(nhs, researcher(), "HRESCH", ["GENERAL"], legal_basis="S251")
            assert decision["outcome"] == "DENY" and "NDOP_ACTIVE" in decision["codes"]
    finally:
        await site_a.stop()
        await site_b.stop()
