"""The bench's own Kafka + Mosquitto ("bench" stack) and fresh topics for each measured run."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from broker.infra import Infra, InfraConfig
from broker.infra.process import is_running
from broker.keys_admin import publish_key_events
from broker.topics import Topic, TopicNames, create_topics
from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = ["BenchStack", "RunTopics", "bench_infra_config"]

log = logging.getLogger(__name__)

# The bench's own stack, apart from the tests' ("test": 19092/11883) and the default (9092/1883).
BENCH_KAFKA_PORT = 39092
BENCH_MQTT_PORT = 31883


def bench_infra_config() -> InfraConfig:
    return InfraConfig(name="bench", kafka_port=BENCH_KAFKA_PORT, mqtt_port=BENCH_MQTT_PORT)


@dataclass
class BenchStack:
    infra: Infra
    started_here: bool = False

    @classmethod
    def up(cls) -> BenchStack:
        infra = Infra(bench_infra_config())
        already = infra.status().healthy
        if not already:
            infra.up()
        return cls(infra, started_here=not already)

    @property
    def bootstrap(self) -> str:
        return self.infra.config.bootstrap

    @property
    def mqtt_port(self) -> int:
        return self.infra.config.mqtt_port

    def broker_pid(self) -> int | None:
        node = self.infra.config.kafka_nodes()[0]
        if not is_running(node.pid_file):
            return None
        return int(node.pid_file.read_text().strip())

    def down_if_started(self) -> None:
        if self.started_here:
            self.infra.down()


@dataclass(frozen=True, slots=True)
class RunTopics:
    """A run's own topic prefix, so no run restores or re-reads another run's state."""

    bootstrap: str
    names: TopicNames
    partitions: int

    async def create(self) -> None:
        per_topic = {
            t: self.partitions for t in (Topic.INGRESS, Topic.EVENTS, Topic.STATE, Topic.SHIELDING, Topic.CHAIN)
        }
        await create_topics(KafkaConnection(self.bootstrap), self.names, 1, per_topic)

    async def register(self, registrations: list[bytes]) -> None:
        await publish_key_events(KafkaConnection(self.bootstrap), self.names.keys, registrations)

    async def delete(self, extra: tuple[str, ...] = ()) -> None:
        """Best effort: keep the bench broker small across runs."""
        admin = kafka.admin(KafkaConnection(self.bootstrap))
        names = [self.names.name(t) for t in Topic] + list(extra)
        with contextlib.suppress(KafkaError, OSError):
            await admin.start()
            try:
                await admin.delete_topics(names)
            finally:
                await admin.close()
