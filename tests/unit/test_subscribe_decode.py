"""The subscriber's decoding (issue 17): checked against the contract, site feeds verified, refusals coded."""

from __future__ import annotations

import orjson

from broker.deadletter import letter_headers
from broker.subscribe import decode_record
from consent_rules.replica_feed import ReplicaKind, feed_key, seal_replica_record
from consent_rules.state import replay
from consent_wire.dsse import AgentSigner
from tests.factories import patient, plain_event, shielding

KEY = patient(7)
STATE = replay(KEY, [plain_event(KEY, shielding(), 1 << 16)])
WHERE = {"topic": "t", "partition": 0, "offset": 3}


def test_a_state_record_is_decoded_and_a_broken_one_refused_without_content() -> None:
    good = decode_record("state", key=KEY.encode(), value=STATE.to_bytes(), **WHERE)  # type: ignore[arg-type]
    assert (good.problem, good.record["version"]) == (None, 1)  # type: ignore[index]
    broken = orjson.loads(STATE.to_bytes())
    broken["version"] = "one"
    bad = decode_record("state", key=None, value=orjson.dumps(broken), **WHERE)  # type: ignore[arg-type]
    assert bad.record is None and bad.problem is not None and bad.problem.startswith("SCHEMA_MISMATCH: $.version")
    junk = decode_record("audit", key=None, value=b"\xff{", **WHERE)  # type: ignore[arg-type]
    assert (junk.record, junk.problem) == (None, "NOT_JSON")
    tombstone = decode_record("shielding", key=KEY.encode(), value=None, **WHERE)  # type: ignore[arg-type]
    assert (tombstone.record, tombstone.problem) == (None, None)


def test_site_feed_records_are_verified_with_the_core_key() -> None:
    core, forger = AgentSigner.generate("core"), AgentSigner.generate("core")
    key = feed_key(ReplicaKind.STATE, KEY)
    signed = seal_replica_record(core, ReplicaKind.STATE, KEY, STATE.to_bytes(), 5)
    ok = decode_record("site", key=key, value=signed, core_key=core.public_key, now_ms=10, **WHERE)  # type: ignore[arg-type]
    assert ok.verified and ok.problem is None and ok.record["record"]["patient_key"] == KEY  # type: ignore[index]
    forged = seal_replica_record(forger, ReplicaKind.STATE, KEY, STATE.to_bytes(), 5)
    bad = decode_record("site", key=key, value=forged, core_key=core.public_key, now_ms=10, **WHERE)  # type: ignore[arg-type]
    assert (bad.verified, bad.record, bad.problem) == (False, None, "REPLICA_FORGED")
    other = feed_key(ReplicaKind.STATE, patient(8))
    moved = decode_record("site", key=other, value=signed, core_key=core.public_key, now_ms=10, **WHERE)  # type: ignore[arg-type]
    assert moved.problem == "REPLICA_KEY_MISMATCH" and moved.record is None


def test_a_dead_letter_is_its_headers() -> None:
    headers = letter_headers(reason="BAD_SIGNATURE", message="m", source="s/0/1", stage="verifier", agent_id="a",
                             data=b"x")  # fmt: skip
    letter = decode_record("deadletter", key=None, value=b"x", headers=headers, show_value=True, **WHERE)  # type: ignore[arg-type]
    assert letter.record is not None and letter.record["reason"] == "BAD_SIGNATURE"
    assert letter.record["value_base64"] == "eA=="
    missing = decode_record("deadletter", key=None, value=b"x", headers=headers[:2], **WHERE)  # type: ignore[arg-type]
    assert missing.problem is not None and missing.record is None
