"""Issue 12 item 4 on the real Mosquitto: forged retained replica records cannot turn a live gateway's offline DENY
(national data opt-out) into PERMIT; each is refused with its reason and the mirror's feed still flows afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from consent_io import mqtt
from consent_io.connection import MqttConnection
from consent_rules.replica_feed import ReplicaKind, seal_replica_record
from consent_rules.state import replay
from consent_wire.dsse import AgentSigner
from edge_agent.app import Agent
from tests.factories import consent, plain_event
from tests.integration.edge.conftest import EdgeKit, http_post, nhs_numbers
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration

SITE = "G82002"
_NDOP = {"type": "objection", "payload": {"kind": "NDOP", "action": "REGISTER"}}
_CONSENT = {
    "type": "consent_decision",
    "payload": {"directive": "OPTIN", "purpose": "TREAT", "data_class": "ALL", "recipient": "*",
                "recorded_by_role": "GP"},
}  # fmt: skip


def _research(nhs: str) -> dict[str, object]:
    requester = {"organisation": SITE, "role": "RESEARCHER", "registered": True, "relationship": "NONE",
                 "care_team": False}  # fmt: skip
    return {"nhs_number": nhs, "purpose": "HRESCH", "data_classes": ["ALL"], "legal_basis": "S251",
            "requester": requester}  # fmt: skip


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        assert loop.time() < deadline, "timed out waiting for a condition"
        await asyncio.sleep(0.2)


async def test_forged_retained_records_cannot_flip_an_offline_deny(
    harness: Harness, kit: EdgeKit, mqtt_connection: MqttConnection
) -> None:
    core = await harness.start_core(stages=("verifier", "reconciler", "bridge", "mirror"))
    (nhs,) = nhs_numbers(1, start=971_000_000)
    key = kit.site_key(SITE, nhs)
    topic = f"consent/state/{SITE}/{key}"
    gateway = await Agent.start(await kit.agent_settings(f"gw-{harness.topics.prefix}", site=SITE, transport="mqtt"))
    try:
        assert (await http_post(gateway.settings, "/v1/events", {**_NDOP, "nhs_number": nhs}))[0] == 202

        async def has_state() -> bool:
            record = await gateway.replica.get(key)
            return record is not None and record.state is not None

        await _until(has_state)
        genuine = (await gateway.replica.get(key)).state  # type: ignore[union-attr]
        status, answer = await http_post(gateway.settings, "/v1/decisions", _research(nhs))
        assert (status, answer["outcome"], answer["offline"]) == (200, "DENY", True)

        permit = replay(key, [plain_event(key, consent(), 2**40)]).to_bytes()  # a far-future PERMIT
        forgeries = {
            "REPLICA_UNSIGNED": permit,  # a raw state record, retained
            "REPLICA_FORGED": seal_replica_record(AgentSigner.generate("core"), ReplicaKind.STATE, key, permit, 2**62),
        }
        refused_before = dict(gateway.replica.refused_by_reason)
        async with mqtt.client(mqtt_connection) as attacker:  # the operator's credentials: past every ACL
            for forged in forgeries.values():
                await attacker.publish(topic, forged, qos=1, retain=True)

        async def refused() -> bool:
            counts = gateway.replica.refused_by_reason
            return all(counts.get(r, 0) > refused_before.get(r, 0) for r in forgeries)

        await _until(refused)
        assert (await gateway.replica.get(key)).state == genuine  # type: ignore[union-attr]
        status, answer = await http_post(gateway.settings, "/v1/decisions", _research(nhs))
        assert (status, answer["outcome"]) == (200, "DENY")

        # the feed still flows: the gateway's next event comes back through the mirror, core-signed
        assert (await http_post(gateway.settings, "/v1/events", {**_CONSENT, "nhs_number": nhs}))[0] == 202

        async def updated() -> bool:
            record = await gateway.replica.get(key)
            return record is not None and record.state not in (None, genuine)

        await _until(updated)
    finally:
        await gateway.stop()
        await core.stop()
        async with mqtt.client(mqtt_connection) as cleaner:
            await cleaner.publish(topic, b"", qos=1, retain=True)
