"""The real Mosquitto delivers QoS 1 messages between two MQTT clients."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from consent_io import mqtt
from consent_io.connection import MqttConnection

pytestmark = pytest.mark.integration


async def test_qos1_publish_reaches_a_subscriber(mqtt_connection: MqttConnection) -> None:
    topic = f"test/{uuid.uuid4().hex}"
    async with mqtt.client(mqtt_connection, identifier=f"sub-{uuid.uuid4().hex[:8]}") as subscriber:
        await subscriber.subscribe(topic, qos=1)
        async with mqtt.client(mqtt_connection, identifier=f"pub-{uuid.uuid4().hex[:8]}") as publisher:
            for i in range(10):
                await publisher.publish(topic, f"m{i}".encode(), qos=1)
        got: list[bytes] = []

        async def collect() -> None:
            async for message in subscriber.messages:
                assert isinstance(message.payload, bytes)
                got.append(message.payload)
                if len(got) == 10:
                    return

        await asyncio.wait_for(collect(), timeout=10)
    assert got == [f"m{i}".encode() for i in range(10)]


async def test_retained_message_is_delivered_to_a_late_subscriber(mqtt_connection: MqttConnection) -> None:
    topic = f"test/retained/{uuid.uuid4().hex}"
    async with mqtt.client(mqtt_connection) as publisher:
        await publisher.publish(topic, b"state-v1", qos=1, retain=True)
    async with mqtt.client(mqtt_connection) as late:
        await late.subscribe(topic, qos=1)
        message = await asyncio.wait_for(anext(aiter(late.messages)), timeout=10)
    assert message.payload == b"state-v1"
    assert message.retain is True
