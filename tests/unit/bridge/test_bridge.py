"""The MQTT bridge's pure rules: topic -> key, batch header -> app-level ack, bad input forwarded without ack."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.bridge import BridgeAck, agent_from_topic, plan_forward
from edge_agent.transport_mqtt import ack_topic, ingress_topic, parse_ack
from tests.factories import BASE_MS, SimAgent, consent, patient

_AGENT_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)


def _batch(agent: SimAgent, count: int) -> bytes:
    return agent.batch([agent.event(patient(i), consent(), BASE_MS + i) for i in range(count)])


@given(agent_id=_AGENT_IDS)
@settings(max_examples=50)
def test_agent_id_is_read_back_from_the_gateway_ingress_topic(agent_id: str) -> None:
    assert agent_from_topic(ingress_topic(agent_id)) == agent_id


@pytest.mark.parametrize("topic", ["consent/ingress/", "consent/ingress/a/b", "consent/ack/a", "other/ingress/a"])
def test_topics_outside_the_ingress_contract_name_no_agent(topic: str) -> None:
    assert agent_from_topic(topic) is None


@given(agent_id=_AGENT_IDS, last_seq=st.integers(min_value=0, max_value=2**63 - 1))
@settings(max_examples=50)
def test_the_bridge_ack_is_what_the_gateway_transport_parses(agent_id: str, last_seq: int) -> None:
    ack = BridgeAck(agent_id, last_seq)
    assert ack.topic == ack_topic(agent_id)
    assert parse_ack(ack.to_bytes(), agent_id) == last_seq


def test_a_valid_batch_is_keyed_by_agent_and_acked_up_to_its_last_seq() -> None:
    agent = SimAgent.create("gw-1")
    _batch(agent, 3)  # seqs 1-3 went earlier
    payload = _batch(agent, 5)  # seqs 4-8
    forward = plan_forward(ingress_topic("gw-1"), payload)
    assert (forward.key, forward.value, forward.ack, forward.no_ack_reason) == (
        b"gw-1",
        payload,
        BridgeAck("gw-1", 8),
        None,
    )


def test_a_batch_labelled_for_another_agent_is_forwarded_but_not_acked() -> None:
    payload = _batch(SimAgent.create("gw-2"), 2)
    forward = plan_forward(ingress_topic("gw-1"), payload)
    assert (forward.key, forward.value, forward.ack, forward.no_ack_reason) == (
        b"gw-1",
        payload,
        None,
        "AGENT_MISMATCH",
    )


@pytest.mark.parametrize(("payload", "reason"), [(b"", "TRUNCATED"), (b"\x00\x01not avro", "BAD_MAGIC")])
def test_an_unreadable_payload_is_forwarded_for_the_verifier_to_dead_letter_and_not_acked(
    payload: bytes, reason: str
) -> None:
    forward = plan_forward(ingress_topic("gw-1"), payload)
    assert (forward.key, forward.value, forward.ack, forward.no_ack_reason) == (b"gw-1", payload, None, reason)


def test_a_message_on_a_malformed_topic_is_forwarded_unkeyed_and_not_acked() -> None:
    payload = _batch(SimAgent.create("gw-1"), 1)
    forward = plan_forward("consent/ingress/", payload)
    assert (forward.key, forward.ack, forward.no_ack_reason) == (None, None, "BAD_TOPIC")
