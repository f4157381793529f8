"""Who may do what: the one table of Kafka ACLs and Mosquitto ACL lines, per principal (pure; no I/O).

A principal is the CN of its client certificate (``ssl.principal.mapping.rules`` on Kafka,
``use_identity_as_username`` on Mosquitto). Kafka names follow ``broker/topics.py`` (``<prefix>.<topic>``)
and ``broker/stage.py`` (group ``<app_id>.<stage>``, transactional ids ``<app_id>.<stage>.<partition>``).

======================  =========================================================================
role                    Kafka (everything else is denied: allow.everyone.if.no.acl.found=false)
======================  =========================================================================
operator, broker        super users (no ACL needed); only the operator writes ``<prefix>.keys``
verifier                read ingress, keys, chain; write events, chain, deadletter; group
                        ``<app>.verifier``; transactional ids ``<app>.verifier.*``
reconciler              read events, state; write state, shielding, deadletter; group
                        ``<app>.reconciler``; transactional ids ``<app>.reconciler.*``
bridge                  read keys; write ingress, deadletter (idempotent)
reports                 read events, report-memory; write reports, report-memory; group
                        ``<app>.reports``; transactional ids ``<app>.reports.*`` (no state, no audit)
api                     read state, events, audit, reports; write audit (transactional: the fenced audit appender);
                        read + write audit-requests and its group ``<app>.api.audit-requests`` (issue 16)
mirror                  read events, state, shielding; create and write every site feed
                        ``<prefix>.site.`` (PREFIXED; idempotent)
agent                   write ingress (idempotent); read its own site's feed ``<prefix>.site.<site>``
                        (LITERAL; none without a site). Never the national state or shielding topics
subscriber              read state, shielding; groups ``<name>.*``
witness                 read audit; groups ``<name>.*``
monitor                 read deadletter; groups ``<name>.*`` (operations: why inputs were refused)
======================  =========================================================================

Every core stage may also DESCRIBE every topic under ``<prefix>.`` (metadata only: the runtime checks at
start that all registered topics exist). MQTT (topics of edge_agent/transport_mqtt.py, broker/bridge.py,
broker/mirror.py): a gateway writes ``consent/ingress/<agent>``, reads ``consent/ack/<agent>`` and its
site's ``consent/state|shielding/<site>/+``; the bridge reads every ingress topic and writes every ack;
the mirror writes every state and shielding topic; the operator may use every topic (troubleshooting, as
its Kafka super user); nobody else may use MQTT.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

__all__ = [
    "AUDIT_REQUESTS_GROUP",
    "CLUSTER",
    "CORE_ROLES",
    "SITE_FEEDS",
    "AclOperation",
    "Deployment",
    "KafkaAcl",
    "PatternType",
    "Principal",
    "ResourceType",
    "Role",
    "core_principal",
    "default_principals",
    "kafka_acls",
    "mosquitto_acl_file",
    "mqtt_acl_lines",
    "super_users",
]

CLUSTER = "kafka-cluster"  # the one name of Kafka's cluster resource


class ResourceType(IntEnum):
    """Kafka's wire codes (org.apache.kafka.common.resource.ResourceType)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class PatternType(IntEnum):
    """Kafka's wire codes (org.apache.kafka.common.resource.PatternType)."""

    LITERAL = 3
    PREFIXED = 4


class AclOperation(IntEnum):
    """Kafka's wire codes (org.apache.kafka.common.acl.AclOperation). READ and WRITE imply DESCRIBE."""

    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    IDEMPOTENT_WRITE = 12


ALLOW = 3  # AclPermissionType.ALLOW


class Role(StrEnum):
    OPERATOR = "operator"
    BROKER = "broker"
    VERIFIER = "verifier"
    RECONCILER = "reconciler"
    REPORTS = "reports"
    BRIDGE = "bridge"
    API = "api"
    MIRROR = "mirror"
    AGENT = "agent"
    SUBSCRIBER = "subscriber"
    WITNESS = "witness"
    MONITOR = "monitor"  # operations: follows the dead-letter topic (`consent-broker subscribe --topic deadletter`)


