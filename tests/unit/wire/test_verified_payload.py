"""The reconciler's fast path takes exactly the event a full VerifiedEvent decode would, or a typed error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent_wire import (
    TruncatedError,
    WireError,
    decode_verified_event,
    encode_event,
    encode_verified_event,
    sign_batch,
    verified_event_payload,
    verify_batch,
)
from consent_wire.avro_codec import encode
from tests.unit.wire.fakes import trust
from tests.unit.wire.strategies import chain_of, sample_decision


def _verified(n: int) -> list[bytes]:
    t = trust()
    events = chain_of(t.signer.agent_id, [sample_decision(i) for i in range(n)])
    return [encode_verified_event(ve) for ve in verify_batch(sign_batch(t.signer, events), t.registry)]


def test_fast_payload_equals_the_full_decode_for_every_event_of_a_batch() -> None:
    for data in _verified(7):
        assert verified_event_payload(data) == decode_verified_event(data).event


def test_a_record_of_another_type_is_refused() -> None:
    event_bytes = chain_of("agent-1", [sample_decision()])[0]
    with pytest.raises(WireError) as info:
        verified_event_payload(event_bytes)
    assert info.value.reason == "SCHEMA_MISMATCH"


@settings(max_examples=300)
@given(st.integers(min_value=10, max_value=400), st.data())
def test_truncated_or_mutated_records_raise_only_typed_errors(cut: int, data: st.DataObject) -> None:
    record = _verified(1)[0]
    mutated = bytearray(record[:cut])
    if mutated and len(mutated) > 10:
        i = data.draw(st.integers(min_value=10, max_value=len(mutated) - 1))
        mutated[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        event = verified_event_payload(bytes(mutated))
    except WireError:
        return
    assert encode_event(event)  # anything accepted is a well-formed event


def test_a_length_beyond_the_record_is_truncation() -> None:
    record = bytearray(_verified(1)[0])
    record[10] = 0xFE  # zig-zag 127: longer than what follows
    record[11] = 0x7F
    with pytest.raises(TruncatedError):
        verified_event_payload(bytes(record))


def test_a_translated_event_reads_national_on_both_paths_and_a_v1_record_reads_as_signed() -> None:
    """VerifiedEvent v2 (issue 12 item 11): the national key rides beside the signed bytes; v1 records still read."""
    t = trust()
    events = chain_of(t.signer.agent_id, [sample_decision(i) for i in range(3)])
    verified = verify_batch(sign_batch(t.signer, events), t.registry)
    national = "ab" * 16
    translated = encode_verified_event(verified[1].translated(national))
    assert verified_event_payload(translated).patient_key == national
    full = decode_verified_event(translated)
    assert (full.event.patient_key, full.site_key) == (national, verified[1].event.patient_key)
    assert full.event_bytes == verified[1].event_bytes  # the signed bytes are kept as signed
    record = {
        "event": verified[0].event_bytes, "agent_id": verified[0].agent_id, "key_id": verified[0].key_id,
        "payload_type": verified[0].payload_type, "first_seq": verified[0].first_seq,
        "tree_size": verified[0].tree_size, "leaf_index": verified[0].leaf_index, "proof": list(verified[0].proof),
        "root": verified[0].root, "signature": verified[0].signature,
    }  # fmt: skip
    v1 = encode("VerifiedEvent", record, version=1, max_bytes=2**20)
    assert verified_event_payload(v1) == decode_verified_event(v1).event == verified[0].event
    assert decode_verified_event(v1).site_key == ""


def test_rekeyed_and_translated_copy_every_field_as_dataclasses_replace_would() -> None:
    """Both are built field by field for speed (issue 18): a field added to Event or VerifiedEvent must be copied."""
    from dataclasses import fields, replace

    from consent_wire.model import Event
    from consent_wire.signing import VerifiedEvent, rekeyed

    assert [f.name for f in fields(Event)] == [
        "event_id", "agent_id", "site", "seq", "prev_hash", "hlc", "recorded_ms", "patient_key", "payload",
        "subject_deceased_ms",
    ]  # fmt: skip
    assert [f.name for f in fields(VerifiedEvent)][-1] == "site_key" and len(fields(VerifiedEvent)) == 13
    t = trust()
    events = chain_of(t.signer.agent_id, [sample_decision(i) for i in range(3)])
    ve = verify_batch(sign_batch(t.signer, events), t.registry)[2]
    dead = replace(ve.event, subject_deceased_ms=123)
    assert rekeyed(dead, "f" * 32) == replace(dead, patient_key="f" * 32)
    national = "e" * 32
    assert ve.translated(national) == replace(
        ve, event=replace(ve.event, patient_key=national), site_key=ve.event.patient_key
    )
