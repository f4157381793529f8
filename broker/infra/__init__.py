"""Local infrastructure managed by the project: a real Kafka (KRaft) and a real Mosquitto.

Used by ``consent-broker infra up|down|status``, the test harness and the demo.
Nothing here is needed to run against an existing Kafka cluster and MQTT broker.
"""

from broker.infra.errors import InfraError
from broker.infra.manager import Infra, InfraConfig, InfraStatus

__all__ = ["Infra", "InfraConfig", "InfraError", "InfraStatus"]
