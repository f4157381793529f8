"""The mirror on the real broker: an MQTT gateway's replica follows the patients its site has events about.

A gateway (MQTT only) records an event for patient P, so its site is known for P; a GP agent (Kafka)
then sets shielding for P. The core's mirror publishes the state and shielding records retained to
``consent/{state,shielding}/<site>/<P>`` for those two sites only, and the gateway's offline
decision redacts location and contact.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from broker.infra.local import LocalDeployment
from broker.mirror import Registration
from broker.mirror.service import MirrorConfig, MqttMirror
from broker.topics import TopicNames
from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection
from consent_rules.replica_feed import ReplicaKind, open_replica_record, seal_replica_record
from consent_rules.state import PatientState, replay
from consent_wire.avro_codec import decode_event
from consent_wire.dsse import AgentSigner
from edge_agent.app import Agent
from edge_agent.replica import Replica
from edge_agent.replica_follow import MqttReplicaFollower, SignedFeed
from tests.factories import BASE_MS, SimAgent, consent
from tests.integration.edge.conftest import EdgeKit, free_port, http_post, nhs_numbers, read_all
from tests.integration.pipeline.conftest import Harness, latest_by_key

pytestmark = pytest.mark.integration

GATEWAY_SITE = "G81001"
GP_SITE = "A81001"

_RECORD = {
    "type": "consent_decision",
    "payload": {
        "directive": "OPTIN",
        "purpose": "TREAT",
        "data_class": "ALL",
        "recipient": "*",
        "recorded_by_role": "GP",
    },
}
_SHIELD = {
    "type": "shielding_flag",
    "payload": {"action": "SET", "hides": ["LOCATION", "CONTACT"], "set_by_role": "GP", "reason": "CHILD_PROTECTION"},
}


def _query(nhs: str) -> dict[str, object]:
    requester = {
        "organisation": GATEWAY_SITE,
        "role": "GP",
        "registered": True,
        "relationship": "LEGITIMATE",
        "care_team": True,
    }
    return {"nhs_number": nhs, "purpose": "TREAT", "data_classes": ["ALL"], "legal_basis": None, "requester": requester}


async def _until_async(check: Callable[[], Awaitable[bool]], timeout_s: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        assert loop.time() < deadline, "timed out waiting for a condition"
        await asyncio.sleep(0.1)


async def _retained(conn: MqttConnection, patient_key: str, settle_s: float = 2.0) -> dict[str, bytes]:
    """Every retained message about ``patient_key`` on any mirror topic, for any site (read as the operator)."""
    found: dict[str, bytes] = {}
    async with mqtt.client(conn) as client:
        await client.subscribe(f"consent/+/+/{patient_key}", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settle_s):
                async for message in client.messages:
                    if isinstance(message.payload, bytes) and message.payload:
                        found[str(message.topic)] = message.payload
    return found


def _opened(found: dict[str, bytes], key: str, core: AgentSigner) -> dict[str, PatientState | bytes | None]:
    """The retained records verified with the core's key: states decoded, shielding records as sent."""
    out: dict[str, PatientState | bytes | None] = {}
    for topic, payload in found.items():
        kind = ReplicaKind(topic.split("/")[1])
        update = open_replica_record(payload, core.public_key, kind, key, now_ms=2**62)
        record = update.record
        out[topic] = PatientState.from_bytes(record) if kind is ReplicaKind.STATE and record else record
    return out


@pytest.fixture
async def clear_retained(mqtt_connection: MqttConnection) -> AsyncIterator[list[str]]:
    """Topics a test lists here are cleared (empty retained payload) on the shared Mosquitto afterwards."""
    topics: list[str] = []
    yield topics
    async with mqtt.client(mqtt_connection) as client:
        for topic in topics:
            await client.publish(topic, b"", qos=1, retain=True)


