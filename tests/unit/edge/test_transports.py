from __future__ import annotations

import orjson
import pytest

from edge_agent.transport_mqtt import ack_topic, ingress_topic, parse_ack


def test_topics_are_per_agent() -> None:
    assert ingress_topic("agent-1") == "consent/ingress/agent-1"
    assert ack_topic("agent-1") == "consent/ack/agent-1"


def test_bridge_ack_names_last_seq() -> None:
    assert parse_ack(orjson.dumps({"agent_id": "agent-1", "last_seq": 42}), "agent-1") == 42


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        orjson.dumps([1]),
        orjson.dumps({"agent_id": "agent-2", "last_seq": 42}),
        orjson.dumps({"agent_id": "agent-1", "last_seq": "42"}),
        orjson.dumps({"agent_id": "agent-1", "last_seq": True}),
        orjson.dumps({"agent_id": "agent-1", "last_seq": -1}),
        orjson.dumps({"agent_id": "agent-1"}),
    ],
)
def test_anything_else_is_not_an_ack(payload: bytes) -> None:
    assert parse_ack(payload, "agent-1") is None
