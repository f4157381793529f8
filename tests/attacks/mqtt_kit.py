"""An in-process MQTT deployment for the bridge attacks: gateways (real outbox, publisher, MQTT transport),
the real bridge logic with the key registry, a fake Kafka producer, and an in-process Mosquitto."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from broker.bridge.service import BridgeConfig, MqttBridge
from consent_io.connection import KafkaConnection, MqttConnection
from consent_wire.authority import grantable
from consent_wire.avro_codec import encode
from consent_wire.dsse import BATCH_PAYLOAD_TYPE, AgentSigner
from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.signing import MAX_BATCH_BYTES
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher, PublisherSettings
from edge_agent.transport_mqtt import MqttTransport
from edge_agent.wire import AvroEventCodec, WireBatchSigner
from tests.fakes import FakeProducer, InProcessMqtt, draft

INGRESS, DEADLETTER = "t.ingress", "t.deadletter"
NOW_MS = 1_700_000_100_000  # the bridge's clock: after every key registration (effective 0)
SETTINGS = PublisherSettings(batch_max_events=50, linger_ms=0, backoff_base_s=0.01, backoff_cap_s=0.01)


@dataclass
class Gateway:
    agent_id: str
    signer: AgentSigner
    outbox: Outbox
    transport: MqttTransport
    publisher: Publisher


@dataclass
class Deployment:
    root: OperatorRoot = field(default_factory=OperatorRoot.generate)
    core: AgentSigner = field(default_factory=lambda: AgentSigner.generate("core"))
    producer: FakeProducer = field(default_factory=FakeProducer)
    registry: KeyRegistry = field(init=False)
    bridge: MqttBridge = field(init=False)
    mqtt: InProcessMqtt = field(init=False)
    outboxes: list[Outbox] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.registry = KeyRegistry(self.root.public_key)
        config = BridgeConfig(
            MqttConnection("127.0.0.1", 1), KafkaConnection("127.0.0.1:1"), INGRESS, DEADLETTER, "t.bridge"
        )
        self.bridge = MqttBridge(config, self.registry, self.core, now_ms=lambda: NOW_MS, producer=self.producer)
        self.mqtt = InProcessMqtt(self.bridge)

    async def gateway(self, directory: Path, agent_id: str, events: int) -> Gateway:
        """A registered gateway with ``events`` events pending in its outbox."""
        signer = AgentSigner.generate(agent_id)
        self.registry.apply(
            self.root.register(agent_id, signer.public_key_bytes, 0, site="A12345", capabilities=grantable("A12345"))
        )
        outbox = await Outbox.open(
            directory / f"{agent_id}.db", agent_id=agent_id, site="A12345", codec=AvroEventCodec(), cap_bytes=1 << 30
        )
        self.outboxes.append(outbox)
        await outbox.submit_many([draft(i) for i in range(events)])
        transport = MqttTransport(
            MqttConnection("127.0.0.1", 1), agent_id, self.core.public_key, ack_timeout_s=0.05, link=self.mqtt
        )
        self.mqtt.gateways[agent_id] = transport
        publisher = Publisher(outbox, WireBatchSigner(signer), transport, SETTINGS)
        return Gateway(agent_id, signer, outbox, transport, publisher)

    async def close(self) -> None:
        for transport in self.mqtt.gateways.values():
            await transport.close()
        for outbox in self.outboxes:
            await outbox.close()

    def ingress(self) -> list[bytes | None]:
        return [value for _, value, _, _ in self.producer.to(INGRESS)]

    def dead_letters(self) -> list[dict[str, bytes]]:
        return [dict(headers) for _, _, _, headers in self.producer.to(DEADLETTER)]

    def reasons(self) -> list[str]:
        return [letter["reason"].decode() for letter in self.dead_letters()]


def unsigned_batch(agent_id: str, key_id: str, first_seq: int, events: list[bytes]) -> bytes:
    """A SignedBatch record with a zero signature: what anyone can publish."""
    record = {
        "agent_id": agent_id,
        "key_id": key_id,
        "payload_type": BATCH_PAYLOAD_TYPE,
        "first_seq": first_seq,
        "events": events,
        "signature": bytes(64),
    }
    return encode("SignedBatch", record, max_bytes=MAX_BATCH_BYTES)
