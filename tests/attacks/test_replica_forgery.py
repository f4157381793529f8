"""Issue 12 item 4: replicas trust only what the core signed (in-process: the followers' record handling).

Each attack is refused with a reason code, counted, and the offline decision is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from consent_io.connection import KafkaConnection, MqttConnection
from consent_rules.decision import DecisionRequest, ParsedRequest, Requester
from consent_rules.replica_feed import ReplicaKind, feed_key, seal_replica_record
from consent_rules.state import PatientState, replay
from consent_wire.avro_codec import decode, encode
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
)
from consent_wire.dsse import REPLICA_PAYLOAD_TYPE, AgentSigner, seal_envelope
from consent_wire.model import ConsentDecision, Objection
from edge_agent.offline import decide_offline
from edge_agent.replica import Replica
from edge_agent.replica_follow import KafkaReplicaFollower, MqttReplicaFollower, SignedFeed
from tests.factories import plain_event
from tests.fakes import VALID_NHS, fake_pseudonymise

KEY = fake_pseudonymise(VALID_NHS)
OTHER = fake_pseudonymise("9434765870")
SITE = "A12345"
NOW = 1_700_000_500_000
CORE = AgentSigner.generate("core")
TOPIC = f"consent/state/{SITE}/{KEY}"


def _ndop_state() -> PatientState:
    objection = Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER)
    return replay(KEY, [plain_event(KEY, objection, 5 << 16)])


def _research_query() -> ParsedRequest:
    requester = Requester("R1A00", "RESEARCHER", True, Relationship.NONE, False)
    return ParsedRequest(
        DecisionRequest(requester, PurposeOfUse.HRESCH, KEY, (DataClass.ALL,), LegalBasis.S251, NOW), "", None
    )


async def _replica_with_ndop(tmp_path: Path) -> tuple[Replica, MqttReplicaFollower]:
    replica = Replica(tmp_path / "replica.db", None)
    await replica.open()
    feed = SignedFeed(replica, CORE.public_key, now_ms=lambda: NOW)
    follower = MqttReplicaFollower(MqttConnection("127.0.0.1", 1), SITE, "gw-1", feed)
    genuine = seal_replica_record(CORE, ReplicaKind.STATE, KEY, _ndop_state().to_bytes(), NOW - 1000)
    assert await follower._handle(TOPIC, genuine)
    return replica, follower


async def _outcome(replica: Replica) -> str:
    return decide_offline(_research_query(), await replica.get(KEY), NOW).decision.outcome


async def test_a_forged_retained_message_cannot_turn_an_offline_deny_into_permit(tmp_path: Path) -> None:
    replica, follower = await _replica_with_ndop(tmp_path)
    assert await _outcome(replica) == "DENY"
    # what the attacker would like the site to hold: a newer state without the objection
    permissive = replay(
        KEY,
        [plain_event(KEY, ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, DataClass.ALL, "*"), 9 << 16)],
    )
    forged_key = AgentSigner.generate("core")  # a key of the attacker's own, named "core"
    attempts = {
        "REPLICA_UNSIGNED": [permissive.to_bytes(), b""],  # the raw state bytes, or an empty "clear retained"
        "REPLICA_FORGED": [
            seal_replica_record(forged_key, ReplicaKind.STATE, KEY, permissive.to_bytes(), NOW),
            # the core's genuine signature moved onto another payload
            _swap_payload(seal_replica_record(CORE, ReplicaKind.STATE, KEY, None, NOW), permissive.to_bytes()),
        ],
    }
    for payloads in attempts.values():
        for payload in payloads:
            assert not await follower._handle(TOPIC, payload)
    assert await _outcome(replica) == "DENY"
    assert dict(replica.refused_by_reason) == {"REPLICA_UNSIGNED": 2, "REPLICA_FORGED": 2}
    await replica.close()


def _swap_payload(envelope: bytes, record: bytes) -> bytes:
    """A genuine envelope whose signed payload is replaced (signature kept)."""
    r = decode("SignedEnvelope", envelope)
    body = orjson.dumps(
        {"as_at_ms": NOW, "kind": "state", "patient_key": KEY, "record": record.decode()}, option=orjson.OPT_SORT_KEYS
    )
    return encode("SignedEnvelope", {**r, "payload": body})


async def test_a_record_signed_for_another_patient_or_kind_is_refused(tmp_path: Path) -> None:
    replica, follower = await _replica_with_ndop(tmp_path)
    empty_other = replay(OTHER, []).to_bytes()
    # genuinely signed by the core, but for OTHER: replayed on KEY's topic
    for_other = seal_replica_record(CORE, ReplicaKind.STATE, OTHER, empty_other, NOW)
    assert not await follower._handle(TOPIC, for_other)
    # genuinely signed as a shielding record, replayed on the state topic
    shield = orjson.dumps(
        {"active": False, "hides": [], "patient_key": KEY, "stamp": {"agent_id": "a", "event_id": "e", "hlc": 1}},
        option=orjson.OPT_SORT_KEYS,
    )
    assert not await follower._handle(TOPIC, seal_replica_record(CORE, ReplicaKind.SHIELDING, KEY, shield, NOW))
    # signed envelope whose payload names KEY but holds OTHER's state inside
    inner_mismatch = orjson.dumps(
        {"as_at_ms": NOW, "kind": "state", "patient_key": KEY, "record": empty_other.decode()},
        option=orjson.OPT_SORT_KEYS,
    )
    assert not await follower._handle(TOPIC, seal_envelope(CORE, REPLICA_PAYLOAD_TYPE, inner_mismatch))
    # on Kafka: a genuine record under another key
    kafka = KafkaReplicaFollower(
        KafkaConnection("127.0.0.1:1"), f"consent.site.{SITE}", SignedFeed(replica, CORE.public_key, now_ms=lambda: NOW)
    )
    assert not await kafka.handle(feed_key(ReplicaKind.STATE, KEY), for_other)
    assert not await kafka.handle(b"no-kind-here", for_other)
    assert await _outcome(replica) == "DENY"
    assert dict(replica.refused_by_reason) == {"REPLICA_KEY_MISMATCH": 5}
    await replica.close()


async def test_a_record_stamped_far_in_the_future_does_not_freeze_the_replica(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "replica.db", None)
    await replica.open()
    kafka = KafkaReplicaFollower(
        KafkaConnection("127.0.0.1:1"), f"consent.site.{SITE}", SignedFeed(replica, CORE.public_key, now_ms=lambda: NOW)
    )
    far = 2**62  # ms: far beyond any clock
    consent = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, DataClass.ALL, "*")
    first = replay(KEY, [plain_event(KEY, consent, (far << 16) & (2**63 - 1))])  # an event stamped in the future
    signed_first = seal_replica_record(CORE, ReplicaKind.STATE, KEY, first.to_bytes(), far)  # and signed "then"
    assert await kafka.handle(feed_key(ReplicaKind.STATE, KEY), signed_first)
    held = await replica.get(KEY)
    assert held is not None and held.state_as_at_ms == NOW  # as at: bounded by the agent's own clock
    # the next honest state (one more event) is applied: freshness is the state's version, not a time
    objection = Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER)
    later = replay(KEY, [plain_event(KEY, consent, (far << 16) & (2**63 - 1)), plain_event(KEY, objection, 6 << 16)])
    assert later.version == first.version + 1
    assert await kafka.handle(
        feed_key(ReplicaKind.STATE, KEY), seal_replica_record(CORE, ReplicaKind.STATE, KEY, later.to_bytes(), NOW)
    )
    assert await _outcome(replica) == "DENY"
    # and a replayed older version is ignored, whatever time it claims
    assert not await kafka.handle(
        feed_key(ReplicaKind.STATE, KEY), seal_replica_record(CORE, ReplicaKind.STATE, KEY, first.to_bytes(), far)
    )
    assert await _outcome(replica) == "DENY"
    await replica.close()
