"""The single registry of every topic the product uses, and its provisioning through the admin API.

Partition counts follow the keys: ingress is keyed by agent (order per agent), events, state and
shielding by patient pseudonym (order per patient), keys and audit have one partition because their
consumers need one total order (key history, audit hash chain).

Besides these fixed topics there is one per-site family: ``<prefix>.site.<SITE>``, the site's replica
feed (:data:`SITE_FEED`), one compacted single-partition topic per site holding the core-signed state
and shielding records of that site's patients only (``consent_rules.replica_feed``). The mirror
creates a site's feed the first time it has a record for that site (:func:`create_site_feed`): sites
become known from the events topic at run time, so no provisioning step could list them in advance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from broker.errors import CoreError
from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = [
    "SITE_FEED",
    "Family",
    "Topic",
    "TopicNames",
    "TopicProvisioningError",
    "TopicSpec",
    "create_site_feed",
    "create_topics",
    "describe_topics",
    "specs",
]

log = logging.getLogger(__name__)

WEEK_MS = 7 * 24 * 3600 * 1000
YEAR_MS = 365 * 24 * 3600 * 1000


class Topic(StrEnum):
    INGRESS = "ingress"
    EVENTS = "events"
    STATE = "state"
    SHIELDING = "shielding"
    KEYS = "keys"
    AUDIT = "audit"
    AUDIT_REQUESTS = "audit-requests"
    DEADLETTER = "deadletter"
    CHAIN = "chain"
    REPORTS = "reports"
    REPORT_MEMORY = "report-memory"


class Family(StrEnum):
    """A family of topics, one per member: ``<prefix>.<family>.<member>``."""

    SITE = "site"


N = TypeVar("N", Topic, Family)


@dataclass(frozen=True, slots=True)
class TopicSpec(Generic[N]):
    topic: N  # a Topic, or a Family (one topic per member)
    partitions: int
    compacted: bool
    retention_ms: int  # -1 = forever
    doc: str
    log_append_time: bool = False  # broker stamps arrival time (agents cannot set it)

    def configs(self, replication: int) -> dict[str, str]:
        configs = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(2 if replication >= 3 else 1),
            "compression.type": "producer",
        }
        if self.log_append_time:
            configs["message.timestamp.type"] = "LogAppendTime"
        if self.compacted:
            # keep the latest record per key forever; let the cleaner compact dirty segments promptly
            configs["min.cleanable.dirty.ratio"] = "0.1"
            configs["segment.ms"] = str(3600 * 1000)
        return configs


_SPECS: tuple[TopicSpec[Topic], ...] = (
    TopicSpec(Topic.INGRESS, 6, False, WEEK_MS, "signed batches from agents and the bridge; key agent id", True),
    TopicSpec(Topic.EVENTS, 6, False, -1, "verified events with inclusion proofs; key patient pseudonym"),
    TopicSpec(Topic.STATE, 6, True, -1, "authoritative consent state per patient (changelog); key pseudonym"),
    TopicSpec(Topic.SHIELDING, 6, True, -1, "shielding flags per patient; key pseudonym"),
    # append-only, never compacted: a tombstone must not be able to erase a revocation (consent_wire.keys)
    TopicSpec(Topic.KEYS, 1, False, -1, "operator-signed agent key lifecycle; key agent id"),
    TopicSpec(Topic.AUDIT, 1, False, -1, "tamper-evident audit log (hash chain); one partition, one order"),
    # many API instances (issue 16): each writes its decisions' audit records here (idempotent, acks=all) and
    # answers once acknowledged; the elected appender moves them into the log exactly once (offsets in its
    # transactions). Key = the record's patient key; value = exactly the entry's canonical record bytes
    TopicSpec(Topic.AUDIT_REQUESTS, 3, False, WEEK_MS, "audit records awaiting the appender; key patient pseudonym"),
    TopicSpec(Topic.CHAIN, 6, True, -1, "verifier cursor per agent (changelog); co-partitioned with ingress"),
    # the reports stage (issue 16): running report counts, key = aggregate key (no patient key); and its
    # changelog, each patient's report memory, co-partitioned with events (read and written by that stage only)
    TopicSpec(Topic.REPORTS, 3, True, -1, "report aggregates (running counts); key kind/group/day/partition"),
    TopicSpec(
        Topic.REPORT_MEMORY, 6, True, -1, "reports stage memory per patient (changelog); co-partitioned with events"
    ),
    TopicSpec(Topic.DEADLETTER, 3, False, 30 * 24 * 3600 * 1000, "rejected input with reason and source offset"),
)


# one partition: a site's feed is small (its own patients) and one partition keeps one order per key
SITE_FEED: TopicSpec[Family] = TopicSpec(
    Family.SITE, 1, True, -1, "per site: core-signed state/shielding of its patients; key kind/pk"
)


def specs() -> tuple[TopicSpec[Topic], ...]:
    return _SPECS


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Concrete topic names: ``<prefix>.<topic>`` (tests use a unique prefix each)."""

    prefix: str = "consent"

    def name(self, topic: Topic) -> str:
        return f"{self.prefix}.{topic.value}"

    @property
    def ingress(self) -> str:
        return self.name(Topic.INGRESS)

    @property
    def events(self) -> str:
        return self.name(Topic.EVENTS)

    @property
    def state(self) -> str:
        return self.name(Topic.STATE)

    @property
    def shielding(self) -> str:
        return self.name(Topic.SHIELDING)

    @property
    def keys(self) -> str:
        return self.name(Topic.KEYS)

    @property
    def audit(self) -> str:
        return self.name(Topic.AUDIT)

    @property
    def audit_requests(self) -> str:
        return self.name(Topic.AUDIT_REQUESTS)

    @property
    def chain(self) -> str:
        return self.name(Topic.CHAIN)

    @property
    def reports(self) -> str:
        return self.name(Topic.REPORTS)

    @property
    def report_memory(self) -> str:
        return self.name(Topic.REPORT_MEMORY)

    @property
    def deadletter(self) -> str:
        return self.name(Topic.DEADLETTER)

    def site_feed(self, site: str) -> str:
        """The replica feed of one site: ``<prefix>.site.<site>`` (read only by that site's agents)."""
        return f"{self.prefix}.{Family.SITE.value}.{site}"

    @property
    def site_feed_prefix(self) -> str:
        """What every site feed's name starts with (the mirror's PREFIXED ACL)."""
        return f"{self.prefix}.{Family.SITE.value}."


