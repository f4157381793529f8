"""Fixtures to run the core in-process against the real broker and read its outputs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.infra.local import LocalDeployment
from broker.keys_admin import publish_key_events
from broker.runtime import Core
from broker.settings import CoreSettings
from broker.topics import TopicNames
from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_wire.dsse import AgentSigner, public_key_bytes
from consent_wire.keys import OperatorRoot
from tests.factories import SimAgent, core_signing_key


@dataclass
class Harness:
    deployment: LocalDeployment
    topics: TopicNames
    root: OperatorRoot
    app_id: str
    # the core's own key, in the test's temporary folder: signs the bridge's acks and the mirror's replica
    # records (agents get its public half)
    _core_key: tuple[dict[str, str], AgentSigner]
    cores: list[Core] = field(default_factory=list)

    @classmethod
    def create(cls, deployment: LocalDeployment, topics: TopicNames, app_id: str, directory: Path) -> Harness:
        """A harness with a new operator root and a core key written under ``directory`` (the test's own folder)."""
        key_dir = directory / "core-key"
        key_dir.mkdir(mode=0o700)
        return cls(deployment, topics, OperatorRoot.generate(), app_id, core_signing_key(key_dir))

    @property
    def core_signer(self) -> AgentSigner:
        return self._core_key[1]

    @property
    def core_key_file(self) -> Path:
        return Path(self._core_key[0]["core_signing_key_file"])

    @property
    def core_public_hex(self) -> str:
        return self.core_signer.public_key_bytes.hex()

    @property
    def bootstrap(self) -> str:
        return self.deployment.infra.config.bootstrap

    @property
    def kafka(self) -> KafkaConnection:
        """The test's own provisioning and observation connection (the operator)."""
        return self.deployment.operator()

    def settings(self, **overrides: object) -> CoreSettings:
        """The core's settings: each stage its own TLS principal, with the test's prefix and app id."""
        values: dict[str, object] = {
            **self.deployment.core_settings(),
            "topic_prefix": self.topics.prefix,
            "app_id": self.app_id,
            "root_public_key_hex": public_key_bytes(self.root.public_key).hex(),
            "core_signing_key_file": str(self.core_key_file),
        }
        values.update(overrides)
        return CoreSettings.load(**values)

    async def start_core(self, **overrides: object) -> Core:
        core = Core(self.settings(**overrides))
        await core.start()
        await core.wait_ready()
        self.cores.append(core)
        return core

    async def register(self, *agents: SimAgent) -> None:
        await publish_key_events(self.kafka, self.topics.keys, [a.register(self.root) for a in agents])

    async def send(self, agent: SimAgent, batches: list[bytes]) -> None:
        producer = kafka.producer(self.kafka, enable_idempotence=True, acks="all")
        await producer.start()
        try:
            for batch in batches:
                await producer.send(self.topics.ingress, batch, key=agent.agent_id.encode())
            await producer.flush()
        finally:
            await producer.stop()

    async def send_raw(self, key: bytes, values: list[bytes]) -> None:
        producer = kafka.producer(self.kafka, acks="all")
        await producer.start()
        try:
            for value in values:
                await producer.send(self.topics.ingress, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()

    async def read(self, topic: str, until: Callable[[list], bool], timeout_s: float = 60) -> list:  # type: ignore[type-arg]
        """All committed records of ``topic`` once ``until(records)`` holds (or fail on timeout)."""
        reader = kafka.KafkaTopicReader(self.kafka, topic)
        await reader.start()
        records: list = []  # type: ignore[type-arg]
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while not until(records):
                assert loop.time() < deadline, f"timed out on {topic} with {len(records)} records"
                for batch in (await reader.fetch(timeout_ms=500)).values():
                    records.extend(batch)
        finally:
            await reader.stop()
        return records


@pytest.fixture
async def harness(
    deployment: LocalDeployment, topic_names: TopicNames, app_id: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    h = Harness.create(deployment, topic_names, app_id, tmp_path)
    yield h
    for core in h.cores:
        await core.stop()


def latest_by_key(records: list) -> dict[bytes, bytes]:  # type: ignore[type-arg]
    out: dict[bytes, bytes] = {}
    for r in records:
        out[r.key] = r.value
    return out


StartCore = Callable[..., Awaitable[Core]]
