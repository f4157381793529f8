"""A rig per fault test: its own topics (4 partitions, so work can move between instances), root key, agents."""

from __future__ import annotations

from dataclasses import dataclass

from broker.infra.local import LocalDeployment
from broker.keys_admin import publish_key_events
from broker.topics import Topic, TopicNames, create_topics
from consent_io.connection import KafkaConnection
from consent_wire.dsse import public_key_bytes
from consent_wire.keys import OperatorRoot
from tests.factories import SimAgent

__all__ = ["PARTITIONS", "Rig", "make_rig"]

PARTITIONS = 4  # more than one instance's share, so a rebalance really splits the work
SITES = ("A81001", "VM123", "B82002", "C83003")


@dataclass
class Rig:
    deployment: LocalDeployment
    topics: TopicNames
    root: OperatorRoot
    app_id: str
    agents: list[SimAgent]

    @property
    def conn(self) -> KafkaConnection:
        """The rig's own traffic and observation connection (the operator)."""
        return self.deployment.operator()

    def settings(self) -> dict[str, object]:
        """CoreSettings overrides for an in-process core of this rig (each stage its own TLS principal)."""
        return {
            **self.deployment.core_settings(),
            "topic_prefix": self.topics.prefix,
            "app_id": self.app_id,
            "root_public_key_hex": public_key_bytes(self.root.public_key).hex(),
        }

    def env(self) -> dict[str, str]:
        """Settings for ``python -m broker run`` (CONSENT_* variables)."""
        return {
            **self.deployment.core_env(),
            "CONSENT_TOPIC_PREFIX": self.topics.prefix,
            "CONSENT_APP_ID": self.app_id,
            "CONSENT_ROOT_PUBLIC_KEY_HEX": public_key_bytes(self.root.public_key).hex(),
            "CONSENT_STAGES": "verifier,reconciler",
        }


async def make_rig(deployment: LocalDeployment, prefix: str, replication: int = 1, agents: int = 4) -> Rig:
    topics = TopicNames(prefix)
    partitioned = [t for t in Topic if t not in (Topic.KEYS, Topic.AUDIT)]
    operator = deployment.operator()
    await create_topics(operator, topics, replication=replication, partitions=dict.fromkeys(partitioned, PARTITIONS))
    await deployment.grant(prefix, f"{prefix}-core")
    root = OperatorRoot.generate()
    sims = [SimAgent.create(site=SITES[i % len(SITES)], skew_ms=(i % 3 - 1) * 60_000) for i in range(agents)]
    await publish_key_events(operator, topics.keys, [a.register(root) for a in sims])
    return Rig(deployment, topics, root, f"{prefix}-core", sims)
