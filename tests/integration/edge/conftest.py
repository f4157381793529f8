"""Edge agents against the real Kafka, Mosquitto and an in-process core: settings, submissions, checks."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from broker.bridge.service import BridgeConfig, MqttBridge
from broker.infra.local import LocalDeployment
from broker.keys_admin import publish_key_events
from broker.keys_follower import KeysFollower
from broker.site_secrets import read_national_secret
from broker.topics import TopicNames
from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection
from consent_rules.state import PatientState
from consent_wire.authority import grantable
from consent_wire.identity import patient_key
from consent_wire.keys import KeyRegistry
from consent_wire.signing import decode_verified_event
from edge_agent.api_auth import generate_token_file
from edge_agent.config import Settings
from edge_agent.wire import generate_signing_key
from loadtests.coreproc import free_port
from tests.integration.pipeline.conftest import Harness, latest_by_key

__all__ = [
    "EdgeKit",
    "consent_docs",
    "dead_letter_reasons",
    "events_by_agent",
    "free_port",
    "http_get",
    "http_post",
    "make_bridge",
    "nhs_numbers",
    "read_all",
    "state_total",
]


def nhs_numbers(count: int, start: int = 943_476_000) -> list[str]:
    """``count`` distinct NHS numbers valid under modulus 11 (NHS Data Dictionary)."""
    out: list[str] = []
    base = start
    while len(out) < count:
        digits = f"{base:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            out.append(digits + str(check))
        base += 1
    return out


def consent_docs(numbers: list[str], count: int) -> list[dict[str, Any]]:
    """``count`` consent-decision submissions spread round-robin over ``numbers``."""
    directives = ("OPTIN", "OPTOUT")
    return [
        {
            "type": "consent_decision",
            "nhs_number": numbers[i % len(numbers)],
            "payload": {
                "directive": directives[(i // len(numbers)) % 2],
                "purpose": "HRESCH",
                "data_class": "ALL",
                "recipient": "*",
                "recorded_by_role": "GP",
            },
        }
        for i in range(count)
    ]


def _agent_api(agent: Settings) -> tuple[str, dict[str, str]]:
    """An agent's local API address and its bearer token (what the site's clinical system sends)."""
    token = "" if agent.api_token_file is None else agent.api_token_file.read_text().strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return f"http://127.0.0.1:{agent.http_port}", headers


async def http_post(agent: Settings, path: str, body: object) -> tuple[int, dict[str, Any]]:
    base, headers = _agent_api(agent)
    async with aiohttp.ClientSession() as session, session.post(base + path, json=body, headers=headers) as response:
        return response.status, await response.json()


async def http_get(agent: Settings, path: str) -> tuple[int, dict[str, Any]]:
    base, headers = _agent_api(agent)
    async with aiohttp.ClientSession() as session, session.get(base + path, headers=headers) as response:
        return response.status, await response.json()


async def read_all(conn: KafkaConnection, topic: str) -> list[Any]:
    """Every committed record of ``topic`` up to its current end."""
    return await kafka.read_to_end(conn, topic)


def state_total(records: list[Any]) -> int:
    """Events applied across all patients (PatientState.version == len(applied))."""
    return sum(PatientState.from_bytes(v).version for v in latest_by_key(records).values())


def dead_letter_reasons(records: list[Any]) -> list[str]:
    return [dict(r.headers)["reason"].decode() for r in records]


def events_by_agent(records: list[Any]) -> dict[str, list[tuple[int, int]]]:
    """agent -> [(partition, seq)] in the order the verifier wrote them (per partition)."""
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        ve = decode_verified_event(r.value)
        out[ve.agent_id].append((r.partition, ve.event.seq))
    return out


def assert_exactly_once_in_order(records: list[Any], agent_id: str, count: int) -> None:
    """The events topic holds seqs 1..count of ``agent_id`` once each, increasing within each partition."""
    pairs = events_by_agent(records)[agent_id]
    seqs = sorted(seq for _, seq in pairs)
    assert seqs == list(range(1, count + 1))
    by_partition: dict[int, list[int]] = defaultdict(list)
    for partition, seq in pairs:
        by_partition[partition].append(seq)
    for seq_list in by_partition.values():
        assert seq_list == sorted(seq_list)


class EdgeKit:
    """Makes edge-agent settings (keys, certificates, API tokens, secrets, ports) for one test, registers the
    agents' keys and grants each agent its ACLs (write ingress, read its own site's feed)."""

    def __init__(self, tmp_path: Path, harness: Harness) -> None:
        self.tmp_path = tmp_path
        self.harness = harness
        self.deployment = harness.deployment
        self.bootstrap = harness.bootstrap
        self.topics = harness.topics
        self.root = harness.root
        # the core's national pseudonym secret (its pseudonym_secret_file); each agent gets only its site's
        # (LocalDeployment.agent_settings), and a site's pseudonym of a person is kit.site_key(site, nhs)
        self.secret_file = self.deployment.pseudonym_secret_file()
        self.agent_ids: list[str] = []

    def site_key(self, site: str, nhs_number: str) -> str:
        """``site``'s pseudonym of the person (what its agent computes; the key of its replica and feed)."""
        return self.deployment.pseudonyms().for_site(site, nhs_number)

    def national_key(self, nhs_number: str) -> str:
        """The core's pseudonym of the person (its state, audit and API)."""
        return patient_key(read_national_secret(self.secret_file), nhs_number)

    async def agent_settings(self, agent_id: str, site: str = "A81001", **overrides: Any) -> Settings:
        self.agent_ids.append(agent_id)
        data_dir = self.tmp_path / agent_id
        data_dir.mkdir(mode=0o700, exist_ok=True)
        key_file = data_dir / "signing.key"
        if not key_file.exists():
            public = generate_signing_key(key_file)
            registration = [self.root.register(agent_id, public, 0, site=site, capabilities=grantable(site))]
            await publish_key_events(self.harness.kafka, self.topics.keys, registration)
            await self.deployment.grant(self.topics.prefix, self.harness.app_id, agents=[(agent_id, site)])
        token_file = data_dir / "api-token"
        if not token_file.exists():
            generate_token_file(token_file)
        values: dict[str, Any] = {
            **self.deployment.agent_settings(agent_id, site),
            "api_token_file": token_file,
            "core_public_key_hex": self.harness.core_public_hex,
            "agent_id": agent_id,
            "site": site,
            "data_dir": data_dir,
            "signing_key_file": key_file,
            "kafka_bootstrap": self.bootstrap,
            "ingress_topic": self.topics.ingress,
            "mqtt_port": self.deployment.infra.config.mqtt_port,
            "http_port": free_port(),
            "synchronous": "NORMAL",  # tests do not survive power loss; WAL still survives kill -9
            "backoff_base_s": 0.2,
            "backoff_cap_s": 2.0,  # retry quickly once the broker is back: the drain time is then measured
            "ack_timeout_s": 10.0,
        }
        values.update(overrides)
        return Settings(**values)

    def toml(self, settings: Settings) -> Path:
        """A config file for ``edge-agent run --config`` equal to ``settings``."""
        s = settings
        text = f"""
[agent]
id = "{s.agent_id}"
site = "{s.site}"
data_dir = "{s.data_dir}"
[transport]
kind = "{s.transport}"
[kafka]
bootstrap = "{s.kafka_bootstrap}"
ingress_topic = "{s.ingress_topic}"
[mqtt]
host = "{s.mqtt_host}"
port = {s.mqtt_port}
[http]
port = {s.http_port}
[outbox]
synchronous = "{s.synchronous}"
batch_max_events = {s.batch_max_events}
linger_ms = {s.linger_ms}
ack_timeout_s = {s.ack_timeout_s}
backoff_base_s = {s.backoff_base_s}
backoff_cap_s = {s.backoff_cap_s}
[secrets]
pseudonym_secret_file = "{s.pseudonym_secret_file}"
signing_key_file = "{s.signing_key_file}"
api_token_file = "{s.api_token_file}"
core_public_key_hex = "{s.core_public_key_hex}"
[tls]
kafka_security = "{s.kafka_security}"
mqtt_tls = {str(s.mqtt_tls).lower()}
ca_file = "{s.tls_ca_file}"
cert_file = "{s.tls_cert_file}"
key_file = "{s.tls_key_file}"
"""
        path = s.data_dir / "agent.toml"
        path.write_text(text)
        return path


