"""Mosquitto with mTLS and the ACL file from broker/infra/acls.py: gateways stay on their own topics.

A denied publish is dropped by Mosquitto (MQTT 3.1.1 has no way to say so), so each refusal is proven by
order: the subscriber receives a marker sent after the refused message on the same connection, and never the
refused message itself.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from pathlib import Path

import aiomqtt
import pytest

from broker.infra import Infra
from broker.infra.acls import Principal, Role
from broker.infra.pki import Pki
from tests.integration.security.clients import mqtt_client

pytestmark = pytest.mark.integration

_WAIT_S = 10.0


@pytest.fixture
def gateways(secure_infra: Infra) -> tuple[Principal, Principal]:
    tag = uuid.uuid4().hex[:8]
    a = Principal(f"gw-a-{tag}", Role.AGENT, site=f"site-a-{tag}")
    b = Principal(f"gw-b-{tag}", Role.AGENT, site=f"site-b-{tag}")
    for gateway in (a, b):
        secure_infra.issue(gateway)  # adds it to the ACL file; Mosquitto re-reads it (SIGHUP)
    return a, b


def _client(infra: Infra, principal: str) -> aiomqtt.Client:
    return mqtt_client(infra.mqtt_connection(principal), f"{principal}-{uuid.uuid4().hex[:6]}")


async def _collect_until(client: aiomqtt.Client, marker: str) -> list[tuple[str, bytes]]:
    """Every message received up to and including one on topic ``marker``."""
    got: list[tuple[str, bytes]] = []

    async def run() -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            got.append((message.topic.value, message.payload))
            if message.topic.value == marker:
                return

    await asyncio.wait_for(run(), _WAIT_S)
    return got


async def _publish_until_received(
    publisher: aiomqtt.Client, subscriber: aiomqtt.Client, topic: str, payload: bytes
) -> None:
    """Publish on an allowed topic until it arrives: Mosquitto applies a reloaded ACL file within moments."""
    for _ in range(int(_WAIT_S / 0.5)):
        await publisher.publish(topic, payload, qos=1)
        try:
            await _collect_until_timeout(subscriber, topic, 0.5)
        except TimeoutError:
            continue
        else:
            return
    raise AssertionError(f"{topic} never reached its subscriber")


async def _collect_until_timeout(client: aiomqtt.Client, topic: str, timeout_s: float) -> None:
    async def run() -> None:
        async for message in client.messages:
            if message.topic.value == topic:
                return

    await asyncio.wait_for(run(), timeout_s)


async def _refused(infra: Infra, context: ssl.SSLContext | None) -> None:
    # Mosquitto ends the TLS handshake (or the plaintext connection) before any CONNACK; paho-mqtt reports only
    # a timeout (with "tlsv13 alert certificate required" logged), so a short one keeps the suite quick.
    port = infra.config.mqtt_port
    client = aiomqtt.Client("127.0.0.1", port, identifier=uuid.uuid4().hex, tls_context=context, timeout=3)
    with pytest.raises(aiomqtt.MqttError, match="timed out"):
        async with client:
            pass


async def test_an_anonymous_plaintext_client_is_refused(secure_infra: Infra) -> None:
    await _refused(secure_infra, None)


async def test_a_tls_client_without_a_certificate_is_refused(secure_infra: Infra) -> None:
    await _refused(secure_infra, ssl.create_default_context(cafile=str(secure_infra.pki.ca_file)))


async def test_a_certificate_from_another_ca_is_refused(secure_infra: Infra, tmp_path: Path) -> None:
    impostor = Pki(tmp_path / "pki").issue("core.bridge")
    context = ssl.create_default_context(cafile=str(secure_infra.pki.ca_file))
    context.load_cert_chain(impostor.cert_file, impostor.key_file)
    await _refused(secure_infra, context)


async def test_gateway_a_cannot_publish_on_gateway_b_topic(
    secure_infra: Infra, gateways: tuple[Principal, Principal]
) -> None:
    a, b = gateways
    async with _client(secure_infra, "core.bridge") as bridge, _client(secure_infra, a.name) as gw_a:
        await bridge.subscribe(f"consent/ingress/{a.name}", qos=1)
        await bridge.subscribe(f"consent/ingress/{b.name}", qos=1)
        await _publish_until_received(gw_a, bridge, f"consent/ingress/{a.name}", b"warm-up")
        await gw_a.publish(f"consent/ingress/{b.name}", b"forged as B", qos=1)
        await gw_a.publish(f"consent/ingress/{a.name}", b"marker", qos=1)
        got = await _collect_until(bridge, f"consent/ingress/{a.name}")
    assert got == [(f"consent/ingress/{a.name}", b"marker")]
    async with _client(secure_infra, "core.bridge") as bridge, _client(secure_infra, b.name) as gw_b:
        await bridge.subscribe(f"consent/ingress/{b.name}", qos=1)
        await _publish_until_received(gw_b, bridge, f"consent/ingress/{b.name}", b"B's own batch")


async def test_a_gateway_reads_only_its_own_acks_and_site_replica(
    secure_infra: Infra, gateways: tuple[Principal, Principal]
) -> None:
    a, b = gateways
    own_state, other_state = f"consent/state/{a.site}/p1", f"consent/state/{b.site}/p1"
    async with _client(secure_infra, a.name) as gw_a:
        for topic in (f"consent/ack/{b.name}", f"consent/state/{b.site}/+", f"consent/shielding/{b.site}/+"):
            await gw_a.subscribe(topic, qos=1)  # refused (SUBACK 0x80); nothing is ever delivered on it
        await gw_a.subscribe(f"consent/ack/{a.name}", qos=1)
        await gw_a.subscribe(f"consent/state/{a.site}/+", qos=1)
        async with _client(secure_infra, "core.mirror") as mirror, _client(secure_infra, "core.bridge") as bridge:
            await mirror.publish(other_state, b"B's patient", qos=1, retain=True)
            await bridge.publish(f"consent/ack/{b.name}", b"B's ack", qos=1)
            await bridge.publish(f"consent/ack/{a.name}", b"A's ack", qos=1)
            await mirror.publish(own_state, b"A's patient", qos=1, retain=True)
            got = await _collect_until(gw_a, own_state)
    assert got == [(f"consent/ack/{a.name}", b"A's ack"), (own_state, b"A's patient")]


async def test_principals_outside_the_mqtt_table_cannot_publish(
    secure_infra: Infra, gateways: tuple[Principal, Principal]
) -> None:
    a, _ = gateways
    async with (
        _client(secure_infra, "core.bridge") as bridge,
        _client(secure_infra, "core.verifier") as verifier,
        _client(secure_infra, a.name) as gw_a,
    ):
        await bridge.subscribe("consent/ingress/+", qos=1)
        await _publish_until_received(gw_a, bridge, f"consent/ingress/{a.name}", b"warm-up")
        await verifier.publish("consent/ingress/core.verifier", b"not a gateway", qos=1)
        await verifier.publish(f"consent/ingress/{a.name}", b"not a gateway", qos=1)
        await gw_a.publish(f"consent/ingress/{a.name}", b"marker", qos=1)
        got = await _collect_until(bridge, f"consent/ingress/{a.name}")
    assert got == [(f"consent/ingress/{a.name}", b"marker")]
