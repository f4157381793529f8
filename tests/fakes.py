"""In-memory fakes for unit tests: the edge agent's Protocols and consent_io's (RecordSink, TopicReader, MqttLink)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from consent_wire.codes import ConsentDirective, DataClass, PurposeOfUse
from consent_wire.errors import InvalidNhsNumberError
from consent_wire.model import ConsentDecision
from edge_agent.errors import TransportError
from edge_agent.outbox import Draft

VALID_NHS = "9434765919"  # the NHS Digital test number used in published examples (modulus 11 valid)


def fake_pseudonymise(nhs_number: str) -> str:
    """Stands in for consent_wire.identity: 10 digits, modulus 11 check digit."""
    if len(nhs_number) != 10 or not nhs_number.isdigit():
        raise InvalidNhsNumberError(f"{nhs_number!r} is not 10 digits")
    total = sum(int(d) * w for d, w in zip(nhs_number[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(nhs_number[9]):
        raise InvalidNhsNumberError(f"{nhs_number!r} fails modulus 11")
    return hashlib.sha256(b"secret" + nhs_number.encode()).hexdigest()


@dataclass
class FakeClock:
    value: int = 1_700_000_000_000 << 16

    def tick(self) -> int:
        self.value += 1
        return self.value


def draft(i: int) -> Draft:
    payload = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.ALL, "*")
    return Draft(f"{i:032x}", (1_700_000_000_000 << 16) + i, 1_700_000_000_000 + i, "ab" * 16, payload)


class FakeSigner:
    """A 'signed batch' that is just the JSON list of seqs and hex events (enough to check order)."""

    def sign(self, events: Sequence[bytes], first_seq: int) -> bytes:
        return orjson.dumps({"first_seq": first_seq, "events": [e.hex() for e in events]})


@dataclass
class FlakyTransport:
    """Fails the first ``failures`` sends; ``deliver_then_fail`` models an ack lost after delivery."""

    failures: int = 0
    deliver_then_fail: bool = False
    delivered: list[int] = field(default_factory=list)  # seqs in arrival order, duplicates kept
    calls: int = 0

    async def send(self, batch: bytes, first_seq: int, last_seq: int) -> None:
        self.calls += 1
        doc = orjson.loads(batch)
        assert doc["first_seq"] == first_seq
        assert first_seq + len(doc["events"]) - 1 == last_seq
        if self.failures > 0:
            self.failures -= 1
            if self.deliver_then_fail:
                self.delivered.extend(range(first_seq, last_seq + 1))
            raise TransportError("broker unreachable (fake)")
        self.delivered.extend(range(first_seq, last_seq + 1))


@dataclass
class RecordingSleep:
    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


# --- consent_io Protocols (RecordSink, TopicReader, MqttLink) -------------------------------------------


@dataclass(frozen=True)
class FakeRecord:
    """The fields of an aiokafka ConsumerRecord that the product reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


