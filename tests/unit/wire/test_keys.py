from __future__ import annotations

import random
import re

import pytest

from consent_wire import (
    EVENT_PAYLOAD_TYPE,
    AgentSigner,
    Authority,
    BadSignatureError,
    Capability,
    InvalidKeyEventError,
    KeyAction,
    KeyEvent,
    KeyPeriod,
    KeyRegistry,
    OperatorRoot,
    PayloadTypeError,
    RevokedKeyError,
    UnknownKeyError,
    compaction_key,
    key_id,
    public_key_bytes,
    seal_envelope,
    sign_batch,
    verify_batch,
)

from .strategies import chain_of, sample_decision

CONSENT_AT_A81001 = Authority("A81001", frozenset({Capability.CONSENT}))
ROOT = OperatorRoot.from_private_bytes(bytes(range(32)))
OLD = AgentSigner.from_private_bytes("agent-1", bytes(range(1, 33)))
NEW = AgentSigner.from_private_bytes("agent-1", bytes(range(2, 34)))
REGISTER = ROOT.register("agent-1", OLD.public_key_bytes, 1_000, site="A81001", capabilities=(Capability.CONSENT,))
ROTATE = ROOT.rotate(OLD, NEW.public_key_bytes, 5_000, site="A81001", capabilities=(Capability.CONSENT,))
REVOKE_NEW = ROOT.revoke("agent-1", NEW.public_key_bytes, 9_000)


def _registry(*events: bytes) -> KeyRegistry:
    registry = KeyRegistry(ROOT.public_key)
    for e in events:
        registry.apply(e)
    return registry


def _raw(registry: KeyRegistry, at_ms: int) -> bytes:
    return public_key_bytes(registry.key_for("agent-1", at_ms))


def test_registered_key_is_valid_from_its_effective_time() -> None:
    registry = _registry(REGISTER)
    assert _raw(registry, 1_000) == _raw(registry, 10**12) == OLD.public_key_bytes
    with pytest.raises(UnknownKeyError, match="no key at time 999"):
        registry.key_for("agent-1", 999)


def test_unknown_agent_is_unknown_key() -> None:
    with pytest.raises(UnknownKeyError, match="no key registered for agent 'agent-2'"):
        _registry(REGISTER).key_for("agent-2", 2_000)


def test_rotation_splits_history_at_the_rotation_time() -> None:
    registry = _registry(REGISTER, ROTATE)
    assert _raw(registry, 4_999) == OLD.public_key_bytes
    assert _raw(registry, 5_000) == NEW.public_key_bytes
    assert registry.periods("agent-1") == (
        KeyPeriod(OLD.public_key_bytes, 1_000, 5_000, authority=CONSENT_AT_A81001),
        KeyPeriod(NEW.public_key_bytes, 5_000, authority=CONSENT_AT_A81001),
    )


def test_old_key_signatures_after_rotation_are_rejected_and_before_accepted() -> None:
    registry = _registry(REGISTER, ROTATE)
    before = chain_of("agent-1", [sample_decision()], start_ms=4_000)
    after = chain_of("agent-1", [sample_decision()], start_ms=6_000)
    assert len(verify_batch(sign_batch(OLD, before), registry)) == 1
    with pytest.raises(BadSignatureError):
        verify_batch(sign_batch(OLD, after), registry)
    assert len(verify_batch(sign_batch(NEW, after), registry)) == 1


def test_batch_spanning_a_rotation_is_rejected() -> None:
    registry = _registry(REGISTER, ROTATE)
    span = chain_of("agent-1", [sample_decision(), sample_decision()], start_ms=4_999)
    with pytest.raises(RevokedKeyError, match="span a key rotation"):
        verify_batch(sign_batch(NEW, span), registry)


def test_rotation_without_the_old_keys_endorsement_is_rejected() -> None:
    forged = ROOT.rotate(
        AgentSigner.from_private_bytes("agent-1", bytes(32)),
        NEW.public_key_bytes,
        5_000,
        site="A81001",
        capabilities=(Capability.CONSENT,),
    )
    with pytest.raises(BadSignatureError, match="rotation endorsement"):
        _registry(REGISTER, forged)


def test_revoked_key_is_rejected_at_and_after_revocation_only() -> None:
    registry = _registry(REGISTER, ROTATE, REVOKE_NEW)
    assert _raw(registry, 8_999) == NEW.public_key_bytes
    with pytest.raises(RevokedKeyError, match="revoked at 9000; event time 9000"):
        registry.key_for("agent-1", 9_000)
    late = chain_of("agent-1", [sample_decision()], start_ms=9_500)
    with pytest.raises(RevokedKeyError):
        verify_batch(sign_batch(NEW, late), registry)


def test_new_registration_after_revocation_takes_over_from_its_time() -> None:
    fresh = AgentSigner.generate("agent-1")
    registry = _registry(
        REGISTER,
        ROTATE,
        REVOKE_NEW,
        ROOT.register("agent-1", fresh.public_key_bytes, 10_000, site="A81001", capabilities=(Capability.CONSENT,)),
    )
    with pytest.raises(RevokedKeyError):
        registry.key_for("agent-1", 9_500)
    assert _raw(registry, 10_000) == fresh.public_key_bytes


def test_key_event_not_signed_by_the_root_is_rejected() -> None:
    other_root = OperatorRoot.from_private_bytes(bytes(32))
    with pytest.raises(BadSignatureError, match="envelope"):
        _registry(
            other_root.register("agent-1", OLD.public_key_bytes, 0, site="A81001", capabilities=(Capability.CONSENT,))
        )


def test_key_event_with_another_payload_type_is_rejected() -> None:
    envelope = seal_envelope(ROOT.signer, EVENT_PAYLOAD_TYPE, b"anything")
    with pytest.raises(PayloadTypeError, match=re.escape("expected 'application/vnd.nhs-consent.key.v1")):
        _registry(envelope)


def test_second_registration_of_a_live_agent_is_invalid() -> None:
    with pytest.raises(InvalidKeyEventError, match="already has a live key"):
        _registry(
            REGISTER,
            ROOT.register("agent-1", NEW.public_key_bytes, 2_000, site="A81001", capabilities=(Capability.CONSENT,)),
        )


def test_rotation_of_an_unknown_agent_is_invalid() -> None:
    with pytest.raises(InvalidKeyEventError, match="no live key to rotate"):
        _registry(ROTATE)


def test_applying_the_same_event_twice_is_a_no_op() -> None:
    registry = _registry(REGISTER, ROTATE, ROTATE, REGISTER)
    assert registry.export() == [REGISTER, ROTATE]


def test_registry_rebuilds_from_events_in_any_order() -> None:
    events = [REGISTER, ROTATE, REVOKE_NEW]
    expected = _registry(*events).periods("agent-1")
    for seed in range(6):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        rebuilt = KeyRegistry.from_events(ROOT.public_key, shuffled)
        assert rebuilt.periods("agent-1") == expected


def test_compaction_key_is_unique_per_event() -> None:
    raw = OLD.public_key_bytes
    keys = {compaction_key(KeyEvent(action, "agent-1", "", raw, 0)) for action in KeyAction}
    assert keys == {f"agent-1/{key_id(raw)}/{a}" for a in ("REGISTER", "ROTATE", "REVOKE")}