async def test_gateway_replica_receives_shielding_set_elsewhere_and_redacts_offline(
    harness: Harness, kit: EdgeKit, mqtt_connection: MqttConnection, clear_retained: list[str]
) -> None:
    core = await harness.start_core(stages=("verifier", "reconciler", "bridge", "mirror"))
    (nhs,) = nhs_numbers(1, start=970_000_000)
    key, gp_key, national = kit.site_key(GATEWAY_SITE, nhs), kit.site_key(GP_SITE, nhs), kit.national_key(nhs)
    keys = {GATEWAY_SITE: key, GP_SITE: gp_key}  # each site knows the patient by its own pseudonym only
    clear_retained.extend(f"consent/{kind}/{site}/{k}" for kind in ("state", "shielding") for site, k in keys.items())
    gateway = await Agent.start(
        await kit.agent_settings(f"gw-{harness.topics.prefix}", site=GATEWAY_SITE, transport="mqtt")
    )
    gp = await Agent.start(await kit.agent_settings(f"gp-{harness.topics.prefix}", site=GP_SITE))
    try:
        status, _ = await http_post(gateway.settings, "/v1/events", {**_RECORD, "nhs_number": nhs})
        assert status == 202

        async def gateway_has_state() -> bool:
            record = await gateway.replica.get(key)
            return record is not None and record.state is not None

        await _until_async(gateway_has_state)  # the gateway's own event came back through the mirror
        status, _ = await http_post(gp.settings, "/v1/events", {**_SHIELD, "nhs_number": nhs})
        assert status == 202

        async def gateway_shielded() -> bool:
            record = await gateway.replica.get(key)
            return record is not None and record.shielding is not None and b"LOCATION" in (record.state or b"")

        await _until_async(gateway_shielded)
        status, answer = await http_post(gateway.settings, "/v1/decisions", _query(nhs))
    finally:
        await gateway.stop()
        await gp.stop()
    await core.stop()  # nothing republishes once the retained messages are cleared
    assert status == 200
    assert answer["offline"] is True and answer["as_at_ms"] is not None
    assert answer["outcome"] == "PERMIT_WITH_OBLIGATIONS"
    assert {"REDACT_LOCATION", "REDACT_CONTACT"} <= set(answer["obligations"])

    # minimum necessary: exactly the two sites with events about P hold P's records, signed by the core, each
    # under its own pseudonym (issue 12 item 11): the core's state is keyed nationally, no site sees that key
    state = PatientState.from_bytes(
        latest_by_key(await read_all(harness.kafka, harness.topics.state))[national.encode()]
    )
    assert len({key, gp_key, national}) == 3
    opened: dict[str, PatientState | bytes | None] = {}
    for k in (key, gp_key, national):
        opened |= _opened(await _retained(mqtt_connection, k), k, harness.core_signer)
    assert set(opened) == {f"consent/{kind}/{site}/{k}" for kind in ("state", "shielding") for site, k in keys.items()}
    for site, k in keys.items():
        assert opened[f"consent/state/{site}/{k}"] == replace(state, patient_key=k)
    shielding = opened[f"consent/shielding/{GP_SITE}/{gp_key}"]
    assert isinstance(shielding, bytes) and national.encode() not in shielding
    assert shielding.replace(gp_key.encode(), key.encode()) == opened[f"consent/shielding/{GATEWAY_SITE}/{key}"]


def _bad_records() -> float:
    return REGISTRY.get_sample_value("broker_mirror_records_total", {"outcome": "bad_record"}) or 0.0


async def test_bad_records_are_counted_and_skipped_and_registered_sites_still_get_records(
    kafka_connection: KafkaConnection,
    mqtt_connection: MqttConnection,
    topic_names: TopicNames,
    deployment: LocalDeployment,
    clear_retained: list[str],
) -> None:
    key = f"{topic_names.prefix}patient"  # unique per test: the shared Mosquitto keeps retained messages
    topic = f"consent/state/R11111/{key}"
    clear_retained.append(topic)
    core = AgentSigner.generate("core")
    config = MirrorConfig(
        deployment.stage_mqtt("mirror"),
        deployment.stage_kafka("mirror"),
        topic_names.events,
        topic_names.state,
        topic_names.shielding,
        f"{topic_names.prefix}.mirror",
        (Registration("R11111", key),),
        signer=core,
    )
    gp = SimAgent.create(site="R11111")
    state = replay(key, [decode_event(gp.event(key, consent(), BASE_MS))])
    bad_before = _bad_records()
    producer = kafka.producer(kafka_connection, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic_names.events, b"not a verified event", key=b"x")
        await producer.send_and_wait(topic_names.state, b"state", key=b"a/b")
        await producer.send_and_wait(topic_names.state, state.to_bytes(), key=key.encode())
    finally:
        await producer.stop()
    stop = asyncio.Event()
    mirror = MqttMirror(config)
    task = asyncio.create_task(mirror.run(stop))
    try:
        found: dict[str, bytes] = {}
        for _ in range(60):
            found = await _retained(mqtt_connection, key, settle_s=1.0)
            if found:
                break
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert _opened(found, key, core) == {topic: state}
    assert _bad_records() - bad_before == 2


