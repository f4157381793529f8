"""CDS Hooks on the real stack (issue 17 acceptance): a CDS Hooks client written from the specification
(:mod:`tests.cds_client`) gets correct cards for permitted, denied, shielded and unknown patients, online
from the core (client JWTs verified against the registered keys) and offline from an agent's replica
(the core stopped)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from broker.api import ApiService
from broker.auth.client import client_tls
from broker.infra.local import ApiClientSpec
from edge_agent.app import Agent
from tests.cds_client import ACT_CODE, card, client_jwt, consult, redacted
from tests.integration.edge.conftest import EdgeKit, http_post, nhs_numbers
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration

CLIENTS = (
    ApiClientSpec("rx1-ehr", "RX1", ("CONSULTANT",), ("decisions",)),
    ApiClientSpec("reslab", "RESLAB1", ("RESEARCHER",), ("decisions",)),
)
SERVICE = "/cds-services/patient-consent-consult"
HIDDEN = "urn:uk-nhs-consent:hidden-field"


def _events(opted_out: str, shielded: str) -> list[dict[str, Any]]:
    objection = {"kind": "NDOP", "action": "REGISTER", "exemptions": []}
    shield = {"action": "SET", "hides": ["LOCATION", "CONTACT"], "set_by_role": "SAFEGUARDING_LEAD",
              "reason": "CHILD_PROTECTION"}  # fmt: skip
    return [
        {"type": "objection", "nhs_number": opted_out, "payload": objection},
        {"type": "shielding_flag", "nhs_number": shielded, "payload": shield},
    ]


def _requests(opted_out: str, shielded: str, unknown: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Name -> (client, hook request): permit, deny, shielded and unknown patients."""
    research = {"purpose": "HRESCH", "organisation": "RESLAB1", "role": "RESEARCHER", "care": False}
    return {
        "permit": ("rx1-ehr", consult(opted_out)),  # direct care despite the opt-out (NDOP is research/planning)
        "deny": ("reslab", consult(opted_out, legal_basis="S251", **research)),  # type: ignore[arg-type]
        "shielded": ("rx1-ehr", consult(shielded, classes=("PSY", "LOCIS"))),
        "unknown": ("reslab", consult(unknown, **research)),  # type: ignore[arg-type]
    }


def _check(cards: dict[str, dict[str, Any]], *, offline: bool) -> None:
    assert {name: c["summary"] for name, c in cards.items()} == {
        "permit": "CONSENT_PERMIT",
        "deny": "CONSENT_DENY",
        "shielded": "CONSENT_PERMIT",
        "unknown": "NO_CONSENT",
    }
    assert [c["indicator"] for c in cards.values()] == ["info", "critical", "info", "warning"]
    assert "NDOP_ACTIVE" in cards["deny"]["extension"]["codes"]
    assert redacted(cards["shielded"]) == {(ACT_CODE, "LOCIS"), (HIDDEN, "CONTACT")}
    assert redacted(cards["permit"]) == set()
    assert all(c["extension"]["offline"] is offline for c in cards.values())


async def test_cds_hooks_cards_online_from_the_core_and_offline_from_an_agent(
    harness: Harness, kit: EdgeKit, tmp_path: Path
) -> None:
    opted_out, shielded, unknown = nhs_numbers(3, start=971_000_000)
    door, keys = harness.deployment.api_door(tmp_path / "door", CLIENTS)
    core = await harness.start_core(
        stages="verifier,reconciler,mirror,api", pseudonym_secret_file=str(kit.secret_file), http_port=0, **door
    )
    agent = await Agent.start(await kit.agent_settings(f"cds-{harness.topics.prefix}", site="A81001"))
    try:
        for event in _events(opted_out, shielded):
            assert (await http_post(agent.settings, "/v1/events", event))[0] == 202
        service = core.services["api"]
        assert isinstance(service, ApiService)
        base = harness.deployment.api_url(service.port)
        tls = client_tls(harness.deployment.ca_file)
        private = {c: serialization.load_pem_private_key(keys[c].read_bytes(), None) for c in ("rx1-ehr", "reslab")}

        async def online(session: aiohttp.ClientSession, client: str, body: dict[str, Any]) -> dict[str, Any]:
            token = client_jwt(client, client, private[client], base + SERVICE)
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(base + SERVICE, json=body, headers=headers, ssl=tls) as resp:
                assert resp.status == 200, await resp.text()
                return card(await resp.json())

        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/cds-services", ssl=tls) as resp:
                assert [s["id"] for s in (await resp.json())["services"]] == ["patient-consent-consult"]
            for _ in range(600):  # until the core's state view holds both patients' events
                if all([(await service.state(kit.national_key(n))).version for n in (opted_out, shielded)]):
                    break
                await asyncio.sleep(0.1)
            answers = {
                name: await online(session, c, body)
                for name, (c, body) in _requests(opted_out, shielded, unknown).items()
            }
            _check(answers, offline=False)
            # audited before the answer: a durable audit request (appended behind it), named by its position
            assert all(set(c["extension"]["audit_request"]) == {"partition", "offset"} for c in answers.values())
            replayed = client_jwt("rx1-ehr", "rx1-ehr", private["rx1-ehr"], base + SERVICE, jti="same")
            statuses = []
            for _ in range(2):
                headers = {"Authorization": f"Bearer {replayed}"}
                async with session.post(base + SERVICE, json=consult(opted_out), headers=headers, ssl=tls) as resp:
                    statuses.append((resp.status, (await resp.json()).get("reason")))
            assert statuses == [(200, None), (401, "AUTH_REPLAYED")]

        async def replicated() -> bool:
            records = [await agent.replica.get(kit.site_key("A81001", n)) for n in (opted_out, shielded)]
            return all(r is not None and r.state is not None for r in records)

        for _ in range(1200):
            if await replicated():
                break
            await asyncio.sleep(0.05)
        await core.stop()  # the core is gone: the agent answers from its replica alone
        harness.cores.remove(core)
        offline: dict[str, dict[str, Any]] = {}
        for name, (_, body) in _requests(opted_out, shielded, unknown).items():
            status, response = await http_post(agent.settings, SERVICE, body)
            assert status == 200, response
            offline[name] = card(response)
    finally:
        await agent.stop()
    _check(offline, offline=True)
    assert offline["shielded"]["extension"]["as_at_ms"] is not None
    assert offline["unknown"]["extension"]["as_at_ms"] is None  # nothing replicated for this patient