@dataclass
class FakeRecordSink:
    """A :class:`consent_io.kafka.RecordSink` that keeps what was sent: ``(topic, key, value)``."""

    sent: list[tuple[str, bytes | None, bytes | None]] = field(default_factory=list)

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> None:
        self.sent.append((topic, key, value))

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass
class FakeTopicReader:
    """A :class:`consent_io.kafka.TopicReader` over in-memory records; ``append`` adds records later.

    ``start`` takes the end offsets, as the Kafka reader does (``latest_ends`` takes them again); each
    ``fetch`` hands out up to ``batch`` records per partition. With ``lagging``, a fetch hands out only
    records appended before the previous fetch, as a prefetching consumer does whose fetch request was
    already in flight when a record was written (a follower that is behind the topic).
    """

    topic: str = "topic"
    batch: int = 2
    lagging: bool = False
    records: dict[int, list[FakeRecord]] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    started: bool = False
    stopped: bool = False
    end_requests: int = 0  # calls of latest_ends (each a ListOffsets on Kafka)
    _visible: dict[int, int] = field(default_factory=dict)  # with lagging: per partition, records fetchable

    def append(self, value: bytes | None, key: bytes | None = None, partition: int = 0) -> None:
        log = self.records.setdefault(partition, [])
        log.append(FakeRecord(self.topic, partition, len(log), key, value))

    async def start(self) -> None:
        self.started = True
        self.ends = {p: len(rs) for p, rs in self.records.items()}
        self.positions = dict.fromkeys(self.records, 0)

    async def fetch(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[int, list[FakeRecord]]:
        out: dict[int, list[FakeRecord]] = {}
        for partition, log in self.records.items():
            at = self.positions.get(partition, 0)
            visible = self._visible.get(partition, 0) if self.lagging else len(log)
            taken = log[at : min(visible, at + min(self.batch, max_records or self.batch))]
            if taken:
                out[partition] = taken
                self.positions[partition] = at + len(taken)
        self._visible = {p: len(rs) for p, rs in self.records.items()}
        return out

    async def latest_ends(self) -> dict[int, int]:
        self.end_requests += 1
        self.ends = {p: len(rs) for p, rs in self.records.items()}
        return dict(self.ends)

    async def caught_up(self) -> bool:
        return all(self.positions.get(p, 0) >= end for p, end in self.ends.items())

    async def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeMqttLink:
    """A :class:`consent_io.mqtt.MqttLink` that records publications and subscriptions."""

    published: list[tuple[str, bytes | None, int, bool]] = field(default_factory=list)  # topic, payload, qos, retain
    subscribed: list[tuple[str, int]] = field(default_factory=list)

    async def publish(
        self,
        topic: str,
        payload: bytes | None = None,
        qos: int = 0,
        retain: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - aiomqtt's own signature (the PUBACK wait)
    ) -> None:
        self.published.append((topic, payload, qos, retain))

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        self.subscribed.append((topic, qos))


@dataclass
class FakeProducer:
    """A started Kafka producer (:class:`broker.bridge.service.RecordWriter`) that records what it was sent.

    Like aiokafka it refuses, with ``MessageSizeTooLargeError``, a record whose estimated size is over
    ``max_request_size`` (the real producer's check, before anything is sent).
    """

    max_request_size: int = 1_048_588
    sent: list[tuple[str, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]] = field(default_factory=list)
    refused: int = 0

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Any = None
    ) -> None:
        headers = tuple(headers or ())
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers))
        if size > self.max_request_size:
            self.refused += 1
            raise MessageSizeTooLargeError(f"record of {size} bytes")
        self.sent.append((topic, value, key, headers))

    async def stop(self) -> None:
        return None

    def to(self, topic: str) -> list[tuple[str, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]]:
        return [record for record in self.sent if record[0] == topic]


@dataclass
class InProcessMqtt:
    """Mosquitto between gateways and the bridge, in-process: an :class:`consent_io.mqtt.MqttLink` for both sides.

    A publish on ``consent/ingress/<agent>`` is handed to ``bridge.handle`` (the real bridge logic) at once;
    one on ``consent/ack/<agent>`` is delivered to the gateway subscribed for that agent (``on_ack``).
    Anybody holding this link may publish anywhere: it stands for a gateway with valid MQTT credentials.
    """

    bridge: Any
    gateways: dict[str, Any] = field(default_factory=dict)  # agent id -> transport with on_ack(payload)
    acks: list[tuple[str, bytes]] = field(default_factory=list)

    async def publish(
        self,
        topic: str,
        payload: bytes | None = None,
        qos: int = 0,
        retain: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - aiomqtt's own signature (the PUBACK wait)
    ) -> None:
        if topic.startswith("consent/ingress/"):
            await self.bridge.handle(self, topic, payload or b"")
        elif topic.startswith("consent/ack/"):
            self.acks.append((topic, payload or b""))
            gateway = self.gateways.get(topic.removeprefix("consent/ack/"))
            if gateway is not None:
                gateway.on_ack(payload or b"")

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        return None
