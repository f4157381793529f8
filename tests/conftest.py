"""Session fixtures: the real Kafka broker and Mosquitto, started once per test run by the project's own code.

The stack is secure, as in production: mutual TLS with a private CA and deny-by-default ACLs on Kafka and
Mosquitto. Test-side observers and provisioning act as the ``operator`` principal (a super user); every core
stage runs as its own principal ``core.<stage>`` and every agent as its agent id, with exactly the ACLs the
table in broker/infra/acls.py gives them on the test's own topic prefix (:class:`LocalDeployment`).

A stack already running on the test ports is reused and left running; a stack this session started is stopped
at the end, leaving no process behind. Every test gets unique topic names, consumer group ids and an app id,
so tests never see each other's records.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import hypothesis  # imported up front: a lazy first import while the interpreter shuts down (an unraisable-
import pytest  #   warning hook) trips CPython 3.11's "AST constructor recursion depth mismatch"

from broker.infra import Infra, InfraConfig
from broker.infra.local import LocalDeployment
from broker.topics import TopicNames, create_topics
from consent_io.connection import KafkaConnection, MqttConnection
from tests.factories import NATIONAL_SECRET

# Property tests: random by default (a developer's run explores new examples); CI runs the "ci" profile
# (HYPOTHESIS_PROFILE=ci in .ci/run), derandomized so that a gate never fails by the luck of the draw. Explore
# wider before a release with HYPOTHESIS_PROFILE=explore (random; more examples where a test sets no count of
# its own; a failure prints the blob that reproduces it).
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis.settings.register_profile("explore", max_examples=1000, print_blob=True)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

DEFAULT_TEST_KAFKA_PORT = 19092  # below Linux's ephemeral range (tests/unit/infra/test_ports.py)
DEFAULT_TEST_MQTT_PORT = 11883
CLUSTER_PORT_OFFSET = 100  # the 3-node stack ("test3") listens on the test ports + 100
TEST_KAFKA_PORT = int(os.environ.get("CONSENT_TEST_KAFKA_PORT", str(DEFAULT_TEST_KAFKA_PORT)))
TEST_MQTT_PORT = int(os.environ.get("CONSENT_TEST_MQTT_PORT", str(DEFAULT_TEST_MQTT_PORT)))


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
def deployment(infra: Infra) -> LocalDeployment:
    """Credentials per principal on the test stack."""
    return LocalDeployment(infra, national_secret=NATIONAL_SECRET)


@pytest.fixture(scope="session")
def kafka_connection(deployment: LocalDeployment) -> KafkaConnection:
    """How test-side clients (provisioning, observers) reach the test broker: as the operator."""
    return deployment.operator()


@pytest.fixture(scope="session")
def mqtt_endpoint(infra: Infra) -> tuple[str, int]:
    return ("127.0.0.1", infra.config.mqtt_port)


@pytest.fixture(scope="session")
def mqtt_connection(deployment: LocalDeployment) -> MqttConnection:
    """Test-side MQTT observers connect as the operator (may use every topic)."""
    return deployment.operator_mqtt()


@pytest.fixture
def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def unique_group(unique_prefix: str) -> str:
    return f"{unique_prefix}-group"


@pytest.fixture
def app_id(unique_prefix: str) -> str:
    """The core's app id in this test (consumer groups and transactional ids start with it)."""
    return f"{unique_prefix}-core"


@pytest.fixture
async def topic_names(
    kafka_connection: KafkaConnection, deployment: LocalDeployment, unique_prefix: str, app_id: str
) -> AsyncIterator[TopicNames]:
    """Every registered topic, created under a prefix unique to this test (2 partitions each), with the core
    stages' ACLs on it for ``app_id``."""
    names = TopicNames(unique_prefix)
    await create_topics(kafka_connection, names, replication=1, partitions=dict.fromkeys(_all_topics(), 2))
    await deployment.grant(unique_prefix, app_id)
    yield names


def _all_topics() -> list:  # type: ignore[type-arg]
    from broker.topics import Topic

    return [t for t in Topic if t not in (Topic.KEYS, Topic.AUDIT)]


@pytest.fixture(scope="session")
def cluster3() -> Iterator[Infra]:
    """A three-broker KRaft cluster (RF 3, min ISR 2) for replication and failover tests."""
    yield from _stack("test3", TEST_KAFKA_PORT + CLUSTER_PORT_OFFSET, TEST_MQTT_PORT + CLUSTER_PORT_OFFSET, nodes=3)
