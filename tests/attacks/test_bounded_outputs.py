"""Issue 12 item 3: one oversized record must never wedge a partition or the bridge.

Reproduced on the first release: an MQTT message of exactly 1,048,576 bytes (Mosquitto's limit then)
passed Mosquitto, failed the bridge's Kafka write (``MessageSizeTooLarge``) and was retried for ever,
across restarts: no gateway was acked again. Inside the stages, a dead letter repeating a 600 KB agent
id in its message header exceeded the producer's limit, so the transaction aborted and the same input
was re-driven for ever. Now every output is bounded below ``MAX_REQUEST_BYTES``, Mosquitto refuses what
the bridge could not forward, and a dead letter of an oversized input carries an excerpt and a hash.
"""

from __future__ import annotations

import asyncio
from hashlib import sha256
from pathlib import Path

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from broker.deadletter import EXCERPT_BYTES, HEADER_BUDGET_BYTES, MAX_MESSAGE_BYTES, WHOLE_MAX_BYTES
from broker.infra.mosquitto import MAX_PACKET_SIZE, MESSAGE_SIZE_LIMIT, MosquittoService
from broker.pipeline import VerifierLogic, dead_letter
from broker.stage import Output
from broker.topics import TopicNames
from broker.verifier import DeadLetter, VerifierCore
from consent_io.kafka import MAX_REQUEST_BYTES
from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.signing import MAX_BATCH_BYTES
from edge_agent.errors import AckTimeoutError
from edge_agent.publisher import Publisher
from edge_agent.transport_mqtt import ingress_topic
from tests.attacks.mqtt_kit import DEADLETTER, Deployment, unsigned_batch
from tests.factories import BASE_MS, SimAgent, consent, patient
from tests.fakes import FakeRecord

MOSQUITTO_OLD_LIMIT = 1_048_576


def _record_size(output: Output) -> int:
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(output.key, output.value, list(output.headers))


async def test_an_mqtt_message_at_mosquittos_old_limit_is_dead_lettered_oversize_and_the_bridge_flows_on(
    tmp_path: Path,
) -> None:
    d = Deployment()
    gw = await d.gateway(tmp_path, "gw-1", events=5)
    huge = b"\xc3\x01" + bytes(MOSQUITTO_OLD_LIMIT - 2)

    await asyncio.wait_for(d.mqtt.publish(ingress_topic("gw-1"), huge, qos=1), 5)

    [(topic, value, key, headers)] = d.producer.sent
    letter = dict(headers)
    assert (topic, key, letter["reason"], letter["value"]) == (DEADLETTER, b"gw-1", b"OVERSIZE", b"excerpt")
    assert value == huge[:EXCERPT_BYTES]
    assert (letter["sha256"], letter["size"]) == (sha256(huge).hexdigest().encode(), str(len(huge)).encode())
    assert d.producer.refused == 0  # refused by size before any Kafka write, never retried
    assert await gw.publisher.publish_once() == 5
    assert gw.outbox.pending_count == 0
    await d.close()


async def test_a_record_kafka_refuses_as_too_large_is_dead_lettered_not_retried_for_ever(tmp_path: Path) -> None:
    d = Deployment()
    gw = await d.gateway(tmp_path, "gw-1", events=50)
    d.producer.max_request_size = EXCERPT_BYTES + HEADER_BUDGET_BYTES  # a 50-event batch is bigger than this

    published = await asyncio.wait_for(_publish_or_time_out(gw.publisher), 5)

    assert published == "ack timeout"  # no ack: the gateway keeps its events
    assert gw.outbox.pending_count == 50
    assert d.ingress() == []
    assert d.reasons() == ["OVERSIZE"]
    assert d.dead_letters()[0]["value"] == b"excerpt"  # the whole batch was too large for a dead letter too
    assert d.producer.refused == 2  # the ingress write, then the whole-input dead letter: once each
    await d.close()


async def _publish_or_time_out(publisher: Publisher) -> str:
    try:
        await publisher.publish_once()
    except AckTimeoutError:
        return "ack timeout"
    return "acked"


def test_a_dead_letter_of_a_batch_with_a_600_kb_agent_id_fits_the_producer_limit() -> None:
    agent = SimAgent.create("gw-1")
    event = agent.event(patient(1), consent(), BASE_MS)
    batch = unsigned_batch("x" * 600_000, agent.signer.key_id, 1, [event])
    logic = VerifierLogic(TopicNames("t"), VerifierCore(KeyRegistry(OperatorRoot.generate().public_key)))

    [letter] = logic.process(0, [FakeRecord("t.ingress", 0, 7, None, batch, BASE_MS)], BASE_MS)

    headers = dict(letter.headers)
    assert (letter.topic, headers["reason"], letter.value) == ("t.deadletter", b"UNKNOWN_KEY", batch)
    assert len(headers["message"]) <= MAX_MESSAGE_BYTES
    assert _record_size(letter) < MAX_REQUEST_BYTES


def test_no_dead_letter_exceeds_the_producer_limit_whatever_its_input() -> None:
    hostile = DeadLetter("CHAIN_BREAK", "agent " + "x" * 600_000, bytes(2 * 1024 * 1024), 9, "y" * 600_000)
    largest_whole = DeadLetter("SEQUENCE_GAP", "m" * 5000, bytes(WHOLE_MAX_BYTES), 9, "z" * 64)

    hostile_out = dead_letter("t.deadletter", "t.ingress", 3, hostile, "verifier")
    whole_out = dead_letter("t.deadletter", "t.ingress", 3, largest_whole, "verifier")

    assert (len(hostile_out.value), dict(hostile_out.headers)["value"]) == (EXCERPT_BYTES, b"excerpt")
    assert dict(hostile_out.headers)["sha256"] == sha256(hostile.data).hexdigest().encode()
    assert len(hostile_out.key or b"") <= 128
    assert (whole_out.value, dict(whole_out.headers)["value"]) == (largest_whole.data, b"whole")  # re-drivable
    assert max(_record_size(hostile_out), _record_size(whole_out)) < MAX_REQUEST_BYTES
    assert sum(len(k) + len(v) for k, v in whole_out.headers) + len(whole_out.key or b"") < HEADER_BUDGET_BYTES


def test_mosquitto_refuses_what_the_bridge_could_not_forward(tmp_path: Path) -> None:
    ingress_record = DefaultRecordBatchBuilder.estimate_size_in_bytes(b"a" * 64, bytes(MAX_BATCH_BYTES), [])
    assert ingress_record < MAX_REQUEST_BYTES  # the largest batch the bridge forwards fits one record
    assert MESSAGE_SIZE_LIMIT <= MAX_BATCH_BYTES < MAX_PACKET_SIZE < MOSQUITTO_OLD_LIMIT
    config = MosquittoService(tmp_path, 1883, None, insecure_debug=True).config_text(tmp_path / "data", "")
    assert f"message_size_limit {MESSAGE_SIZE_LIMIT}\n" in config
    assert f"max_packet_size {MAX_PACKET_SIZE}\n" in config
