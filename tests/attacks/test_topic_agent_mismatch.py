"""Issue 12 item 2: a batch published on another gateway's topic is dead-lettered, never forwarded or acked.

Reproduced on the first release: gateway gw-2 published its own validly signed batch on gw-1's
topic; the bridge forwarded it keyed ``gw-1``, so gw-2's cursor existed on two ingress partitions
and, with two verifier instances, the same (agent, seq) reached the events topic twice.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.transport_mqtt import ingress_topic
from tests.attacks.mqtt_kit import DEADLETTER, Deployment
from tests.factories import BASE_MS, SimAgent, consent, patient


async def test_a_signed_batch_on_another_gateways_topic_is_dead_lettered_and_not_acked(tmp_path: Path) -> None:
    d = Deployment()
    gw1 = await d.gateway(tmp_path, "gw-1", events=10)
    gw2 = await d.gateway(tmp_path, "gw-2", events=0)
    sim = SimAgent("gw-2", "A12345", gw2.signer)
    batch = sim.batch([sim.event(patient(i), consent(), BASE_MS + i) for i in range(3)])

    await d.mqtt.publish(ingress_topic("gw-1"), batch, qos=1)  # gw-2's credentials, gw-1's topic

    assert d.ingress() == []
    assert d.mqtt.acks == []
    [(topic, value, key, headers)] = d.producer.sent
    assert (topic, value, key) == (DEADLETTER, batch, b"gw-1")
    assert dict(headers)["reason"] == b"TOPIC_AGENT_MISMATCH"
    # gw-1 is not disturbed: its own batches are forwarded under its own key and acked
    assert await gw1.publisher.publish_once() == 10
    assert [key for _, _, key, _ in d.producer.to("t.ingress")] == [b"gw-1"]
    assert gw1.outbox.pending_count == 0
    await d.close()
