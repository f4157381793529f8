"""Issue 12 item 1: forged MQTT acks must not empty a gateway's outbox.

Reproduced on the first release: one unsigned publish on ``consent/ingress/<gw>`` claiming
``first_seq = 2**62`` made the bridge ack ``last_seq = 2**62`` and the gateway delete every pending
event unsent, and every later one too. Now the bridge acks only batches that verify, the ack is
signed by the core, and the gateway checks the signature, its own agent id and ``last_seq`` against
the highest seq it sent before deleting anything.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from consent_wire.ack import BatchAck, seal_ack
from consent_wire.dsse import AgentSigner
from edge_agent.errors import AckTimeoutError
from edge_agent.transport_mqtt import ack_topic, ingress_topic
from tests.attacks.mqtt_kit import Deployment, Gateway, unsigned_batch
from tests.factories import BASE_MS, SimAgent, consent, patient

SEQ_2_62 = 2**62


async def test_an_unsigned_batch_claiming_seq_2_62_is_not_acked_and_the_gateway_deletes_nothing(
    tmp_path: Path,
) -> None:
    d = Deployment()
    gw = await d.gateway(tmp_path, "gw-1", events=200)
    event = SimAgent.create("gw-1").event(patient(1), consent(), BASE_MS)
    forged = unsigned_batch("gw-1", gw.signer.key_id, SEQ_2_62, [event])

    await d.mqtt.publish(ingress_topic("gw-1"), forged, qos=1)  # a rogue gateway, valid MQTT credentials

    assert d.mqtt.acks == []
    assert d.ingress() == []
    assert d.reasons() == ["BAD_SIGNATURE"]
    assert await gw.publisher.publish_once() == 50  # sent for real, acked for real: 50 of the 200
    assert gw.outbox.pending_count == 150
    assert [key for _, _, key, _ in d.producer.to("t.ingress")] == [b"gw-1"]
    await d.close()


@pytest.mark.parametrize(
    "forged_ack",
    [
        pytest.param(orjson.dumps({"agent_id": "gw-1", "last_seq": SEQ_2_62}), id="unsigned-json"),
        pytest.param(seal_ack(AgentSigner.generate("core"), BatchAck("gw-1", SEQ_2_62)), id="signed-by-another-key"),
    ],
)
async def test_a_forged_ack_on_the_gateway_ack_topic_deletes_nothing(tmp_path: Path, forged_ack: bytes) -> None:
    d = Deployment()
    gw = await d.gateway(tmp_path, "gw-1", events=200)
    await d.mqtt.publish(ack_topic("gw-1"), forged_ack, qos=1)  # straight onto the ack topic

    assert gw.transport.acked_seq == 0
    assert sum(gw.transport.refused_acks.values()) == 1
    with pytest.raises(AckTimeoutError):
        await _publish_without_bridge(d, gw)
    assert gw.outbox.pending_count == 200
    await d.close()


async def test_a_core_signed_ack_beyond_what_the_gateway_sent_or_for_another_gateway_deletes_nothing(
    tmp_path: Path,
) -> None:
    d = Deployment()
    gw = await d.gateway(tmp_path, "gw-1", events=200)
    # replayed, genuinely core-signed acks: one of another gateway's, one of a seq gw-1 never sent
    gw.transport.on_ack(seal_ack(d.core, BatchAck("gw-2", SEQ_2_62)))
    gw.transport.on_ack(seal_ack(d.core, BatchAck("gw-1", SEQ_2_62)))

    assert gw.transport.acked_seq == 0
    assert dict(gw.transport.refused_acks) == {"ACK_WRONG_AGENT": 1, "ACK_BEYOND_SENT": 1}
    assert gw.outbox.pending_count == 200
    await d.close()


async def test_honest_gateways_lose_nothing_and_keep_flowing_after_the_forgeries(tmp_path: Path) -> None:
    d = Deployment()
    gw = await d.gateway(tmp_path, "gw-1", events=120)
    event = SimAgent.create("gw-1").event(patient(1), consent(), BASE_MS)
    await d.mqtt.publish(ingress_topic("gw-1"), unsigned_batch("gw-1", gw.signer.key_id, SEQ_2_62, [event]))
    await d.mqtt.publish(ack_topic("gw-1"), orjson.dumps({"agent_id": "gw-1", "last_seq": SEQ_2_62}))

    while gw.outbox.pending_count:
        await gw.publisher.publish_once()

    assert len(d.ingress()) == 3  # 50 + 50 + 20 events, each batch forwarded once
    assert gw.transport.acked_seq == 120
    assert d.reasons() == ["BAD_SIGNATURE"]
    await d.close()


async def _publish_without_bridge(d: Deployment, gw: Gateway) -> None:
    """Publish the next batch while the bridge is down: nothing but the forged ack ever reaches the gateway."""
    d.mqtt.bridge = _Blackhole()
    await gw.publisher.publish_once()


class _Blackhole:
    async def handle(self, link: object, topic: str, data: bytes) -> None:
        return None
