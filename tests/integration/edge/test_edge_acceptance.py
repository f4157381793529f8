"""Edge-agent acceptance on the real Kafka and Mosquitto with the core in-process.

MQTT path end to end (gateway -> Mosquitto -> bridge -> Kafka -> state, the bridge's ack empties
the gateway's outbox, a killed bridge loses nothing), the disk cap, and shielding set at one
site redacting another site's offline decision.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.infra.local import LocalDeployment
from consent_io import mqtt
from consent_io.connection import KafkaConnection
from edge_agent.app import Agent
from edge_agent.transport_mqtt import ack_topic, ingress_topic
from tests.integration.edge.conftest import (
    EdgeKit,
    assert_exactly_once_in_order,
    consent_docs,
    dead_letter_reasons,
    forget_mqtt_session,
    free_port,
    http_get,
    http_post,
    make_bridge,
    nhs_numbers,
    read_all,
    state_total,
)
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration


async def _until(check: Callable[[], bool], timeout_s: float = 60, step_s: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, "timed out waiting for a condition"
        await asyncio.sleep(step_s)


async def _delivered(harness: Harness, count: int) -> None:
    """Wait until the state topic shows ``count`` applied events."""
    await harness.read(harness.topics.state, lambda rs: state_total(rs) >= count, timeout_s=120)


async def test_mqtt_gateway_events_reach_the_state_once_and_a_killed_bridge_loses_nothing(
    harness: Harness, kit: EdgeKit
) -> None:
    total = 1000
    await harness.start_core()  # verifier + reconciler
    gateway_id = f"gw-{harness.topics.prefix}"
    settings = await kit.agent_settings(gateway_id, transport="mqtt", batch_max_events=20, linger_ms=0, ack_timeout_s=2)
    bridge = make_bridge(harness)
    bridge_stop = asyncio.Event()
    (bridge_task,) = await bridge.start(bridge_stop)
    await asyncio.wait_for(bridge.connected.wait(), 30)
    agent = await Agent.start(settings)
    try:
        docs = consent_docs(nhs_numbers(40), total)
        status, body = await http_post(settings, "/v1/events/batch", {"events": docs})
        assert status == 202 and len(body["receipts"]) == total

        # kill the bridge abruptly mid-stream: some batches acked, others not yet
        await _until(lambda: agent.outbox.pending_count < total - 100)
        bridge_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bridge_task
        await asyncio.sleep(0.5)  # an ack the bridge published just before it died may still arrive
        stalled_at = agent.outbox.pending_count
        assert 0 < stalled_at < total
        await asyncio.sleep(1.0)
        assert agent.outbox.pending_count == stalled_at  # a PUBACK from Mosquitto deletes nothing

        await harness.start_core(stages=("bridge",))  # same client id: same session
        await _until(lambda: agent.outbox.pending_count == 0, timeout_s=120)
        await _delivered(harness, total)
    finally:
        await agent.stop()
    assert state_total(await read_all(harness.kafka, harness.topics.state)) == total
    assert_exactly_once_in_order(await read_all(harness.kafka, harness.topics.events), gateway_id, total)
    assert set(dead_letter_reasons(await read_all(harness.kafka, harness.topics.deadletter))) <= {"REPLAY"}


async def test_bridge_dead_letters_an_unreadable_gateway_payload_and_sends_no_ack(
    harness: Harness, kit: EdgeKit, deployment: LocalDeployment
) -> None:
    await harness.start_core()
    bridge = make_bridge(harness)
    stop = asyncio.Event()
    (task,) = await bridge.start(stop)
    gateway = f"gw-bad-{harness.topics.prefix}"
    await kit.agent_settings(gateway, transport="mqtt")  # a real gateway's credentials, sending garbage
    try:
        await asyncio.wait_for(bridge.connected.wait(), 30)
        async with mqtt.client(deployment.agent_mqtt(gateway, "A81001")) as client:
            await client.subscribe(ack_topic(gateway), qos=1)
            await client.publish(ingress_topic(gateway), b"\x00\x01not avro", qos=1)
            letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 1)
            acks: list[object] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    async for message in client.messages:
                        acks.append(message.payload)
    finally:
        stop.set()
        await task
    assert dead_letter_reasons(letters) == ["BAD_MAGIC"]  # refused by the bridge itself: never forwarded
    assert dict(letters[0].headers)["stage"] == b"bridge"
    assert letters[0].value == b"\x00\x01not avro"
    assert acks == []


async def test_a_message_the_bridge_could_not_write_to_kafka_is_redelivered_to_its_next_session(
    harness: Harness, kit: EdgeKit, deployment: LocalDeployment
) -> None:
    gateway_id = f"gw-{harness.topics.prefix}"
    settings = await kit.agent_settings(gateway_id, transport="mqtt")
    client_id, topic = f"{harness.app_id}.bridge", ingress_topic(gateway_id)
    nowhere = f"127.0.0.1:{free_port()}"
    bridge = make_bridge(harness, kafka=KafkaConnection(nowhere), backoff_cap_s=0.2, kafka_timeout_s=1)
    batch = b"batch-1"  # unreadable: its dead letter must reach Kafka before the PUBACK, and Kafka is unreachable
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        await asyncio.wait_for(bridge.connected.wait(), 30)
        async with mqtt.client(deployment.agent_mqtt(gateway_id, settings.site)) as gateway:
            await gateway.publish(topic, batch, qos=1)
        await asyncio.sleep(0.5)  # the bridge holds the message and keeps retrying Kafka
    finally:
        stop.set()
        await task
    assert bridge.forwarded_total == 0
    redelivered = None
    try:
        bridge_mqtt = deployment.stage_mqtt("bridge")
        async with mqtt.client(bridge_mqtt, identifier=client_id, clean_session=False) as again:
            async with asyncio.timeout(10):
                async for message in again.messages:  # the session kept its subscription and the un-PUBACKed message
                    if message.topic.matches(topic):
                        redelivered = message.payload
                        break
    finally:
        await forget_mqtt_session(deployment.operator_mqtt(), client_id)
    assert redelivered == batch


async def test_disk_cap_refuses_with_outbox_full_and_keeps_every_accepted_event(harness: Harness, kit: EdgeKit) -> None:
    await harness.start_core()
    agent_id = f"cap-{harness.topics.prefix}"
    nowhere = f"127.0.0.1:{free_port()}"  # the site's link is down: nothing drains the outbox
    settings = await kit.agent_settings(agent_id, kafka_bootstrap=nowhere, disk_cap_bytes=1024 * 1024)
    numbers = nhs_numbers(50)
    agent = await Agent.start(settings)
    accepted, refusal = 0, None
    try:
        for _ in range(100):
            docs = consent_docs(numbers, 250)
            status, body = await http_post(settings, "/v1/events/batch", {"events": docs})
            if status != 202:
                refusal = (status, body["reason"])
                break
            accepted += len(body["receipts"])
        _, health = await http_get(settings, "/v1/health")
    finally:
        await agent.stop()
    assert refusal == (507, "OUTBOX_FULL")
    assert accepted > 0 and health["outbox_full"] is True and health["outbox_pending"] == accepted

    # the link comes back: every event accepted before the cap reaches the state exactly once
    agent = await Agent.start(await kit.agent_settings(agent_id, disk_cap_bytes=1024 * 1024))
    try:
        await _until(lambda: agent.outbox.pending_count == 0, timeout_s=120, step_s=0.1)
        await _delivered(harness, accepted)
    finally:
        await agent.stop()
    assert_exactly_once_in_order(await read_all(harness.kafka, harness.topics.events), agent_id, accepted)


_SHIELD = {
    "type": "shielding_flag",
    "payload": {
        "action": "SET",
        "hides": ["LOCATION", "CONTACT"],
        "set_by_role": "SAFEGUARDING_LEAD",
        "reason": "CHILD_PROTECTION",
    },
}


def _query(nhs: str) -> dict[str, object]:
    requester = {
        "organisation": "B82002",
        "role": "GP",
        "registered": True,
        "relationship": "LEGITIMATE",
        "care_team": True,
    }
    return {"nhs_number": nhs, "purpose": "TREAT", "data_classes": ["ALL"], "legal_basis": None, "requester": requester}


async def test_shielding_set_at_one_site_redacts_another_sites_offline_decision(
    harness: Harness, kit: EdgeKit, tmp_path: Path
) -> None:
    nhs, other = nhs_numbers(2, start=960_000_000)
    key = kit.site_key("B82002", nhs)  # site B's own pseudonym of the patient: its replica's and feed's key
    registrations = tmp_path / "registrations.csv"  # site B is registered for the patient: its feed carries them
    registrations.write_text(f"B82002,{key}\n")
    await harness.start_core(stages="verifier,reconciler,mirror", registrations_file=str(registrations))
    site_a = await Agent.start(await kit.agent_settings(f"a-{harness.topics.prefix}", site="A81001"))
    site_b = await Agent.start(await kit.agent_settings(f"b-{harness.topics.prefix}", site="B82002"))
    try:
        port_a, port_b = site_a.settings, site_b.settings
        status, before = await http_post(port_b, "/v1/decisions", _query(nhs))
        assert status == 200 and before["obligations"] == []

        status, _ = await http_post(port_a, "/v1/events", {**_SHIELD, "nhs_number": nhs})
        assert status == 202

        async def shielded_at_b() -> bool:
            record = await site_b.replica.get(key)
            return record is not None and record.state is not None and b"LOCATION" in record.state

        for _ in range(1200):
            if await shielded_at_b():
                break
            await asyncio.sleep(0.05)
        status, after = await http_post(port_b, "/v1/decisions", _query(nhs))
        _, unshielded = await http_post(port_b, "/v1/decisions", _query(other))
    finally:
        await site_a.stop()
        await site_b.stop()
    assert status == 200
    assert after["offline"] is True and after["as_at_ms"] is not None
    assert after["outcome"] == "PERMIT_WITH_OBLIGATIONS"
    assert {"REDACT_LOCATION", "REDACT_CONTACT"} <= set(after["obligations"])
    assert "REDACT_LOCATION" not in unshielded["obligations"]
