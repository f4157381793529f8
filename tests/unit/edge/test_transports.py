from __future__ import annotations

import orjson
import pytest

from consent_io.connection import MqttConnection
from consent_wire.ack import BatchAck, seal_ack
from consent_wire.dsse import AgentSigner
from edge_agent.errors import AckBadSignatureError, AckBeyondSentError, AckMalformedError, AckWrongAgentError
from edge_agent.transport_mqtt import MqttTransport, ack_topic, check_ack, ingress_topic

CORE = AgentSigner.generate("core")


def test_topics_are_per_agent() -> None:
    assert ingress_topic("agent-1") == "consent/ingress/agent-1"
    assert ack_topic("agent-1") == "consent/ack/agent-1"


def test_a_core_signed_ack_names_last_seq() -> None:
    assert check_ack(seal_ack(CORE, BatchAck("agent-1", 42)), "agent-1", CORE.public_key, highest_sent=50) == 42


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"not an ack", AckMalformedError),
        (orjson.dumps({"agent_id": "agent-1", "last_seq": 42}), AckMalformedError),  # the old unsigned ack
        (b"\xc3\x01" + bytes(2000), AckMalformedError),  # over MAX_ACK_BYTES
        (seal_ack(AgentSigner.generate("core"), BatchAck("agent-1", 42)), AckBadSignatureError),  # another key
        (seal_ack(CORE, BatchAck("agent-2", 42)), AckWrongAgentError),
        (seal_ack(CORE, BatchAck("agent-1", 51)), AckBeyondSentError),
    ],
)
def test_anything_else_is_refused_with_its_reason(payload: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_ack(payload, "agent-1", CORE.public_key, highest_sent=50)


def test_the_transport_counts_refused_acks_and_never_advances_on_them() -> None:
    transport = MqttTransport(MqttConnection("127.0.0.1", 1), "agent-1", CORE.public_key)
    transport.on_ack(seal_ack(CORE, BatchAck("agent-1", 5)))  # nothing sent yet
    transport.on_ack(b"junk")
    assert transport.acked_seq == 0
    assert dict(transport.refused_acks) == {"ACK_BEYOND_SENT": 1, "ACK_MALFORMED": 1}
