"""Stage ``bridge``: MQTT gateways -> Kafka ingress, then the core-signed app-level ack.

- :mod:`broker.bridge.forward`: whether to forward, refuse or ack one MQTT message (pure).
- :mod:`broker.bridge.service`: :class:`~broker.bridge.service.MqttBridge`, the I/O shell (aiomqtt,
  aiokafka); imported by :mod:`broker.runtime`, not here, so the pure part loads without them.
"""

from __future__ import annotations

from broker.bridge.forward import (
    ACK_PREFIX,
    INGRESS_FILTER,
    INGRESS_PREFIX,
    Forward,
    Refusal,
    ack_topic,
    agent_from_topic,
    plan_forward,
)

__all__ = [
    "ACK_PREFIX",
    "INGRESS_FILTER",
    "INGRESS_PREFIX",
    "Forward",
    "Refusal",
    "ack_topic",
    "agent_from_topic",
    "plan_forward",
]
