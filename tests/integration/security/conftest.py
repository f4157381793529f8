"""The security suite runs on the (secure) test stack: mTLS + deny-by-default ACLs on Kafka and Mosquitto."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from broker.infra import Infra
from broker.infra.acls import Deployment, Principal, Role
from broker.infra.security import grant_for_prefix
from broker.topics import Topic, TopicNames
from tests.integration.security.clients import create_all_topics

APP_ID = "consent-core"


@pytest.fixture(scope="session")
def secure_infra(infra: Infra) -> Infra:
    """The test stack itself: it is secure by default, as every deployment is."""
    assert infra.config.secure
    return infra


def role_principals(tag: str) -> dict[Role, Principal]:
    """One principal per role that ACLs apply to; names unique to the test so grants never leak across."""
    return {
        role: Principal(f"{role.value}-{tag}", role)
        for role in (
            Role.VERIFIER,
            Role.RECONCILER,
            Role.REPORTS,
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
