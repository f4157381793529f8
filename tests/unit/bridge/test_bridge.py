"""The MQTT bridge: topic -> key, verified batch -> core-signed ack, anything else refused with a reason."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.bridge import Forward, Refusal, agent_from_topic, plan_forward
from broker.bridge.service import BridgeConfig, MqttBridge
from consent_io.connection import KafkaConnection, MqttConnection
from consent_wire.ack import BatchAck, seal_ack
from consent_wire.dsse import AgentSigner
from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.signing import MAX_BATCH_BYTES
from edge_agent.transport_mqtt import ack_topic, check_ack, ingress_topic
from tests.factories import BASE_MS, SimAgent, consent, patient
from tests.fakes import FakeMqttLink, FakeProducer

_AGENT_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
CORE = AgentSigner.generate("core")


def _batch(agent: SimAgent, count: int) -> bytes:
    return agent.batch([agent.event(patient(i), consent(), BASE_MS + i) for i in range(count)])


def _registry(*agents: SimAgent) -> KeyRegistry:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    for agent in agents:
        registry.apply(agent.register(root))
    return registry


@given(agent_id=_AGENT_IDS)
@settings(max_examples=50)
def test_agent_id_is_read_back_from_the_gateway_ingress_topic(agent_id: str) -> None:
    assert agent_from_topic(ingress_topic(agent_id)) == agent_id


@pytest.mark.parametrize(
    "topic",
    ["consent/ingress/", "consent/ingress/a/b", "consent/ack/a", "other/ingress/a", "consent/ingress/" + "a" * 65],
)
def test_topics_outside_the_ingress_contract_name_no_agent(topic: str) -> None:
    assert agent_from_topic(topic) is None


@given(agent_id=_AGENT_IDS, last_seq=st.integers(min_value=0, max_value=2**63 - 1))
@settings(max_examples=50)
def test_the_core_signed_ack_is_what_the_gateway_transport_accepts(agent_id: str, last_seq: int) -> None:
    ack = seal_ack(CORE, BatchAck(agent_id, last_seq))
    assert check_ack(ack, agent_id, CORE.public_key, highest_sent=last_seq) == last_seq


def test_a_verified_batch_is_keyed_by_agent_and_acked_up_to_its_last_seq() -> None:
    agent = SimAgent.create("gw-1")
    registry = _registry(agent)
    _batch(agent, 3)  # seqs 1-3 went earlier
    payload = _batch(agent, 5)  # seqs 4-8
    assert plan_forward(ingress_topic("gw-1"), payload, registry, BASE_MS) == Forward(
        b"gw-1", payload, BatchAck("gw-1", 8)
    )


def test_a_batch_signed_by_another_agent_is_refused_as_a_topic_agent_mismatch() -> None:
    gw1, gw2 = SimAgent.create("gw-1"), SimAgent.create("gw-2")
    payload = _batch(gw2, 2)
    plan = plan_forward(ingress_topic("gw-1"), payload, _registry(gw1, gw2), BASE_MS)
    assert isinstance(plan, Refusal)
    assert (plan.reason, plan.data, plan.agent_id) == ("TOPIC_AGENT_MISMATCH", payload, "gw-1")


@pytest.mark.parametrize(("payload", "reason"), [(b"", "TRUNCATED"), (b"\x00\x01not avro", "BAD_MAGIC")])
def test_an_unreadable_payload_is_refused_with_the_decoder_reason(payload: bytes, reason: str) -> None:
    plan = plan_forward(ingress_topic("gw-1"), payload, _registry(), BASE_MS)
    assert plan == Refusal(reason, plan.message, payload, "gw-1")  # type: ignore[union-attr]


def test_a_batch_of_an_unregistered_agent_is_refused_unknown_key() -> None:
    payload = _batch(SimAgent.create("gw-1"), 1)
    plan = plan_forward(ingress_topic("gw-1"), payload, _registry(), BASE_MS)
    assert isinstance(plan, Refusal)
    assert plan.reason == "UNKNOWN_KEY"


def test_a_message_on_a_malformed_topic_is_refused() -> None:
    agent = SimAgent.create("gw-1")
    plan = plan_forward("consent/ingress/", _batch(agent, 1), _registry(agent), BASE_MS)
    assert isinstance(plan, Refusal)
    assert (plan.reason, plan.agent_id) == ("BAD_TOPIC", "")


def test_a_payload_over_the_batch_limit_is_refused_oversize_before_decoding() -> None:
    plan = plan_forward(ingress_topic("gw-1"), b"\xc3\x01" + bytes(MAX_BATCH_BYTES), _registry(), BASE_MS)
    assert isinstance(plan, Refusal)
    assert plan.reason == "OVERSIZE"


def _bridge(registry: KeyRegistry, producer: FakeProducer) -> MqttBridge:
    config = BridgeConfig(MqttConnection("127.0.0.1", 1), KafkaConnection("127.0.0.1:1"), "in", "dead", "app.bridge")
    return MqttBridge(config, registry, CORE, now_ms=lambda: BASE_MS, producer=producer)


def test_the_bridge_writes_a_verified_batch_to_ingress_then_publishes_the_signed_ack() -> None:
    agent = SimAgent.create("gw-1")
    producer, link = FakeProducer(), FakeMqttLink()
    payload = _batch(agent, 2)
    asyncio.run(_bridge(_registry(agent), producer).handle(link, ingress_topic("gw-1"), payload))
    assert producer.sent == [("in", payload, b"gw-1", ())]
    [(topic, ack, qos, retain)] = link.published
    assert (topic, qos, retain) == (ack_topic("gw-1"), 1, False)
    assert check_ack(ack or b"", "gw-1", CORE.public_key, highest_sent=2) == 2


def test_the_bridge_dead_letters_a_refused_message_with_its_reason_and_sends_no_ack() -> None:
    producer, link = FakeProducer(), FakeMqttLink()
    bridge = _bridge(_registry(), producer)
    asyncio.run(bridge.handle(link, ingress_topic("gw-1"), b"\x00\x01not avro"))
    [(topic, value, key, headers)] = producer.sent
    assert (topic, value, key) == ("dead", b"\x00\x01not avro", b"gw-1")
    assert dict(headers)["reason"] == b"BAD_MAGIC"
    assert dict(headers)["stage"] == b"bridge"
    assert link.published == []
    assert bridge.refused == {"BAD_MAGIC": 1}
