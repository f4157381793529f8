"""An audit log on the real Kafka topic with two real witnesses over mutual TLS (quorum 2)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from broker.audit import AuditRecord, RecordKind, parse_log
from broker.audit.appender import AppenderPolicy, AuditAppender
from broker.audit.keyfile import generate_key_file, load_signer
from broker.audit.note import ALG_COSIGNATURE, ALG_ED25519, NoteSigner, Verifier
from broker.audit.tlog import LogVerification, WitnessPolicy, verify_log
from broker.audit.witness import WitnessCore
from broker.infra.local import LocalDeployment
from broker.topics import Topic, TopicNames, create_topics
from broker.witness import StateFile, WitnessClient, WitnessServer
from broker.witness.server import server_tls
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_io.tls import client_ssl_context
from consent_wire.codes import DataClass, PurposeOfUse

T0 = 1_790_000_000_000


def record(i: int) -> AuditRecord:
    return AuditRecord(RecordKind.DECISION, T0 + i, f"patient-{i % 3}", f"staff-{i}", "RX1", "GP",
                       PurposeOfUse.TREAT, (DataClass.GENERAL,), "PERMIT", state_version=i)  # fmt: skip


@dataclass
class AuditRig:
    deployment: LocalDeployment
    conn: KafkaConnection  # the operator (reads, and plays the attacker with write access)
    names: TopicNames
    app_id: str
    directory: Path
    servers: list[WitnessServer] = field(default_factory=list)
    witness_keys: list[NoteSigner] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.origin = f"{self.app_id}/{self.names.prefix}.audit"
        self.key_file = self.directory / "audit-log.key"
        self.log_key = generate_key_file(self.key_file, self.origin, ALG_ED25519)
        pki = self.deployment.infra.pki
        api = pki.issue("core.api")
        self.api_tls = client_ssl_context(str(pki.ca_file), str(api.cert_file), str(api.key_file))

    async def start_witnesses(self, count: int = 2) -> None:
        for i in range(count):
            logs = {self.origin: self.log_key.verifier}
            server, signer = await start_witness(self.deployment, self.directory, f"witness-{i}", logs)
            self.servers.append(server)
            self.witness_keys.append(signer)

    async def stop_witnesses(self) -> None:
        for s in self.servers:
            await s.stop()
        self.servers.clear()

    @property
    def clients(self) -> tuple[WitnessClient, ...]:
        """New clients (each appender closes its own); the reader's are :attr:`reader`."""
        return tuple(
            WitnessClient(f"https://127.0.0.1:{s.port}", k.verifier, self.api_tls)
            for s, k in zip(self.servers, self.witness_keys, strict=True)
        )

    @property
    def policy(self) -> WitnessPolicy:
        return WitnessPolicy(tuple(k.verifier for k in self.witness_keys), len(self.witness_keys))

    def appender(
        self, conn: KafkaConnection | None = None, topic: str | None = None, tree_dir: Path | None = None
    ) -> AuditAppender:
        """An appender; with ``tree_dir`` its tree on files there and its resume point beside them (issue 16)."""
        signer = load_signer(self.key_file, self.origin, ALG_ED25519, "audit log key")
        stage = f"{self.app_id}.api"
        policy = AppenderPolicy(self.origin, signer, self.clients, len(self.servers), f"{stage}.audit", stage)
        topic = topic or self.names.audit
        return AuditAppender(conn or self.deployment.stage_kafka("api"), topic, policy, tree_dir=tree_dir)

    async def write(self, first: int, count: int, tree_dir: Path | None = None) -> list[int]:
        appender = self.appender(tree_dir=tree_dir)
        await appender.start(standby_wait_s=60)
        try:
            return [(await appender.append(record(first + i))).index for i in range(count)]
        finally:
            await appender.stop()

    async def lines(self, topic: str | None = None) -> list[bytes]:
        records = await kafka.read_to_end(self.conn, topic or self.names.audit)
        return [r.value for r in records if r.value is not None]

    async def other_topic(self) -> str:
        """A fresh audit topic: the attacker's replacement for the real one (Kafka cannot cut a tail)."""
        names = TopicNames(f"t{uuid.uuid4().hex[:10]}")
        await create_topics(self.conn, names, replication=1, partitions={Topic.AUDIT: 1})
        return names.audit

    async def recreate(self, topic: str, lines: list[bytes]) -> None:
        """Delete ``topic`` and create it again holding ``lines``: an operator with admin rights cutting or
        rewriting the log under the same name."""
        admin = kafka.admin(self.conn)
        await admin.start()
        try:
            await admin.delete_topics([topic])
            for _ in range(100):  # deletion completes asynchronously
                try:
                    await admin.create_topics([NewTopic(topic, 1, 1)])
                    break
                except TopicAlreadyExistsError:
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"{topic} was not deleted")
        finally:
            await admin.close()
        await self.put(topic, lines)

    async def put(self, topic: str, lines: list[bytes]) -> None:
        producer = kafka.producer(self.conn, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for line in lines:
                await producer.send_and_wait(topic, line, partition=0)
        finally:
            await producer.stop()

    async def verify(self, topic: str | None = None) -> LogVerification:
        """What a reader finds: the topic, the pinned log key, the witness quorum and each witness's latest."""
        stored = parse_log(await self.lines(topic))
        external: list[str] = []
        for c in self.clients:
            try:
                latest = await c.latest(self.origin)
            finally:
                await c.close()
            if latest is not None:
                external.append(latest)
        entries = [(e.index, e.record) for e in stored.entries]
        return verify_log(self.origin, entries, stored.notes, self.log_key.verifier, self.policy, external)


@pytest.fixture
async def rig(
    deployment: LocalDeployment, kafka_connection: KafkaConnection, topic_names: TopicNames, app_id: str, tmp_path: Path
) -> AsyncIterator[AuditRig]:
    rig = AuditRig(deployment, kafka_connection, topic_names, app_id, tmp_path)
    await rig.start_witnesses()
    yield rig
    await rig.stop_witnesses()


@pytest.fixture(autouse=True)
def _cli_as_operator(deployment: LocalDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """``consent-broker`` subprocesses reach the secure test Kafka (and the witnesses) as the operator."""
    monkeypatch.setenv("CONSENT_CLI_TLS_DIR", str(deployment.infra.config.pki_dir / "operator"))


async def start_witness(
    deployment: LocalDeployment, directory: Path, name: str, logs: dict[str, Verifier]
) -> tuple[WitnessServer, NoteSigner]:
    """One witness over mutual TLS (server certificate from the deployment's CA) that lets core.api add."""
    pki = deployment.infra.pki
    files = pki.issue(name, server=True)
    key_file = directory / f"{name}.key"
    if not key_file.exists():
        generate_key_file(key_file, name, ALG_COSIGNATURE)
    signer = load_signer(key_file, name, ALG_COSIGNATURE, "witness key")
    store = StateFile(directory / f"{name}.state.json")
    server = WitnessServer(WitnessCore(signer, logs, store.load()), store, ["core.api"])
    await server.start("127.0.0.1", 0, server_tls(str(pki.ca_file), str(files.cert_file), str(files.key_file)))
    return server, signer
