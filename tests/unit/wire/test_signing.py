from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent_wire import (
    BATCH_PAYLOAD_TYPE,
    EVENT_PAYLOAD_TYPE,
    AgentSigner,
    BadProofError,
    BadSignatureError,
    MalformedBatchError,
    PayloadTypeError,
    UnknownKeyError,
    WireError,
    decode,
    decode_verified_event,
    encode,
    encode_verified_event,
    key_id,
    pae,
    sign_batch,
    sign_event,
    verify_batch,
    verify_event_proof,
)

from .fakes import trust
from .strategies import chain_of, sample_decision

T = trust()
EVENTS = chain_of("agent-1", [sample_decision(i) for i in range(7)])
BATCH = sign_batch(T.signer, EVENTS)


def test_pae_is_the_dsse_v1_encoding() -> None:
    assert pae("t/x", b"hello") == b"DSSEv1 3 t/x 5 hello"
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_key_id_is_first_16_hex_of_sha256_of_the_public_key() -> None:
    raw = T.signer.public_key_bytes
    assert key_id(raw) == hashlib.sha256(raw).hexdigest()[:16] == T.signer.key_id


def test_verified_batch_returns_every_event_in_order_with_its_hash() -> None:
    verified = verify_batch(BATCH, T.registry)
    assert [v.event_bytes for v in verified] == EVENTS
    assert [v.event.seq for v in verified] == list(range(1, 8))
    assert [v.event_hash for v in verified] == [hashlib.sha256(e).digest() for e in EVENTS]
    assert {(v.agent_id, v.key_id, v.payload_type, v.tree_size) for v in verified} == {
        ("agent-1", T.signer.key_id, BATCH_PAYLOAD_TYPE, 7)
    }


def test_each_verified_event_verifies_alone_after_a_round_trip() -> None:
    for ve in verify_batch(BATCH, T.registry):
        again = decode_verified_event(encode_verified_event(ve))
        assert again == ve
        verify_event_proof(again, T.registry)


def test_verified_event_moved_to_another_position_fails() -> None:
    ve = verify_batch(BATCH, T.registry)[2]
    moved = decode_verified_event(encode_verified_event(ve))
    with pytest.raises(BadProofError):
        verify_event_proof(dataclasses.replace(moved, leaf_index=3), T.registry)
    other = verify_batch(BATCH, T.registry)[4]
    with pytest.raises(BadProofError):
        verify_event_proof(dataclasses.replace(ve, proof=other.proof, leaf_index=4), T.registry)


def test_per_event_signature_is_a_verifiable_batch_of_one() -> None:
    signed = sign_event(T.signer, EVENTS[0])
    (ve,) = verify_batch(signed, T.registry)
    assert ve.tree_size == 1 and ve.proof == ()
    verify_event_proof(ve, T.registry)


@settings(max_examples=300)
@given(st.data())
def test_any_single_bit_flip_of_the_batch_is_rejected(data: st.DataObject) -> None:
    bit = data.draw(st.integers(min_value=0, max_value=len(BATCH) * 8 - 1))
    flipped = bytearray(BATCH)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(WireError):
        verify_batch(bytes(flipped), T.registry)


def test_every_single_bit_flip_of_the_signed_region_is_rejected() -> None:
    """Exhaustive over the events and signature (all bytes the signature covers or is)."""
    for byte in range(10, len(BATCH)):
        flipped = bytearray(BATCH)
        flipped[byte] ^= 1 << (byte % 8)
        with pytest.raises(WireError):
            verify_batch(bytes(flipped), T.registry)


def test_batch_signed_by_another_key_is_a_bad_signature() -> None:
    impostor = AgentSigner.from_private_bytes("agent-1", bytes(32))
    with pytest.raises(BadSignatureError, match="agent 'agent-1'"):
        verify_batch(sign_batch(impostor, EVENTS), T.registry)


def test_batch_with_wrong_payload_type_is_rejected() -> None:
    record = decode("SignedBatch", BATCH, max_bytes=1 << 20)
    record["payload_type"] = EVENT_PAYLOAD_TYPE
    with pytest.raises(PayloadTypeError, match=re.escape("expected 'application/vnd.nhs-consent.batch.v1")):
        verify_batch(encode("SignedBatch", record), T.registry)


