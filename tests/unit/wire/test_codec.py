from __future__ import annotations

import dataclasses
import io

import fastavro
import pytest
from hypothesis import given, settings

from consent_wire import (
    HEADER_BYTES,
    MAGIC,
    MAX_EVENT_BYTES,
    BadMagicError,
    BadUtf8Error,
    BreachReport,
    BreachSeverity,
    Event,
    OversizeError,
    SchemaMismatchError,
    TruncatedError,
    UnknownSchemaError,
    ValidationError,
    decode,
    decode_event,
    default_store,
    encode,
    encode_event,
    fingerprint_of,
)

from .strategies import events, sample_decision


def _event(**changes: object) -> Event:
    base = Event("0" * 32, "agent-1", "A81001", 1, bytes(32), 1 << 16, 1, "ab" * 16, sample_decision())
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(events)
def test_every_event_round_trips_through_single_object_encoding(event: Event) -> None:
    data = encode_event(event)
    assert data[:2] == MAGIC
    assert fingerprint_of(data) == default_store().current("Event").fingerprint
    assert decode_event(data) == event


def test_event_written_with_v1_is_read_as_current_with_default_policy_ref() -> None:
    event = _event()
    old = encode_event(event, version=1)
    assert fingerprint_of(old) == default_store().get("Event", 1).fingerprint
    assert decode_event(old) == event  # policy_ref resolved to its default, None


def test_v1_writer_drops_field_added_in_v2_and_reader_fills_default() -> None:
    event = _event(payload=dataclasses.replace(sample_decision(), policy_ref="DSA-2024-17"))
    assert decode_event(encode_event(event)).payload.policy_ref == "DSA-2024-17"  # type: ignore[union-attr]
    assert decode_event(encode_event(event, version=1)).payload.policy_ref is None  # type: ignore[union-attr]


def test_encoded_body_is_plain_avro_binary_after_the_header() -> None:
    data = encode_event(_event())
    schema = default_store().current("Event").parsed
    record = fastavro.schemaless_reader(io.BytesIO(data[HEADER_BYTES:]), schema)
    assert record["agent_id"] == "agent-1"


def test_oversize_input_is_refused_before_decoding() -> None:
    data = MAGIC + b"\xff" * (MAX_EVENT_BYTES - 1)  # unknown fingerprint too, but size is checked first
    with pytest.raises(OversizeError, match=f"over the {MAX_EVENT_BYTES}-byte limit"):
        decode_event(data)


def test_encoding_an_event_over_the_limit_is_refused() -> None:
    big = BreachReport("A81001", BreachSeverity.LEVEL_1, "LOST", "x" * MAX_EVENT_BYTES, "", False, 1)
    with pytest.raises(OversizeError):
        encode_event(_event(payload=big))


@pytest.mark.parametrize("length", [0, 1, 2, 9])
def test_input_shorter_than_header_is_truncated(length: int) -> None:
    with pytest.raises(TruncatedError, match="shorter than the 10-byte"):
        decode_event(encode_event(_event())[:length])


def test_body_cut_short_is_truncated() -> None:
    data = encode_event(_event())
    with pytest.raises(TruncatedError):
        decode_event(data[:-3])


def test_wrong_magic_is_rejected() -> None:
    data = encode_event(_event())
    with pytest.raises(BadMagicError, match="c300"):
        decode_event(b"\xc3\x00" + data[2:])


def test_unknown_fingerprint_is_rejected() -> None:
    data = encode_event(_event())
    with pytest.raises(UnknownSchemaError, match="0000000000000000"):
        decode_event(data[:2] + bytes(8) + data[10:])


def test_record_of_another_schema_is_a_schema_mismatch() -> None:
    data = encode("Objection", {"kind": "NDOP", "action": "REGISTER", "exemptions": []})
    with pytest.raises(SchemaMismatchError, match="expected a Event record, got a Objection v3"):
        decode_event(data)


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(SchemaMismatchError, match="1 trailing bytes"):
        decode_event(encode_event(_event()) + b"\x00")


def test_invalid_utf8_in_a_string_is_bad_utf8() -> None:
    data = encode_event(_event(site="ZZZZZZ"))
    bad = data.replace(b"ZZZZZZ", b"ZZ\xff\xfeZZ")
    with pytest.raises(BadUtf8Error):
        decode_event(bad)


def test_hostile_length_prefix_is_truncated_not_allocated() -> None:
    header = encode_event(_event())[:HEADER_BYTES]
    bomb = header + b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"  # event_id length ~ 2**62
    with pytest.raises(TruncatedError):
        decode_event(bomb)


def test_out_of_range_union_branch_is_a_schema_mismatch() -> None:
    data = encode_event(_event())
    body = bytearray(data)
    # the union index is the byte after the fixed fields; find it by re-encoding with a known payload
    head = encode_event(_event())[: len(data) - len(_tail_after_union(data))]
    body[len(head) - 1] = 0x7E  # zig-zag 63: no such branch
    with pytest.raises(SchemaMismatchError):
        decode_event(bytes(body))


def _tail_after_union(data: bytes) -> bytes:
    record = {
        "directive": "OPTIN",
        "purpose": "TREAT",
        "data_class": "ALL",
        "recipient": "*",
        "period_start_ms": None,
        "period_end_ms": None,
        "recorded_by_role": "GP0",
        "policy_ref": None,
        "proxy": None,
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, default_store().current("ConsentDecision").parsed, record)
    tail = buf.getvalue() + b"\x00"  # then the envelope's subject_deceased_ms: null (Event v5)
    assert data.endswith(tail)
    return tail


def test_wrong_length_prev_hash_cannot_be_encoded() -> None:
    with pytest.raises(ValidationError, match="cannot encode a Event"):
        encode_event(_event(prev_hash=b"short"))


def test_generic_decode_resolves_old_writer_to_current_reader() -> None:
    record = {"directive": "OPTOUT", "purpose": "HRESCH", "data_class": "ALL", "recipient": "*"}
    data = encode("ConsentDecision", record, version=1)
    assert decode("ConsentDecision", data) == {
        **record,
        "period_start_ms": None,
        "period_end_ms": None,
        "recorded_by_role": "",
        "policy_ref": None,
        "proxy": None,
    }
