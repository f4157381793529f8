"""Issue 12 item 8: a forged batch costs the verifier one signature check, not 4,096 decodes."""

from __future__ import annotations

import pytest

import consent_wire.signing as signing
from broker.verifier import VerifierCore
from consent_wire import BATCH_PAYLOAD_TYPE, MAX_BATCH_EVENTS, encode
from consent_wire.keys import KeyRegistry, OperatorRoot
from tests.factories import BASE_MS, SimAgent, consent, patient


def _forged_batch(agent: SimAgent, events: list[bytes]) -> bytes:
    record = {
        "agent_id": agent.agent_id,
        "key_id": agent.signer.key_id,
        "payload_type": BATCH_PAYLOAD_TYPE,
        "first_seq": 1,
        "events": events,
        "signature": bytes(64),
    }
    return encode("SignedBatch", record, max_bytes=signing.MAX_BATCH_BYTES)


def test_forged_batch_of_4096_events_is_refused_before_any_event_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create()
    registry.apply(agent.register(root))
    one = agent.event(patient(1), consent(), BASE_MS)
    decoded: list[bytes] = []
    real_decode = signing.decode_event  # type: ignore[attr-defined]  # the internal call the test counts

    def counting_decode(data: bytes) -> object:
        decoded.append(data)
        return real_decode(data)

    monkeypatch.setattr(signing, "decode_event", counting_decode)
    result = VerifierCore(registry).process(_forged_batch(agent, [one] * MAX_BATCH_EVENTS), 0, BASE_MS)
    assert [d.reason for d in result.rejected] == ["BAD_SIGNATURE"]
    assert result.accepted == []
    assert decoded == []


def test_forged_batch_of_undecodable_events_is_a_bad_signature_not_a_decode_error() -> None:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create()
    registry.apply(agent.register(root))
    result = VerifierCore(registry).process(_forged_batch(agent, [b"\xc3\x01garbage"] * 16), 0, BASE_MS)
    assert [d.reason for d in result.rejected] == ["BAD_SIGNATURE"]