SUPER_ROLES = frozenset({Role.OPERATOR, Role.BROKER})
CORE_ROLES = (Role.VERIFIER, Role.RECONCILER, Role.REPORTS, Role.BRIDGE, Role.API, Role.MIRROR)
_TRANSACTIONAL = frozenset({Role.VERIFIER, Role.RECONCILER, Role.REPORTS, Role.API})  # api: the fenced audit appender
_IDEMPOTENT = frozenset({Role.BRIDGE, Role.API, Role.AGENT, Role.MIRROR})
AUDIT_REQUESTS_GROUP = ".audit-requests"  # suffix of the api stage's group: the appender's audit-requests offsets
SITE_FEEDS = "site."  # topic name prefix of the per-site replica feeds (broker.topics.Family.SITE)


@dataclass(frozen=True, slots=True)
class Principal:
    """A certificate CN with its role; ``site`` is the replica feed an agent (gateway) may read."""

    name: str
    role: Role
    site: str = ""


@dataclass(frozen=True, slots=True)
class Deployment:
    """The names one deployment's ACLs are about (tests each use their own topic prefix)."""

    prefix: str = "consent"
    app_id: str = "consent-core"

    def topic(self, topic: str) -> str:
        return f"{self.prefix}.{topic}"


@dataclass(frozen=True, slots=True, order=True)
class KafkaAcl:
    """One ALLOW binding from any host (``AclBinding`` in Kafka's Admin API)."""

    principal: str  # "User:<name>"
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    operation: AclOperation
    host: str = "*"
    permission: int = ALLOW


def core_principal(role: Role) -> Principal:
    """The certificate name of a core stage: ``core.<stage>``."""
    return Principal(f"core.{role.value}", role)


def default_principals() -> tuple[Principal, ...]:
    """Issued by ``consent-broker infra up``: the super users and one principal per core stage."""
    return (Principal("operator", Role.OPERATOR), Principal("broker", Role.BROKER), *map(core_principal, CORE_ROLES))


def super_users(principals: Iterable[Principal]) -> str:
    """Kafka's ``super.users`` value."""
    return ";".join(f"User:{p.name}" for p in principals if p.role in SUPER_ROLES)


# topic suffix -> operations, per role (topic suffixes as in broker.topics.Topic)
_TOPICS: dict[Role, tuple[tuple[str, AclOperation], ...]] = {
    Role.VERIFIER: (
        ("ingress", AclOperation.READ),
        ("keys", AclOperation.READ),
        ("chain", AclOperation.READ),
        ("events", AclOperation.WRITE),
        ("chain", AclOperation.WRITE),
        ("deadletter", AclOperation.WRITE),
    ),
    Role.RECONCILER: (
        ("events", AclOperation.READ),
        ("state", AclOperation.READ),
        ("state", AclOperation.WRITE),
        ("shielding", AclOperation.WRITE),
        ("deadletter", AclOperation.WRITE),
    ),
    Role.REPORTS: (
        ("events", AclOperation.READ),
        ("report-memory", AclOperation.READ),
        ("report-memory", AclOperation.WRITE),
        ("reports", AclOperation.WRITE),
    ),
    Role.BRIDGE: (
        ("ingress", AclOperation.WRITE),
        ("keys", AclOperation.READ),  # acks only batches that verify: follows the key registry
        ("deadletter", AclOperation.WRITE),  # refuses the rest with a reason
    ),
    Role.API: (
        ("state", AclOperation.READ),
        ("events", AclOperation.READ),
        ("audit", AclOperation.READ),
        ("audit", AclOperation.WRITE),
        ("audit-requests", AclOperation.READ),  # the elected appender moves them into the log
        ("audit-requests", AclOperation.WRITE),  # every API instance's audit records (issue 16)
        ("reports", AclOperation.READ),  # the report queries read the aggregates, never raw events
    ),
    Role.MIRROR: (
        ("events", AclOperation.READ),
        ("state", AclOperation.READ),
        ("shielding", AclOperation.READ),
    ),
    Role.AGENT: (("ingress", AclOperation.WRITE),),
    Role.SUBSCRIBER: (("state", AclOperation.READ), ("shielding", AclOperation.READ)),
    Role.WITNESS: (("audit", AclOperation.READ),),
    Role.MONITOR: (("deadletter", AclOperation.READ),),
}