async def test_the_mirror_keeps_retrying_an_unreachable_mqtt_broker_and_exits_on_stop(
    kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    config = MirrorConfig(
        MqttConnection("127.0.0.1", free_port()),  # nothing listens here
        kafka_connection,
        topic_names.events,
        topic_names.state,
        topic_names.shielding,
        f"{topic_names.prefix}.mirror",
        backoff_base_s=0.05,
        backoff_cap_s=0.2,
        signer=AgentSigner.generate("core"),
    )
    stop = asyncio.Event()
    mirror = MqttMirror(config)
    task = asyncio.create_task(mirror.run(stop))
    await asyncio.sleep(3)
    assert not task.done() and not mirror.connected.is_set()
    stop.set()
    await asyncio.wait_for(task, 30)
    assert task.exception() is None


async def test_a_restarted_mirror_resumes_from_its_store_instead_of_replaying(
    kafka_connection: KafkaConnection,
    mqtt_connection: MqttConnection,
    topic_names: TopicNames,
    deployment: LocalDeployment,
    clear_retained: list[str],
    tmp_path: Path,
) -> None:
    """Issue 16: the second run reads only the records written after the first one's last commit."""
    key = f"{topic_names.prefix}resume"
    topic = f"consent/state/R11111/{key}"
    clear_retained.append(topic)
    core = AgentSigner.generate("core")
    config = MirrorConfig(
        deployment.stage_mqtt("mirror"),
        deployment.stage_kafka("mirror"),
        topic_names.events,
        topic_names.state,
        topic_names.shielding,
        f"{topic_names.prefix}.mirror",
        (Registration("R11111", key),),
        signer=core,
        state_file=tmp_path / "mirror.sqlite3",
    )
    gp = SimAgent.create(site="R11111")
    events = [decode_event(gp.event(key, consent(), BASE_MS + i)) for i in range(5)]
    states = [replay(key, events[: i + 1]) for i in range(5)]

    async def write(records: list[PatientState]) -> None:
        producer = kafka.producer(kafka_connection, acks="all")
        await producer.start()
        try:
            for state in records:
                await producer.send_and_wait(topic_names.state, state.to_bytes(), key=key.encode())
        finally:
            await producer.stop()

    async def run_until_published(expected: PatientState) -> MqttMirror:
        stop = asyncio.Event()
        mirror = MqttMirror(config)
        task = asyncio.create_task(mirror.run(stop))
        try:
            for _ in range(60):
                if _opened(await _retained(mqtt_connection, key, settle_s=1.0), key, core) == {topic: expected}:
                    break
            await asyncio.sleep(1.5)  # its commit follows the publication
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert _opened(await _retained(mqtt_connection, key, settle_s=1.0), key, core) == {topic: expected}
        return mirror

    await write(states[:4])
    first = await run_until_published(states[3])
    await write(states[4:])
    second = await run_until_published(states[4])
    assert first.records_read == 4
    assert second.records_read == 1  # re-read nothing: only the record written while it was down


async def test_a_restarted_mqtt_replica_resumes_its_session_instead_of_rereading_every_retained_record(
    deployment: LocalDeployment, topic_names: TopicNames, clear_retained: list[str], tmp_path: Path
) -> None:
    """Issue 16: the gateway's replica keeps its MQTT session; after a restart it receives only what was published
    while it was away, not the retained records it had already applied."""
    site = "Y99001"
    core = AgentSigner.generate("core")
    gp = SimAgent.create(site=site)
    keys = [f"{topic_names.prefix}m{i}" for i in range(6)]
    clear_retained.extend(f"consent/state/{site}/{k}" for k in keys)
    replica = Replica(tmp_path / "replica.sqlite3", None)
    await replica.open()
    feed = SignedFeed(replica, core.public_key, now_ms=lambda: time.time_ns() // 1_000_000)
    gateway = deployment.agent_mqtt(f"{topic_names.prefix}-gw", site)

    async def publish(patients: list[str], n: int) -> None:
        async with mqtt.client(deployment.stage_mqtt("mirror")) as client:
            for key in patients:
                state = replay(key, [decode_event(gp.event(key, consent(), BASE_MS + i)) for i in range(n)])
                sealed = seal_replica_record(core, ReplicaKind.STATE, key, state.to_bytes(), time.time_ns() // 10**6)
                await client.publish(f"consent/state/{site}/{key}", sealed, qos=1, retain=True)

    async def follow_until(count: int) -> MqttReplicaFollower:
        follower = MqttReplicaFollower(gateway, site, f"{topic_names.prefix}-gw", feed)
        task = asyncio.create_task(follower.run())
        try:
            await _until_async(lambda: _at_least(follower, count), timeout_s=60)
            await asyncio.sleep(2.0)  # anything more would arrive now
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return follower

    await publish(keys[:4], 1)
    first = await follow_until(4)
    await publish(keys[3:], 2)  # one patient updated, two new, while the gateway is away
    second = await follow_until(3)
    assert (first.records_total, first.subscribed) == (4, 1)
    assert (second.records_total, second.subscribed) == (3, 0)  # re-read nothing it had applied
    for key in keys:
        held = await replica.get(key)
        assert held is not None
    assert (await replica.get(keys[3])) != (await replica.get(keys[0]))


async def _at_least(follower: MqttReplicaFollower, count: int) -> bool:
    return follower.records_total >= count
