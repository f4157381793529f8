"""A rig per fault test: its own topics (4 partitions, so work can move between instances), root key, agents."""

from __future__ import annotations

from dataclasses import dataclass

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
    bootstrap: str
    topics: TopicNames
    root: OperatorRoot
    app_id: str
    agents: list[SimAgent]

    def env(self) -> dict[str, str]:
        """Settings for ``python -m broker run`` (CONSENT_* variables)."""
        return {
            "CONSENT_BOOTSTRAP": self.bootstrap,
            "CONSENT_TOPIC_PREFIX": self.topics.prefix,
            "CONSENT_APP_ID": self.app_id,
            "CONSENT_ROOT_PUBLIC_KEY_HEX": public_key_bytes(self.root.public_key).hex(),
            "CONSENT_STAGES": "verifier,reconciler",
        }


async def make_rig(bootstrap: str, prefix: str, replication: int = 1, agents: int = 4) -> Rig:
    topics = TopicNames(prefix)
    partitioned = [t for t in Topic if t not in (Topic.KEYS, Topic.AUDIT)]
    await create_topics(
        KafkaConnection(bootstrap), topics, replication=replication, partitions=dict.fromkeys(partitioned, PARTITIONS)
    )
    root = OperatorRoot.generate()
    sims = [SimAgent.create(site=SITES[i % len(SITES)], skew_ms=(i % 3 - 1) * 60_000) for i in range(agents)]
    await publish_key_events(KafkaConnection(bootstrap), topics.keys, [a.register(root) for a in sims])
    return Rig(bootstrap, topics, root, f"{prefix}-core", sims)