async def create_topics(
    conn: KafkaConnection, names: TopicNames, replication: int = 1, partitions: dict[Topic, int] | None = None
) -> list[str]:
    """Create every registered topic that does not exist yet; returns the names created."""
    wanted = [
        NewTopic(
            names.name(s.topic),
            (partitions or {}).get(s.topic, s.partitions),
            replication,
            topic_configs=s.configs(replication),
        )
        for s in _SPECS
    ]
    admin = kafka.admin(conn)
    await admin.start()
    try:
        response = await admin.create_topics(wanted)
    finally:
        await admin.close()
    created: list[str] = []
    for name, code, *rest in response.topic_errors:
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:
            message = rest[0] if rest else ""
            raise TopicProvisioningError(f"could not create topic {name}: error {code} {message}")
    log.info("topics created=%d", len(created))
    return created


async def create_site_feed(admin: AIOKafkaAdminClient, names: TopicNames, site: str, replication: int = 1) -> bool:
    """Create ``site``'s replica feed unless it exists; True if it was created now."""
    spec = SITE_FEED
    wanted = NewTopic(names.site_feed(site), spec.partitions, replication, topic_configs=spec.configs(replication))
    response = await admin.create_topics([wanted])
    for name, code, *rest in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            message = rest[0] if rest else ""
            raise TopicProvisioningError(f"could not create site feed {name}: error {code} {message}")
        if code == 0:
            log.info("site feed created topic=%s", name)
            return True
    return False


class TopicProvisioningError(CoreError):
    """The broker refused to create a topic for a reason other than that it exists."""

    reason = "TOPIC_PROVISIONING"


async def describe_topics(conn: KafkaConnection, names: TopicNames) -> dict[str, dict[str, str | int]]:
    """Partition count, replication factor and selected configs of every registered topic."""
    admin = kafka.admin(conn)
    await admin.start()
    try:
        topic_names = [names.name(s.topic) for s in _SPECS]
        described = await admin.describe_topics(topic_names)
        result: dict[str, dict[str, str | int]] = {}
        for t in described:
            parts = t["partitions"]
            result[t["topic"]] = {
                "partitions": len(parts),
                "replication": len(parts[0]["replicas"]) if parts else 0,
            }
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in topic_names])
        for response in responses:
            for resource in response.resources:
                name = resource[3]
                for entry in resource[4]:
                    if entry[0] in ("cleanup.policy", "min.insync.replicas", "retention.ms"):
                        result.setdefault(name, {})[entry[0]] = entry[1]
        return result
    finally:
        await admin.close()