def kafka_acls(principal: Principal, deployment: Deployment) -> tuple[KafkaAcl, ...]:
    """Exactly the bindings ``principal`` needs in ``deployment`` (none for super users), sorted."""
    if principal.role in SUPER_ROLES:
        return ()
    user = f"User:{principal.name}"
    d = deployment
    acls = [
        KafkaAcl(user, ResourceType.TOPIC, d.topic(suffix), PatternType.LITERAL, op)
        for suffix, op in _TOPICS[principal.role]
    ]
    if principal.role in CORE_ROLES:
        acls.append(KafkaAcl(user, ResourceType.TOPIC, f"{d.prefix}.", PatternType.PREFIXED, AclOperation.DESCRIBE))
    acls += _site_feed_acls(principal, user, d)
    if principal.role in _TRANSACTIONAL:
        stage = f"{d.app_id}.{principal.role.value}"
        acls.append(KafkaAcl(user, ResourceType.GROUP, stage, PatternType.LITERAL, AclOperation.READ))
        if principal.role == Role.API:  # the appender's offsets on audit-requests (broker.audit.appender)
            acls.append(KafkaAcl(user, ResourceType.GROUP, f"{stage}{AUDIT_REQUESTS_GROUP}", PatternType.LITERAL,
                                 AclOperation.READ))  # fmt: skip
        acls.append(
            KafkaAcl(user, ResourceType.TRANSACTIONAL_ID, f"{stage}.", PatternType.PREFIXED, AclOperation.WRITE)
        )
    if principal.role in _IDEMPOTENT:
        acls.append(KafkaAcl(user, ResourceType.CLUSTER, CLUSTER, PatternType.LITERAL, AclOperation.IDEMPOTENT_WRITE))
    if principal.role in (Role.SUBSCRIBER, Role.WITNESS, Role.MONITOR):
        acls.append(KafkaAcl(user, ResourceType.GROUP, f"{principal.name}.", PatternType.PREFIXED, AclOperation.READ))
    return tuple(sorted(set(acls)))


def _site_feed_acls(principal: Principal, user: str, d: Deployment) -> list[KafkaAcl]:
    """The mirror creates and writes every site feed; an agent reads only its own site's."""
    feeds = d.topic(SITE_FEEDS)
    if principal.role == Role.MIRROR:
        return [
            KafkaAcl(user, ResourceType.TOPIC, feeds, PatternType.PREFIXED, AclOperation.CREATE),
            KafkaAcl(user, ResourceType.TOPIC, feeds, PatternType.PREFIXED, AclOperation.WRITE),
        ]
    if principal.role == Role.AGENT and principal.site:
        return [KafkaAcl(user, ResourceType.TOPIC, feeds + principal.site, PatternType.LITERAL, AclOperation.READ)]
    return []


def mqtt_acl_lines(principal: Principal) -> tuple[str, ...]:
    """Mosquitto ``acl_file`` lines for one principal (empty: the principal may not use MQTT at all)."""
    role, name = principal.role, principal.name
    if role == Role.AGENT:
        lines = [f"topic write consent/ingress/{name}", f"topic read consent/ack/{name}"]
        if principal.site:
            lines += [
                f"topic read consent/state/{principal.site}/+",
                f"topic read consent/shielding/{principal.site}/+",
            ]
    elif role == Role.BRIDGE:
        lines = ["topic read consent/ingress/+", "topic write consent/ack/+"]
    elif role == Role.MIRROR:
        lines = ["topic write consent/state/#", "topic write consent/shielding/#"]
    elif role == Role.OPERATOR:
        lines = ["topic readwrite #"]  # the operator's own troubleshooting principal, as on Kafka (super user)
    else:
        return ()
    return (f"user {name}", *lines)


def mosquitto_acl_file(principals: Iterable[Principal]) -> str:
    """The whole ``acl_file``: a user not listed here may connect (valid certificate) but not publish or read."""
    out = ["# Written by consent-broker infra from broker/infra/acls.py; regenerated on every change.", ""]
    for p in sorted(principals, key=lambda p: p.name):
        lines = mqtt_acl_lines(p)
        if lines:
            out += [*lines, ""]
    return "\n".join(out)
