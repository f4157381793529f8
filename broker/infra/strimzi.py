"""Strimzi ``Kafka``, ``KafkaNodePool``, ``KafkaTopic`` and ``KafkaUser`` resources from the same tables as
``infra`` and ``topics create`` (pure; no I/O).

Topics come from :func:`broker.topics.specs` (partitions, configs with the production replication), users
and their ACLs from :func:`broker.infra.acls.kafka_acls` for the core stages and the audit witness, super
users from :func:`broker.infra.acls.super_users`. ``tools/generate_strimzi.py`` writes them into the Helm
chart (deploy/helm/consent-broker/templates/strimzi.yaml); tests/ops/test_helm_chart.py checks that the
committed file is exactly what the generator makes now, so the chart cannot drift from the tables.

Strimzi's user operator issues each ``KafkaUser`` a certificate with CN = the resource name, which is the
principal name the ACL table uses (``core.<stage>``), so the names carry over unchanged.
"""

from __future__ import annotations

from typing import Any

from broker.infra.acls import (
    CORE_ROLES,
    AclOperation,
    Deployment,
    KafkaAcl,
    PatternType,
    Principal,
    ResourceType,
    Role,
    core_principal,
    default_principals,
    kafka_acls,
    super_users,
)
from broker.topics import TopicNames, specs

__all__ = ["API_VERSION", "WITNESS", "kafka_cluster", "kafka_topics", "kafka_users", "resources"]

API_VERSION = "kafka.strimzi.io/v1"
CLUSTER_LABEL = "strimzi.io/cluster"
WITNESS = Principal("audit-witness", Role.WITNESS)  # the chart's witness Deployment reads the audit topic as this

_RESOURCE = {
    ResourceType.TOPIC: "topic",
    ResourceType.GROUP: "group",
    ResourceType.CLUSTER: "cluster",
    ResourceType.TRANSACTIONAL_ID: "transactionalId",
}
_PATTERN = {PatternType.LITERAL: "literal", PatternType.PREFIXED: "prefix"}
_OPERATION = {
    AclOperation.READ: "Read",
    AclOperation.WRITE: "Write",
    AclOperation.CREATE: "Create",
    AclOperation.DESCRIBE: "Describe",
    AclOperation.IDEMPOTENT_WRITE: "IdempotentWrite",
}


def _meta(name: str, cluster: str) -> dict[str, Any]:
    return {"name": name, "labels": {CLUSTER_LABEL: cluster, "app.kubernetes.io/part-of": "consent-broker"}}


def kafka_topics(deployment: Deployment, cluster: str, replication: int) -> list[dict[str, Any]]:
    names = TopicNames(deployment.prefix)
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "KafkaTopic",
            "metadata": _meta(names.name(spec.topic), cluster),
            "spec": {
                "topicName": names.name(spec.topic),
                "partitions": spec.partitions,
                "replicas": replication,
                "config": spec.configs(replication),
            },
        }
        for spec in specs()
    ]


def _acl(acl: KafkaAcl) -> dict[str, Any]:
    resource: dict[str, Any] = {"type": _RESOURCE[acl.resource_type]}
    if acl.resource_type is not ResourceType.CLUSTER:
        resource |= {"name": acl.resource_name, "patternType": _PATTERN[acl.pattern_type]}
    return {"resource": resource, "operations": [_OPERATION[acl.operation]], "host": acl.host}


def kafka_users(deployment: Deployment, cluster: str) -> list[dict[str, Any]]:
    principals = [*(core_principal(role) for role in CORE_ROLES), WITNESS]
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "KafkaUser",
            "metadata": _meta(p.name, cluster),
            "spec": {
                "authentication": {"type": "tls"},
                "authorization": {"type": "simple", "acls": [_acl(a) for a in kafka_acls(p, deployment)]},
            },
        }
        for p in principals
    ]


def kafka_cluster(cluster: str, replicas: int, kafka_version: str) -> list[dict[str, Any]]:
    """A KRaft cluster of ``replicas`` combined controller+broker nodes: mTLS only, deny by default."""
    min_isr = 2 if replicas >= 3 else 1
    pool = {
        "apiVersion": API_VERSION,
        "kind": "KafkaNodePool",
        "metadata": _meta("dual-role", cluster),
        "spec": {
            "replicas": replicas,
            "roles": ["controller", "broker"],
            "storage": {"type": "persistent-claim", "size": "100Gi", "deleteClaim": False},
        },
    }
    kafka = {
        "apiVersion": API_VERSION,
        "kind": "Kafka",
        "metadata": {"name": cluster, "labels": {"app.kubernetes.io/part-of": "consent-broker"}},
        "spec": {
            "kafka": {
                "version": kafka_version,
                "listeners": [
                    {"name": "tls", "port": 9093, "type": "internal", "tls": True, "authentication": {"type": "tls"}}
                ],
                "authorization": {
                    "type": "simple",
                    "superUsers": [u.removeprefix("User:") for u in super_users(default_principals()).split(";")],
                },
                "config": {
                    "auto.create.topics.enable": False,
                    "offsets.topic.replication.factor": replicas,
                    "transaction.state.log.replication.factor": replicas,
                    "transaction.state.log.min.isr": min_isr,
                    "default.replication.factor": replicas,
                    "min.insync.replicas": min_isr,
                },
            },
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
        },
    }
    return [pool, kafka]


def resources(
    deployment: Deployment | None = None,
    *,
    cluster: str = "consent-kafka",
    replicas: int = 3,
    kafka_version: str = "4.1.0",
) -> list[dict[str, Any]]:
    """Everything, in the order a reader wants it: the cluster, its topics, its users."""
    deployment = deployment or Deployment()
    return [
        *kafka_cluster(cluster, replicas, kafka_version),
        *kafka_topics(deployment, cluster, replicas),
        *kafka_users(deployment, cluster),
    ]
