"""MqttMirror publishes over the MqttLink Protocol: retained QoS 1 messages, counted (in-memory link)."""

from __future__ import annotations

from broker.mirror import Publication
from broker.mirror.service import MirrorConfig, MqttMirror
from consent_io.connection import KafkaConnection, MqttConnection
from tests.fakes import FakeMqttLink


async def test_every_publication_is_sent_retained_at_qos_1_in_order_and_counted() -> None:
    config = MirrorConfig(
        MqttConnection("127.0.0.1", 1), KafkaConnection("127.0.0.1:1"), "events", "state", "shielding", "mirror"
    )
    mirror, link = MqttMirror(config), FakeMqttLink()
    kept = [Publication(f"consent/state/R1/p{i}", f"s{i}".encode()) for i in range(3)]
    publications = (*kept, Publication("consent/state/R1/gone", b""))

    await mirror._publish(link, publications)

    assert link.published == [
        ("consent/state/R1/p0", b"s0", 1, True),
        ("consent/state/R1/p1", b"s1", 1, True),
        ("consent/state/R1/p2", b"s2", 1, True),
        ("consent/state/R1/gone", b"", 1, True),
    ]
    assert mirror.published_total == 4
