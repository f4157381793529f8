"""Minimum necessary on Kafka: an agent reads its own site's replica feed and nobody else's (issue 11).

Also the operator's path to credentials: ``consent-broker infra issue`` gives a new site its certificate
and exactly its role's ACLs on the real stack.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError
from click.testing import CliRunner

from broker.cli import cli
from broker.infra.local import LocalDeployment
from broker.topics import TopicNames, create_site_feed
from consent_io import kafka
from consent_io.connection import KafkaConnection

pytestmark = pytest.mark.integration


async def _first_values(conn: KafkaConnection, topic: str) -> list[bytes]:
    """What ``conn`` can read of ``topic`` within 5 s. A refused read either raises TopicAuthorizationFailed or
    (aiokafka retries a refused offset lookup quietly) yields nothing although the topic holds a record."""
    reader = kafka.consumer(conn, request_timeout_ms=10_000)
    await reader.start()
    try:
        tp = TopicPartition(topic, 0)
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        batches = await reader.getmany(tp, timeout_ms=5_000)
        return [r.value for records in batches.values() for r in records if r.value is not None]
    except TopicAuthorizationFailedError:
        return []
    finally:
        await reader.stop()


async def test_an_agent_reads_its_own_sites_feed_and_is_refused_another_sites(
    deployment: LocalDeployment, kafka_connection: KafkaConnection, topic_names: TopicNames, app_id: str
) -> None:
    admin = kafka.admin(kafka_connection)
    await admin.start()
    try:
        for site in ("S11111", "S22222"):
            await create_site_feed(admin, topic_names, site)
    finally:
        await admin.close()
    producer = kafka.producer(kafka_connection, acks="all")
    await producer.start()
    try:
        for site in ("S11111", "S22222"):
            await producer.send_and_wait(topic_names.site_feed(site), f"record for {site}".encode(), key=b"k")
        for topic in (topic_names.state, topic_names.events):
            for partition in (0, 1):  # the test prefix's topics have 2 partitions: fill both
                await producer.send_and_wait(topic, b"national", key=b"k", partition=partition)
    finally:
        await producer.stop()
    agent = f"agent-{topic_names.prefix}"
    await deployment.grant(topic_names.prefix, app_id, agents=[(agent, "S11111")])
    conn = deployment.agent_kafka(agent, "S11111")

    assert await _first_values(conn, topic_names.site_feed("S11111")) == [b"record for S11111"]
    assert await _first_values(kafka_connection, topic_names.site_feed("S22222")) == [b"record for S22222"]
    assert await _first_values(conn, topic_names.site_feed("S22222")) == []  # held, but not for this site
    assert await _first_values(kafka_connection, topic_names.state) == [b"national"]
    assert await _first_values(conn, topic_names.state) == []  # the national state topic: never for a site


def test_infra_issue_gives_a_new_site_its_certificate_and_acls(
    deployment: LocalDeployment, topic_names: TopicNames, app_id: str
) -> None:
    async def national_record() -> None:
        producer = kafka.producer(deployment.operator(), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic_names.events, b"national", key=b"k", partition=0)
        finally:
            await producer.stop()

    asyncio.run(national_record())
    config = deployment.infra.config
    agent = f"new-site-{topic_names.prefix}"
    result = CliRunner().invoke(
        cli,
        ["infra", "issue", agent, "--role", "agent", "--site", "S33333", "--name", config.name,
         "--prefix", topic_names.prefix, "--app-id", app_id],
        env={"CONSENT_KAFKA_PORT": str(config.kafka_port), "CONSENT_MQTT_PORT": str(config.mqtt_port)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (config.pki_dir / agent / "key.pem").stat().st_mode & 0o777 == 0o600

    async def write_and_read() -> None:
        conn = deployment.infra.kafka_connection(agent)
        producer = kafka.producer(conn, enable_idempotence=True, acks="all", request_timeout_ms=10_000)
        await producer.start()
        try:
            await producer.send_and_wait(topic_names.ingress, b"x", key=agent.encode())  # its role: write ingress
        finally:
            await producer.stop()
        assert await _first_values(conn, topic_names.events) == []

    asyncio.run(write_and_read())
