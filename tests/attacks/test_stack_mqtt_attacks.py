"""Issue 12 items 1, 2 and 3 on the real Mosquitto and Kafka: a hostile gateway's 1,048,576-byte message, a validly
signed batch on another gateway's topic and forged acks neither lose an honest gateway's events nor stop the bridge.

The honest gateway is a real edge agent over MQTT (mTLS, its own ACLs); the hostile one holds a registered key and
its own certificate; what its ACL refuses is published with the operator's credentials (a gateway that got past
the ACL), so the bridge's and the agent's own checks are what is exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiomqtt
import pytest

from consent_io import mqtt
from consent_wire.ack import BatchAck, seal_ack
from consent_wire.dsse import AgentSigner
from edge_agent.app import Agent
from edge_agent.transport_mqtt import ack_topic, ingress_topic
from tests.factories import BASE_MS, SimAgent, consent, patient
from tests.integration.edge.conftest import (
    EdgeKit,
    assert_exactly_once_in_order,
    consent_docs,
    dead_letter_reasons,
    events_by_agent,
    forget_mqtt_session,
    http_post,
    make_bridge,
    nhs_numbers,
    read_all,
)
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration

MOSQUITTO_OLD_LIMIT = 1_048_576  # the message that wedged the bridge's partition before the fix


async def _until(check: Callable[[], bool], timeout_s: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, "timed out waiting for a condition"
        await asyncio.sleep(0.2)


async def test_hostile_gateway_cannot_lose_forge_or_wedge_on_the_real_mqtt_path(harness: Harness, kit: EdgeKit) -> None:
    await harness.start_core()  # verifier + reconciler
    honest_id, hostile = f"gw-{harness.topics.prefix}", SimAgent.create(f"gx-{harness.topics.prefix}", site="A12345")
    settings = await kit.agent_settings(honest_id, site="A12345", transport="mqtt", batch_max_events=20,
                                        linger_ms=0, ack_timeout_s=2)  # fmt: skip
    await harness.register(hostile)
    bridge, stop = make_bridge(harness), asyncio.Event()
    (bridge_task,) = await bridge.start(stop)
    await asyncio.wait_for(bridge.connected.wait(), 30)
    agent = await Agent.start(settings)
    operator = harness.deployment.operator_mqtt()
    try:
        # item 1: forged acks (unsigned, and signed by a key that is not the core's) claiming every seq
        forged = [
            BatchAck(honest_id, 2**62).payload(),
            seal_ack(AgentSigner.generate("core"), BatchAck(honest_id, 2**62)),
        ]
        async with mqtt.client(operator) as attacker:
            for ack in forged:
                await attacker.publish(ack_topic(honest_id), ack, qos=1)
        # item 3: exactly Mosquitto's old limit, from the hostile gateway's own credentials on its own topic
        hostile_conn = harness.deployment.agent_mqtt(hostile.agent_id, hostile.site)
        with contextlib.suppress(aiomqtt.MqttError):  # Mosquitto may drop the connection that sent it
            async with mqtt.client(hostile_conn) as gx:
                await gx.publish(ingress_topic(hostile.agent_id), b"\xc3\x01" + bytes(MOSQUITTO_OLD_LIMIT - 2), qos=1)
        # item 2: a validly signed batch of the hostile gateway published on the honest gateway's topic
        mismatched = hostile.batch([hostile.event(patient(1), consent(), BASE_MS)])
        async with mqtt.client(operator) as attacker:
            await attacker.publish(ingress_topic(honest_id), mismatched, qos=1)
            total = 60
            status, body = await http_post(
                settings, "/v1/events/batch", {"events": consent_docs(nhs_numbers(30), total)}
            )
            assert status == 202 and len(body["receipts"]) == total
            for ack in forged:  # and again while the honest gateway has events in flight
                await attacker.publish(ack_topic(honest_id), ack, qos=1)

        await _until(lambda: agent.outbox.pending_count == 0)  # acked by the core: the bridge flows
        await harness.read(harness.topics.events, lambda rs: len(rs) >= total)
        events = await read_all(harness.kafka, harness.topics.events)
        assert_exactly_once_in_order(events, honest_id, total)  # lost = 0, none twice
        assert hostile.agent_id not in events_by_agent(events)  # the mismatched batch was never forwarded under any key
        letters = await harness.read(
            harness.topics.deadletter, lambda rs: "TOPIC_AGENT_MISMATCH" in dead_letter_reasons(rs)
        )
        assert "TOPIC_AGENT_MISMATCH" in dead_letter_reasons(letters)
        assert not bridge_task.done()
    finally:
        await agent.stop()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await bridge_task
        await forget_mqtt_session(operator, f"{harness.app_id}.bridge")
