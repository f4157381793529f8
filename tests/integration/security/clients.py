"""Kafka and MQTT clients for the security suite, built from ``KafkaConnection``/``MqttConnection``.

Until ``consent_io.kafka``/``consent_io.mqtt`` land on this branch (issue 10), the clients are built here from
``consent_io.tls``; the integrator points these helpers at those factories.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiomqtt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from broker.topics import TopicNames, specs
from consent_io.connection import KafkaConnection, MqttConnection
from consent_io.tls import kafka_security_kwargs, mqtt_tls_context


def producer(conn: KafkaConnection, **kwargs: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(request_timeout_ms=10_000, **kafka_security_kwargs(conn), **kwargs)


def consumer(conn: KafkaConnection, *topics: str, **kwargs: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        request_timeout_ms=10_000,
        **kafka_security_kwargs(conn),
        **kwargs,
    )


def raw_kafka_kwargs(bootstrap: str, context: ssl.SSLContext) -> dict[str, Any]:
    """Kwargs for a client whose TLS context is crafted by the test (no certificate, wrong CA)."""
    return {"bootstrap_servers": bootstrap, "security_protocol": "SSL", "ssl_context": context}


def mqtt_client(conn: MqttConnection, identifier: str, **kwargs: Any) -> aiomqtt.Client:
    return aiomqtt.Client(conn.host, conn.port, identifier=identifier, tls_context=mqtt_tls_context(conn), **kwargs)


def partition_count(topic: str) -> int:
    """Partitions of a topic made by :func:`create_all_topics`."""
    return next(min(s.partitions, 2) for s in specs() if topic.endswith(f".{s.topic.value}"))


async def create_all_topics(operator: KafkaConnection, names: TopicNames) -> None:
    admin = AIOKafkaAdminClient(request_timeout_ms=30_000, **kafka_security_kwargs(operator))
    try:
        await admin.start()
        await admin.create_topics(
            [NewTopic(names.name(s.topic), min(s.partitions, 2), 1, topic_configs=s.configs(1)) for s in specs()]
        )
    finally:
        await admin.close()


async def record_count(operator: KafkaConnection, topic: str) -> int:
    """How many records ``topic`` holds (end minus beginning offsets over its partitions), read as the operator."""
    reader = consumer(operator)
    try:
        await reader.start()
        tps = [TopicPartition(topic, p) for p in range(partition_count(topic))]
        ends = await reader.end_offsets(tps)
        begins = await reader.beginning_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        await reader.stop()
