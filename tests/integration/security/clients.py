"""Kafka and MQTT clients for the security suite, built by the consent_io factories from connections."""

from __future__ import annotations

import ssl
from typing import Any

import aiomqtt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic

from broker.topics import TopicNames, specs
from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection


def producer(conn: KafkaConnection, **kwargs: Any) -> AIOKafkaProducer:
    return kafka.producer(conn, request_timeout_ms=10_000, **kwargs)


def consumer(conn: KafkaConnection, *topics: str, **kwargs: Any) -> AIOKafkaConsumer:
    return kafka.consumer(conn, *topics, auto_offset_reset="earliest", request_timeout_ms=10_000, **kwargs)


def raw_kafka_kwargs(bootstrap: str, context: ssl.SSLContext) -> dict[str, Any]:
    """Kwargs for a client whose TLS context is crafted by the test (no certificate, wrong CA)."""
    return {"bootstrap_servers": bootstrap, "security_protocol": "SSL", "ssl_context": context}


def mqtt_client(conn: MqttConnection, identifier: str, **kwargs: Any) -> aiomqtt.Client:
    return mqtt.client(conn, identifier=identifier, **kwargs)


def partition_count(topic: str) -> int:
    """Partitions of a topic made by :func:`create_all_topics`."""
    return next(min(s.partitions, 2) for s in specs() if topic.endswith(f".{s.topic.value}"))


async def create_all_topics(operator: KafkaConnection, names: TopicNames) -> None:
    admin = kafka.admin(operator)
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
