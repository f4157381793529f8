"""The signed replica record: round trip, freshness from content, and every refusal's reason code."""

from __future__ import annotations

import orjson
import pytest

from consent_rules.replica_feed import (
    MalformedReplicaError,
    ReplicaKind,
    UnsignedReplicaError,
    feed_key,
    open_replica_record,
    parse_feed_key,
    seal_replica_record,
)
from consent_rules.state import empty_state
from consent_wire.dsse import REPLICA_PAYLOAD_TYPE, AgentSigner, seal_envelope

CORE = AgentSigner.generate("core")
P = "ab" * 32


def test_a_sealed_state_opens_with_its_version_as_freshness_and_as_at_bounded_by_now() -> None:
    data = empty_state(P).to_bytes()
    sealed = seal_replica_record(CORE, ReplicaKind.STATE, P, data, 2_000)
    update = open_replica_record(sealed, CORE.public_key, ReplicaKind.STATE, P, now_ms=1_000)
    assert (update.record, update.freshness, update.as_at_ms) == (data, 0, 1_000)
    assert open_replica_record(sealed, CORE.public_key, ReplicaKind.STATE, P, now_ms=5_000).as_at_ms == 2_000


def test_shielding_freshness_is_its_stamp_hlc() -> None:
    shield = {
        "active": True,
        "hides": ["LOCATION"],
        "patient_key": P,
        "stamp": {"agent_id": "a", "event_id": "e", "hlc": 77},
    }
    sealed = seal_replica_record(CORE, ReplicaKind.SHIELDING, P, orjson.dumps(shield), 1)
    assert open_replica_record(sealed, CORE.public_key, ReplicaKind.SHIELDING, P, 10).freshness == 77


def test_feed_keys_round_trip_and_unknown_kinds_are_none() -> None:
    assert parse_feed_key(feed_key(ReplicaKind.SHIELDING, P)) == (ReplicaKind.SHIELDING, P)
    for bad in (None, b"", b"state", b"audit/x", b"state/"):
        assert parse_feed_key(bad) is None


@pytest.mark.parametrize(
    "payload",
    [b"[]", b"{}", orjson.dumps({"as_at_ms": "1", "kind": "state", "patient_key": P, "record": None})],
)
def test_a_signed_but_malformed_payload_is_refused(payload: bytes) -> None:
    with pytest.raises(MalformedReplicaError) as info:
        open_replica_record(
            seal_envelope(CORE, REPLICA_PAYLOAD_TYPE, payload), CORE.public_key, ReplicaKind.STATE, P, 1
        )
    assert info.value.reason == "REPLICA_MALFORMED"


def test_garbage_is_unsigned() -> None:
    with pytest.raises(UnsignedReplicaError) as info:
        open_replica_record(b"\x00garbage", CORE.public_key, ReplicaKind.STATE, P, 1)
    assert info.value.reason == "REPLICA_UNSIGNED"