def test_signature_for_another_payload_type_does_not_verify_as_a_batch() -> None:
    record = decode("SignedBatch", BATCH, max_bytes=1 << 20)
    record["payload_type"] = EVENT_PAYLOAD_TYPE
    relabelled = encode("SignedBatch", record)
    with pytest.raises(BadSignatureError):
        verify_batch(relabelled, T.registry, payload_type=EVENT_PAYLOAD_TYPE)


def test_batch_relabelled_to_another_agent_is_rejected() -> None:
    other = trust("agent-2")
    record = decode("SignedBatch", sign_batch(other.signer, chain_of("agent-2", [sample_decision()])))
    record["agent_id"] = "agent-1"
    # The header is signed and checked before any event is decoded (issue 12 item 8).
    with pytest.raises(BadSignatureError, match="agent 'agent-1'"):
        verify_batch(encode("SignedBatch", record), T.registry)


def test_batch_shifted_in_sequence_is_rejected() -> None:
    record = decode("SignedBatch", BATCH, max_bytes=1 << 20)
    record["first_seq"] = 2
    with pytest.raises(BadSignatureError, match="agent 'agent-1'"):
        verify_batch(encode("SignedBatch", record), T.registry)


def test_signed_header_that_disagrees_with_its_events_is_malformed() -> None:
    shifted = sign_batch(T.signer, EVENTS, first_seq=2)  # the agent's own key signs a wrong header
    with pytest.raises(MalformedBatchError, match="seq 1; the batch header says agent 'agent-1' seq 2"):
        verify_batch(shifted, T.registry)


@pytest.mark.parametrize("change", ["drop_last", "drop_first", "swap"])
def test_events_removed_or_reordered_break_the_batch(change: str) -> None:
    record = decode("SignedBatch", BATCH, max_bytes=1 << 20)
    events = record["events"]
    record["events"] = {
        "drop_last": events[:-1],
        "drop_first": events[1:],
        "swap": [events[1], events[0], *events[2:]],
    }[change]
    if change == "drop_first":
        record["first_seq"] = 2
    with pytest.raises((BadSignatureError, MalformedBatchError)):
        verify_batch(encode("SignedBatch", record), T.registry)


def test_empty_batch_is_malformed() -> None:
    with pytest.raises(MalformedBatchError, match="1 to 4096 events, got 0"):
        sign_batch(T.signer, [])
    record = decode("SignedBatch", BATCH, max_bytes=1 << 20)
    record["events"] = []
    with pytest.raises(MalformedBatchError):
        verify_batch(encode("SignedBatch", record), T.registry)


def test_batch_from_unregistered_agent_is_unknown_key() -> None:
    stranger = AgentSigner.generate("agent-9")
    with pytest.raises(UnknownKeyError, match="agent-9"):
        verify_batch(sign_batch(stranger, chain_of("agent-9", [sample_decision()])), T.registry)


@pytest.mark.parametrize("seq", [0, -5])
def test_batch_with_sequence_outside_the_valid_range_is_malformed(seq: int) -> None:
    events = chain_of("agent-1", [sample_decision(), sample_decision()], start_seq=seq)
    record = {
        "agent_id": "agent-1",
        "key_id": T.signer.key_id,
        "payload_type": BATCH_PAYLOAD_TYPE,
        "first_seq": seq,
        "events": events,
        "signature": bytes(64),
    }
    with pytest.raises(MalformedBatchError, match=re.escape("outside 1..2**63-1")):
        verify_batch(encode("SignedBatch", record), T.registry)
    with pytest.raises(MalformedBatchError):
        sign_batch(T.signer, events)


def test_verified_event_with_forged_tree_size_fails_with_a_wire_error() -> None:
    ve = verify_batch(BATCH, T.registry)[0]
    for size in (0, -1, 2**40):
        with pytest.raises(WireError):
            verify_event_proof(dataclasses.replace(ve, tree_size=size), T.registry)
