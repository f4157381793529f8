"""Kafka with mTLS and the StandardAuthorizer: each principal may do what broker/infra/acls.py lists, nothing else.

Every refusal is checked twice: the client gets a clear error, and the topic it aimed at holds no record.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from broker.infra import Infra
from broker.infra.acls import Principal, Role
from broker.infra.pki import Pki
from broker.infra.security import kafka_connection
from broker.topics import TopicNames
from consent_io.connection import KafkaConnection
from tests.integration.security.clients import consumer, partition_count, producer, raw_kafka_kwargs, record_count
from tests.integration.security.conftest import APP_ID

pytestmark = pytest.mark.integration

Roles = dict[Role, Principal]


async def _refused_at_handshake(bootstrap: str, context: ssl.SSLContext) -> None:
    client = AIOKafkaProducer(request_timeout_ms=5_000, **raw_kafka_kwargs(bootstrap, context))
    try:
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
            await client.start()
    finally:
        await client.stop()


async def _read_all(conn: KafkaConnection, topic: str) -> list[bytes]:
    reader = consumer(conn)
    try:
        await reader.start()
        tps = [TopicPartition(topic, p) for p in range(partition_count(topic))]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        out: list[bytes] = []
        for tp in tps:
            while await reader.position(tp) < ends[tp]:
                for batch in (await reader.getmany(tp, timeout_ms=1_000)).values():
                    out.extend(r.value for r in batch if r.value is not None)
        return out
    finally:
        await reader.stop()


async def _refused_read(conn: KafkaConnection, topic: str) -> None:
    reader = consumer(conn, topic)
    try:
        with pytest.raises(TopicAuthorizationFailedError, match=topic):
            await reader.start()
    finally:
        await reader.stop()


async def _refused_fetch(conn: KafkaConnection, topic: str) -> None:
    """A core stage may DESCRIBE every topic of its deployment (metadata), so its refusal comes with the fetch."""
    reader = consumer(conn, topic)
    try:
        await reader.start()
        with pytest.raises(TopicAuthorizationFailedError, match=topic):
            for _ in range(40):
                await reader.getmany(timeout_ms=500)
    finally:
        await reader.stop()


async def _write(conn: KafkaConnection, topic: str, value: bytes, *, idempotent: bool = True) -> None:
    """Produce one record; refusals are tested non-idempotent, so the error names the topic (an idempotent
    producer without any write right is refused earlier, by ClusterAuthorizationFailedError)."""
    client = producer(conn, enable_idempotence=idempotent, acks="all")
    try:
        await client.start()
        await client.send_and_wait(topic, value, key=b"k", partition=0)
    finally:
        await client.stop()


async def test_a_client_without_a_certificate_is_refused(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles]
) -> None:
    names, _ = secure_topics
    no_certificate = ssl.create_default_context(cafile=str(secure_infra.pki.ca_file))
    await _refused_at_handshake(secure_infra.config.bootstrap, no_certificate)
    assert await record_count(secure_infra.kafka_connection("operator"), names.ingress) == 0


async def test_a_plaintext_client_is_refused(secure_infra: Infra) -> None:
    client = AIOKafkaProducer(bootstrap_servers=secure_infra.config.bootstrap, request_timeout_ms=5_000)
    try:
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
            await client.start()
    finally:
        await client.stop()


async def test_a_certificate_from_another_ca_is_refused_even_with_a_super_user_name(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles], tmp_path: Path
) -> None:
    names, _ = secure_topics
    impostor = Pki(tmp_path / "pki").issue("operator")  # same CN as the real super user, other CA
    context = ssl.create_default_context(cafile=str(secure_infra.pki.ca_file))  # trusts the real brokers
    context.load_cert_chain(impostor.cert_file, impostor.key_file)
    await _refused_at_handshake(secure_infra.config.bootstrap, context)
    assert await record_count(secure_infra.kafka_connection("operator"), names.keys) == 0


async def test_a_subscriber_cannot_write_to_ingress(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles]
) -> None:
    names, roles = secure_topics
    subscriber = secure_infra.kafka_connection(roles[Role.SUBSCRIBER].name)
    with pytest.raises(TopicAuthorizationFailedError, match=names.ingress):
        await _write(subscriber, names.ingress, b"forged batch", idempotent=False)
    with pytest.raises(ClusterAuthorizationFailedError):
        await _write(subscriber, names.ingress, b"forged batch")
    assert await record_count(secure_infra.kafka_connection("operator"), names.ingress) == 0


async def test_an_agent_cannot_read_the_audit_topic(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles]
) -> None:
    names, roles = secure_topics
    operator = secure_infra.kafka_connection("operator")
    await _write(operator, names.audit, b"audit entry")
    agent = secure_infra.kafka_connection(roles[Role.AGENT].name)
    await _refused_read(agent, names.audit)
    # an agent has no read on state either (no per-site feed on Kafka yet)
    await _refused_read(agent, names.state)


async def test_only_the_operator_writes_the_keys_topic(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles]
) -> None:
    names, roles = secure_topics
    operator = secure_infra.kafka_connection("operator")
    for role in (Role.VERIFIER, Role.API, Role.AGENT):
        with pytest.raises(TopicAuthorizationFailedError, match=names.keys):
            await _write(secure_infra.kafka_connection(roles[role].name), names.keys, b"forged key", idempotent=False)
    assert await record_count(operator, names.keys) == 0
    await _write(operator, names.keys, b"key event")
    assert await _read_all(secure_infra.kafka_connection(roles[Role.VERIFIER].name), names.keys) == [b"key event"]


@pytest.mark.parametrize(
    ("role", "topic"),
    [(Role.BRIDGE, "ingress"), (Role.AGENT, "ingress"), (Role.API, "audit")],
)
async def test_idempotent_writers_write_their_topic(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles], role: Role, topic: str
) -> None:
    names, roles = secure_topics
    await _write(secure_infra.kafka_connection(roles[role].name), f"{names.prefix}.{topic}", b"allowed")
    assert await record_count(secure_infra.kafka_connection("operator"), f"{names.prefix}.{topic}") == 1


@pytest.mark.parametrize(
    ("role", "topic"),
    [(Role.VERIFIER, "events"), (Role.RECONCILER, "state"), (Role.REPORTS, "reports"), (Role.REPORTS, "report-memory")],
)
async def test_stages_write_in_transactions_with_their_ids_and_commit_their_group(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles], role: Role, topic: str
) -> None:
    names, roles = secure_topics
    conn = secure_infra.kafka_connection(roles[role].name)
    input_topic = {Role.VERIFIER: names.ingress, Role.RECONCILER: names.events, Role.REPORTS: names.events}[role]
    group = f"{APP_ID}.{role.value}"
    client = producer(conn, transactional_id=f"{group}.0", enable_idempotence=True, acks="all")
    try:
        await client.start()
        async with client.transaction():
            await client.send(f"{names.prefix}.{topic}", b"v", key=b"k", partition=0)
            await client.send_offsets_to_transaction({TopicPartition(input_topic, 0): 0}, group)
    finally:
        await client.stop()
    assert await _read_all(secure_infra.kafka_connection("operator"), f"{names.prefix}.{topic}") == [b"v"]
    other = producer(conn, transactional_id=f"{APP_ID}.other.0", enable_idempotence=True)
    try:
        with pytest.raises(TransactionalIdAuthorizationFailed, match=f"{APP_ID}.other.0"):
            await other.start()
    finally:
        await other.stop()


@pytest.mark.parametrize(
    ("role", "topic"),
    [
        (Role.MIRROR, "events"),
        (Role.MIRROR, "shielding"),
        (Role.API, "state"),
        (Role.API, "reports"),
        (Role.REPORTS, "events"),
        (Role.REPORTS, "report-memory"),
        (Role.SUBSCRIBER, "state"),
        (Role.SUBSCRIBER, "shielding"),
        (Role.WITNESS, "audit"),
    ],
)
async def test_readers_read_their_topics(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles], role: Role, topic: str
) -> None:
    names, roles = secure_topics
    await _write(secure_infra.kafka_connection("operator"), f"{names.prefix}.{topic}", b"record")
    got = await _read_all(secure_infra.kafka_connection(roles[role].name), f"{names.prefix}.{topic}")
    assert got == [b"record"]


async def test_the_reports_stage_reads_no_state_audit_or_ingress_and_the_api_no_report_memory(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles]
) -> None:
    """Issue 16, least privilege: the reports principal sees events and its own topics only."""
    names, roles = secure_topics
    reports = secure_infra.kafka_connection(roles[Role.REPORTS].name)
    for topic in (names.state, names.audit, names.ingress, names.shielding):
        await _refused_fetch(reports, topic)
    await _refused_fetch(secure_infra.kafka_connection(roles[Role.API].name), names.report_memory)
    with pytest.raises(TopicAuthorizationFailedError, match=names.state):
        await _write(reports, names.state, b"forged", idempotent=False)


async def test_a_subscriber_cannot_read_the_events_or_audit_topics(
    secure_infra: Infra, secure_topics: tuple[TopicNames, Roles]
) -> None:
    names, roles = secure_topics
    subscriber = secure_infra.kafka_connection(roles[Role.SUBSCRIBER].name)
    for topic in (names.events, names.audit):
        await _refused_read(subscriber, topic)


def test_connection_settings_name_the_issued_files(secure_infra: Infra) -> None:
    files = secure_infra.pki.issue("core.api")
    assert secure_infra.kafka_connection("core.api") == kafka_connection(secure_infra.config.bootstrap, files)
