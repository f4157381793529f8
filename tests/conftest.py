"""Session fixtures: the real Kafka broker and Mosquitto, started once per test run by the project's own code.

A stack already running on the test ports (e.g. from a previous run with ``make infra-test-up``) is reused and
left running; a stack this session started is stopped at the end, leaving no process behind.
Every test gets unique topic names and consumer group ids, so tests never see each other's records.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from broker.infra import Infra, InfraConfig
from broker.topics import TopicNames, create_topics
from consent_io.connection import KafkaConnection, MqttConnection

TEST_KAFKA_PORT = int(os.environ.get("CONSENT_TEST_KAFKA_PORT", "19092"))
TEST_MQTT_PORT = int(os.environ.get("CONSENT_TEST_MQTT_PORT", "11883"))


def _stack(name: str, kafka_port: int, mqtt_port: int, nodes: int = 1) -> Iterator[Infra]:
    stack = Infra(InfraConfig(name=name, kafka_port=kafka_port, mqtt_port=mqtt_port, nodes=nodes))
    already = stack.status().healthy
    if not already:
        stack.up()
    yield stack
    if not already:
        stack.down()


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """The single-node Kafka and Mosquitto used by integration tests."""
    yield from _stack("test", TEST_KAFKA_PORT, TEST_MQTT_PORT)


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: Infra) -> str:
    return infra.config.bootstrap


@pytest.fixture(scope="session")
def kafka_connection(kafka_bootstrap: str) -> KafkaConnection:
    """How test clients reach the test broker (every client is built from it by consent_io)."""
    return KafkaConnection(kafka_bootstrap)


@pytest.fixture(scope="session")
def mqtt_endpoint(infra: Infra) -> tuple[str, int]:
    return ("127.0.0.1", infra.config.mqtt_port)


@pytest.fixture(scope="session")
def mqtt_connection(mqtt_endpoint: tuple[str, int]) -> MqttConnection:
    return MqttConnection(*mqtt_endpoint)


@pytest.fixture
def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def unique_group(unique_prefix: str) -> str:
    return f"{unique_prefix}-group"


@pytest.fixture
async def topic_names(kafka_connection: KafkaConnection, unique_prefix: str) -> AsyncIterator[TopicNames]:
    """Every registered topic, created under a prefix unique to this test (2 partitions each)."""
    names = TopicNames(unique_prefix)
    await create_topics(kafka_connection, names, replication=1, partitions=dict.fromkeys(_all_topics(), 2))
    yield names


def _all_topics() -> list:  # type: ignore[type-arg]
    from broker.topics import Topic

    return [t for t in Topic if t not in (Topic.KEYS, Topic.AUDIT)]


@pytest.fixture(scope="session")
def cluster3() -> Iterator[Infra]:
    """A three-broker KRaft cluster (RF 3, min ISR 2) for replication and failover tests."""
    yield from _stack("test3", TEST_KAFKA_PORT + 100, TEST_MQTT_PORT + 100, nodes=3)