def make_bridge(harness: Harness, **config: Any) -> MqttBridge:
    """A bridge as the core builds it (its own principal core.bridge, the keys topic, the core's ack key),
    run by the test itself so it can be killed; ``await bridge.start(stop)`` gives its task."""
    deployment = harness.deployment
    conn = deployment.stage_kafka("bridge")
    values: dict[str, Any] = {
        "mqtt": deployment.stage_mqtt("bridge"),
        "kafka": conn,
        "ingress_topic": harness.topics.ingress,
        "deadletter_topic": harness.topics.deadletter,
        "client_id": f"{harness.app_id}.bridge",
        **config,
    }
    registry = KeyRegistry(harness.root.public_key)
    keys = KeysFollower(kafka.KafkaTopicReader(conn, harness.topics.keys, partitions=[0]), registry)
    return MqttBridge(BridgeConfig(**values), registry, harness.core_signer, keys=keys)


@pytest.fixture
async def harness(
    deployment: LocalDeployment, topic_names: TopicNames, app_id: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    h = Harness.create(deployment, topic_names, app_id, tmp_path)
    yield h
    for core in h.cores:
        await core.stop()
    await forget_mqtt_session(deployment.operator_mqtt(), f"{h.app_id}.bridge")


@pytest.fixture
async def kit(tmp_path: Path, harness: Harness) -> AsyncIterator[EdgeKit]:
    edge = EdgeKit(tmp_path, harness)
    yield edge
    for agent_id in dict.fromkeys(edge.agent_ids):  # MQTT gateways' persistent sessions
        await forget_mqtt_session(harness.deployment.operator_mqtt(), f"edge-agent-{agent_id}")


async def forget_mqtt_session(conn: MqttConnection, client_id: str) -> None:
    """Drop a persistent MQTT session (a test's bridge) so the shared Mosquitto stops queueing for it."""
    try:
        async with mqtt.client(conn, identifier=client_id, clean_session=True):
            await asyncio.sleep(0)
    except aiomqtt.MqttError:
        pass
