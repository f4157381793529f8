"""A secure stack of its own (mTLS + ACLs on Kafka and Mosquitto) for the security suite.

Its name and ports are derived from the plaintext test stack's (+500), so it never collides with it. A stack
already running on those ports is reused and left running; one this session started is stopped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from broker.infra import Infra, InfraConfig
from broker.infra.acls import Deployment, Principal, Role
from broker.infra.security import grant_for_prefix
from broker.topics import Topic, TopicNames
from tests.conftest import TEST_KAFKA_PORT, TEST_MQTT_PORT
from tests.integration.security.clients import create_all_topics

SECURE_KAFKA_PORT = TEST_KAFKA_PORT + 500
SECURE_MQTT_PORT = TEST_MQTT_PORT + 500
APP_ID = "consent-core"


@pytest.fixture(scope="session")
def secure_infra() -> Iterator[Infra]:
    stack = Infra(
        InfraConfig(name="test-secure", kafka_port=SECURE_KAFKA_PORT, mqtt_port=SECURE_MQTT_PORT, secure=True)
    )
    already = stack.status().healthy
    if not already:
        stack.up()
    yield stack
    if not already:
        stack.down()


def role_principals(tag: str) -> dict[Role, Principal]:
    """One principal per role that ACLs apply to; names unique to the test so grants never leak across."""
    return {
        role: Principal(f"{role.value}-{tag}", role)
        for role in (
            Role.VERIFIER,
            Role.RECONCILER,
            Role.BRIDGE,
            Role.API,
            Role.MIRROR,
            Role.AGENT,
            Role.SUBSCRIBER,
            Role.WITNESS,
        )
    }


@pytest.fixture
async def secure_topics(secure_infra: Infra) -> AsyncIterator[tuple[TopicNames, dict[Role, Principal]]]:
    """Every registered topic under a unique prefix, and one principal per role granted its table rights on it."""
    tag = uuid.uuid4().hex[:10]
    names = TopicNames(f"s{tag}")
    operator = secure_infra.kafka_connection("operator")
    await create_all_topics(operator, names)
    principals = role_principals(tag)
    for principal in principals.values():
        secure_infra.issue(principal.name)
    await grant_for_prefix(operator, names.prefix, APP_ID, principals.values())
    yield names, principals


__all__ = ["APP_ID", "Deployment", "Topic"]
