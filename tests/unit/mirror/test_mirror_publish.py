"""The mirror's I/O shell in memory: each record core-signed, retained on MQTT and fed to its site's Kafka topic."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from broker.mirror import Publication, RecordKind
from broker.mirror.service import MirrorConfig, MqttMirror, seal
from broker.topics import TopicNames
from consent_io.connection import KafkaConnection, MqttConnection
from consent_rules.replica_feed import ReplicaKind, UnsignedReplicaError, feed_key, open_replica_record
from consent_wire.dsse import AgentSigner
from tests.factories import patient, shielded_state_bytes
from tests.fakes import FakeMqttLink, FakeRecordSink

P = patient(1)
NOW = 1_700_000_000_000
CORE = AgentSigner.generate("core")


def _shielded_state_bytes() -> bytes:
    return shielded_state_bytes(P, NOW)


def _config(site_feeds: TopicNames | None = None) -> MirrorConfig:
    return MirrorConfig(
        MqttConnection("127.0.0.1", 1),
        KafkaConnection("127.0.0.1:1"),
        "events",
        "state",
        "shielding",
        "mirror",
        signer=CORE,
        site_feeds=site_feeds,
    )


class RecordingFeeds:
    def __init__(self) -> None:
        self.ensured: list[str] = []

    async def ensure(self, site: str) -> None:
        self.ensured.append(site)


async def test_every_record_is_signed_and_sent_retained_at_qos_1_and_to_its_sites_kafka_feed() -> None:
    state = _shielded_state_bytes()
    publications = (
        Publication(RecordKind.STATE, "A81001", P, state),
        Publication(RecordKind.STATE, "B82002", P, state),
        Publication(RecordKind.STATE, "A81001", patient(2), b""),  # a deletion
    )
    mirror, link = MqttMirror(_config(TopicNames("pfx"))), FakeMqttLink()
    sink, feeds = FakeRecordSink(), RecordingFeeds()
    sealed, refused = seal(CORE, publications, NOW)
    await mirror._publish(link, sealed)
    await mirror._feed(sink, feeds, sealed)

    assert refused == 0
    assert [(t, q, r) for t, _, q, r in link.published] == [
        (f"consent/state/A81001/{P}", 1, True),
        (f"consent/state/B82002/{P}", 1, True),
        (f"consent/state/A81001/{patient(2)}", 1, True),
    ]
    assert [(t, k) for t, k, _ in sink.sent] == [
        ("pfx.site.A81001", feed_key(ReplicaKind.STATE, P)),
        ("pfx.site.B82002", feed_key(ReplicaKind.STATE, P)),
        ("pfx.site.A81001", feed_key(ReplicaKind.STATE, patient(2))),
    ]
    assert [v for _, v, _, _ in link.published] == [v for _, _, v in sink.sent]  # same bytes on both sinks
    assert feeds.ensured == ["A81001", "B82002"]  # each site's feed created once, before its first record
    assert (mirror.published_total, mirror.fed_total) == (3, 3)
    opened = open_replica_record(sink.sent[0][2], CORE.public_key, ReplicaKind.STATE, P, NOW)
    assert opened.record is not None and opened.freshness == 1
    deleted = open_replica_record(sink.sent[2][2], CORE.public_key, ReplicaKind.STATE, patient(2), NOW)
    assert deleted.record is None


class SlowFeeds:
    """Feeds whose creation takes a while: records how many were being created at once."""

    def __init__(self, sink: FakeRecordSink) -> None:
        self.sink = sink
        self.creating = 0
        self.most_at_once = 0
        self.ensured: list[str] = []

    async def ensure(self, site: str) -> None:
        assert not self.sink.sent, "a record was sent before its site's feed existed"
        self.creating += 1
        self.most_at_once = max(self.most_at_once, self.creating)
        await asyncio.sleep(0.01)
        self.creating -= 1
        self.ensured.append(site)


async def test_the_new_site_feeds_of_a_pass_are_created_together_before_any_record_is_sent() -> None:
    state = _shielded_state_bytes()
    sites = ("A81001", "B82002", "C83003")
    mirror, sink = MqttMirror(_config(TopicNames("pfx"))), FakeRecordSink()
    feeds = SlowFeeds(sink)
    sealed, _ = seal(CORE, tuple(Publication(RecordKind.STATE, s, P, state) for s in sites), NOW)
    await mirror._feed(sink, feeds, sealed)
    assert (sorted(feeds.ensured), feeds.most_at_once, len(sink.sent)) == (sorted(sites), 3, 3)
    await mirror._feed(sink, feeds, sealed)  # known now: not created again
    assert (len(feeds.ensured), len(sink.sent)) == (3, 6)


async def test_the_shielding_reason_never_leaves_the_mirror_even_from_an_old_format_state_record() -> None:
    obj = orjson.loads(_shielded_state_bytes())
    obj["format"], obj["shielding"]["reason"] = 1, "DOMESTIC_ABUSE"  # as stored before format 2
    del obj["quarantine"]  # format 3's fields (issue 14) did not exist yet
    del obj["deceased"]  # nor format 6's
    for c in obj["consents"]:
        del c["policy_ref"]
    for o in obj["objections"]:
        del o["exempt_flows"]
    obj["applied"] = sorted(e[2] for e in obj.pop("applied"))  # formats 1 and 2 listed every id, no marks
    del obj["marks"]
    legacy = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    shield = orjson.dumps(
        {"active": True, "hides": ["LOCATION"], "patient_key": P, "reason": "DOMESTIC_ABUSE",
         "stamp": {"agent_id": "a", "event_id": "e", "hlc": 5}},
        option=orjson.OPT_SORT_KEYS,
    )  # fmt: skip
    sealed, refused = seal(
        CORE,
        (Publication(RecordKind.STATE, "A81001", P, legacy), Publication(RecordKind.SHIELDING, "A81001", P, shield)),
        NOW,
    )
    assert refused == 0
    for s in sealed:
        assert b"DOMESTIC_ABUSE" not in s.record
        assert b"reason" not in s.record


def test_a_record_that_cannot_be_sealed_is_counted_and_never_sent() -> None:
    other = _shielded_state_bytes()
    sealed, refused = seal(
        CORE,
        (
            Publication(RecordKind.STATE, "A81001", P, b"not a state"),
            Publication(RecordKind.STATE, "A81001", patient(2), other),  # names P inside: key mismatch
            Publication(RecordKind.SHIELDING, "A81001", P, b"{}"),
        ),
        NOW,
    )
    assert (sealed, refused) == ((), 3)


async def test_without_site_feeds_only_mqtt_is_written() -> None:
    mirror, sink, feeds = MqttMirror(_config()), FakeRecordSink(), RecordingFeeds()
    sealed, _ = seal(CORE, (Publication(RecordKind.STATE, "A81001", P, _shielded_state_bytes()),), NOW)
    await mirror._feed(sink, feeds, sealed)
    assert (sink.sent, feeds.ensured) == ([], [])


def test_an_empty_payload_is_never_a_valid_record() -> None:
    with pytest.raises(UnsignedReplicaError):
        open_replica_record(b"", CORE.public_key, ReplicaKind.STATE, P, NOW)
