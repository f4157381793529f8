"""Agent key registry (pure state machine) and the operator root that signs it.

The operator root key signs every key lifecycle event (a :class:`KeyEvent` in
a DSSE envelope of type ``KEY_PAYLOAD_TYPE``); ROTATE also carries the old
key's endorsement of the new key. The registry keeps each agent's key history
as periods, so "which key was valid for this agent at time T" has one answer:

- a key is valid from its ``effective_ms``;
- after ROTATE at T the old key is valid only before T, the new one from T;
- after REVOKE at T nothing signed by that key at or after T is accepted
  (:class:`RevokedKeyError`) until a new key is registered.

``key_id`` is a hint only: lookups are by agent and time. The registry is
rebuilt from the signed events themselves (:meth:`KeyRegistry.export` and
:meth:`KeyRegistry.from_events`), e.g. from the keys topic, keyed by
:func:`compaction_key` (unique per event).

**Revocations are permanent.** Once a public key is revoked it stays revoked: a later
REVOKE can only move the revocation earlier; a REGISTER or ROTATE that would bring a
revoked key back (for any agent) is refused with INVALID_KEY_EVENT; a tombstone (an empty
record, which compaction would use to erase the REVOKE) is refused with INVALID_KEY_EVENT
and never applied. The keys topic is therefore an append-only log kept for ever
(``cleanup.policy=delete``, ``retention.ms=-1``), not a compacted one, so no record on it
can be erased by a later one.

Event times are the agent's own clock, so a thief holding a revoked or rotated-out key
could back-date events. The core's verifier therefore decides key validity by the batch's
**arrival time** at the broker (Kafka LogAppendTime, which no agent can set):
:meth:`KeyRegistry.key_at_arrival` accepts a key only if it was registered before the batch
arrived, was not revoked before it arrived (no grace: a revocation means the key may be in
a thief's hands), and was not rotated out more than :data:`ROTATION_GRACE_MS` before it
arrived (a batch signed just before a rotation may still be in flight; an honest agent
re-signs its backlog with its current key at every publish attempt).

**Authority.** A REGISTER or ROTATE (KeyEvent v2) names the key's site (ODS code) and capabilities
(:mod:`consent_wire.authority`); each period keeps them and :meth:`KeyRegistry.authority` returns
them for the verifier. A v1 registration has an empty authority: its key may record nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_wire._records import key_event_to_record, record_to_key_event
from consent_wire.authority import Authority, check_grant
from consent_wire.avro_codec import decode, encode
from consent_wire.codes import Capability, KeyAction
from consent_wire.dsse import (
    KEY_ENDORSEMENT_PAYLOAD_TYPE,
    KEY_PAYLOAD_TYPE,
    AgentSigner,
    key_id,
    open_envelope,
    pae,
    seal_envelope,
    verify_signature,
)
from consent_wire.errors import (
    BadSignatureError,
    InvalidKeyEventError,
    RevokedKeyError,
    RotatedOutKeyError,
    UnknownKeyError,
)
from consent_wire.model import KeyEvent

__all__ = [
    "ROTATION_GRACE_MS",
    "KeyPeriod",
    "KeyRegistry",
    "OperatorRoot",
    "compaction_key",
    "endorsement_message",
]

# A batch signed just before a rotation can sit in the MQTT bridge or a producer retry for a few
# minutes; ten minutes covers that and no more (a year-late back-dated batch is refused).
ROTATION_GRACE_MS = 10 * 60 * 1000
_ACTION_ORDER = {KeyAction.REGISTER: 0, KeyAction.ROTATE: 1, KeyAction.REVOKE: 2}


def endorsement_message(agent_id: str, new_public_key: bytes, effective_ms: int) -> bytes:
    """What the old key signs (under PAE) to endorse its successor."""
    body = new_public_key + struct.pack(">q", effective_ms) + agent_id.encode("utf-8")
    return pae(KEY_ENDORSEMENT_PAYLOAD_TYPE, body)


def compaction_key(event: KeyEvent) -> str:
    """Kafka key for the compacted keys topic: unique per event, so compaction keeps history."""
    return f"{event.agent_id}/{key_id(event.public_key)}/{event.action.value}"


@dataclass(frozen=True, slots=True)
class KeyPeriod:
    """One key of one agent: valid on [valid_from_ms, valid_until_ms), revoked from revoked_ms."""

    public_key: bytes
    valid_from_ms: int
    valid_until_ms: int | None = None
    revoked_ms: int | None = None
    authority: Authority = field(default_factory=Authority)

    def covers(self, at_ms: int) -> bool:
        return self.valid_from_ms <= at_ms and (self.valid_until_ms is None or at_ms < self.valid_until_ms)


class KeyRegistry:
    """Which public key each agent may sign with, as at any time."""

    def __init__(self, root_public_key: Ed25519PublicKey) -> None:
        self._root = root_public_key
        self._periods: dict[str, list[KeyPeriod]] = {}
        self._applied: dict[bytes, KeyEvent] = {}  # signed bytes -> event, in application order
        self._objects: dict[bytes, Ed25519PublicKey] = {}
        self._revoked: dict[bytes, int] = {}  # public key -> earliest revocation; never shrinks

    @classmethod
    def from_events(cls, root_public_key: Ed25519PublicKey, signed_events: list[bytes]) -> KeyRegistry:
        """Rebuild from signed key events in any order (sorted by effective time, then action)."""
        registry = cls(root_public_key)
        opened = [(registry._open(data), data) for data in signed_events]
        opened.sort(key=lambda pair: (pair[0].effective_ms, _ACTION_ORDER[pair[0].action]))
        for _event, data in opened:
            registry.apply(data)
        return registry

    def export(self) -> list[bytes]:
        """Every applied signed key event, in application order."""
        return list(self._applied)

    def agents(self) -> list[str]:
        """Every agent that ever had a key, sorted."""
        return sorted(self._periods)

    def periods(self, agent_id: str) -> tuple[KeyPeriod, ...]:
        return tuple(self._periods.get(agent_id, ()))

    def apply(self, signed_key_event: bytes | None) -> KeyEvent:
        """Verify a root-signed key event and apply it (idempotent for the same bytes)."""
        if not signed_key_event:
            raise InvalidKeyEventError(
                "empty key record (a tombstone): key events are never erased, and a revocation is permanent"
            )
        if signed_key_event in self._applied:
            return self._applied[signed_key_event]
        event = self._open(signed_key_event)
        try:
            self._object(event.public_key)
        except ValueError as exc:
            raise InvalidKeyEventError("public key is not a valid raw Ed25519 public key") from exc
        if event.action is not KeyAction.REVOKE:
            check_grant(event.agent_id, event.site, event.capabilities)
        if event.action is not KeyAction.REVOKE and event.public_key in self._revoked:
            raise InvalidKeyEventError(
                f"key {key_id(event.public_key)} was revoked at {self._revoked[event.public_key]}; a revoked key "
                f"can never be registered again ({event.action.value} for agent {event.agent_id!r} refused)"
            )
        history = self._periods.setdefault(event.agent_id, [])
        {
            KeyAction.REGISTER: self._register,
            KeyAction.ROTATE: self._rotate,
            KeyAction.REVOKE: self._revoke,
        }[event.action](event, history)
        self._applied[signed_key_event] = event
        return event

    def key_for(self, agent_id: str, at_ms: int) -> Ed25519PublicKey:
        """The agent's key valid at ``at_ms``; UnknownKeyError or RevokedKeyError otherwise."""
        period = self._period_at(agent_id, at_ms)
        if period.revoked_ms is not None and at_ms >= period.revoked_ms:
            raise RevokedKeyError(
                f"agent {agent_id!r} key {key_id(period.public_key)} was revoked at {period.revoked_ms}; "
                f"event time {at_ms} is not before it"
            )
        return self._object(period.public_key)

    def key_by_hint(self, agent_id: str, key_id_hint: str) -> Ed25519PublicKey:
        """The agent's key named by a (signed) key-id hint, chosen before any event is decoded.

        Only a key the agent has had qualifies; whether it was valid when the events were
        recorded is checked afterwards (:meth:`key_for_span`). UnknownKeyError if the agent
        has no key; BadSignatureError if the hint names none of its keys (a forger's key).
        """
        return self._object(self._period_by_hint(agent_id, key_id_hint).public_key)

    def _period_by_hint(self, agent_id: str, key_id_hint: str) -> KeyPeriod:
        history = self._periods.get(agent_id)
        if not history:
            raise UnknownKeyError(f"no key registered for agent {agent_id!r}; register it with the operator")
        for period in reversed(history):
            if key_id(period.public_key) == key_id_hint:
                return period
        raise BadSignatureError(
            f"batch from agent {agent_id!r} names key {key_id_hint[:32]!r}, which is none of the agent's keys"
        )

    def knows(self, agent_id: str, key_id_hint: str) -> bool:
        """Whether the hint names one of the agent's keys (registered, rotated to or revoked: any it ever had)."""
        return any(key_id(period.public_key) == key_id_hint for period in self._periods.get(agent_id, ()))

    def authority(self, agent_id: str, key_id_hint: str) -> Authority:
        """The site and capabilities the operator granted the agent's key named by the hint."""
        return self._period_by_hint(agent_id, key_id_hint).authority

    def key_at_arrival(self, agent_id: str, key_id_hint: str, arrival_ms: int) -> Ed25519PublicKey:
        """The agent's key named by the hint, if it was valid when the batch arrived at the broker."""
        period = self._period_by_hint(agent_id, key_id_hint)
        kid = key_id(period.public_key)
        if arrival_ms < period.valid_from_ms:
            raise UnknownKeyError(
                f"agent {agent_id!r} key {kid} is valid from {period.valid_from_ms}; the batch arrived at {arrival_ms}"
            )
        if period.revoked_ms is not None and arrival_ms >= period.revoked_ms:
            raise RevokedKeyError(
                f"agent {agent_id!r} key {kid} was revoked at {period.revoked_ms}; the batch arrived at {arrival_ms}"
            )
        if period.valid_until_ms is not None and arrival_ms >= period.valid_until_ms + ROTATION_GRACE_MS:
            raise RotatedOutKeyError(
                f"agent {agent_id!r} key {kid} was rotated out at {period.valid_until_ms}; the batch arrived at "
                f"{arrival_ms}, over {ROTATION_GRACE_MS} ms later: re-sign with the current key"
            )
        return self._object(period.public_key)

    def key_for_span(self, agent_id: str, start_ms: int, end_ms: int) -> Ed25519PublicKey:
        """The one key valid for the agent over all of [start_ms, end_ms]."""
        key = self.key_for(agent_id, end_ms)
        if start_ms != end_ms and self.key_for(agent_id, start_ms) is not key:
            raise RevokedKeyError(
                f"agent {agent_id!r} events span a key rotation between {start_ms} and {end_ms}; "
                "sign events before and after a rotation in separate batches"
            )
        return key

    def _open(self, data: bytes) -> KeyEvent:
        envelope = open_envelope(data, KEY_PAYLOAD_TYPE, self._root)
        return record_to_key_event(decode("KeyEvent", envelope.payload))

    def _object(self, raw: bytes) -> Ed25519PublicKey:
        key = self._objects.get(raw)
        if key is None:
            key = self._objects[raw] = Ed25519PublicKey.from_public_bytes(raw)
        return key

    def _period_at(self, agent_id: str, at_ms: int) -> KeyPeriod:
        history = self._periods.get(agent_id)
        if not history:
            raise UnknownKeyError(f"no key registered for agent {agent_id!r}; register it with the operator")
        for period in reversed(history):
            if period.covers(at_ms):
                return period
        raise UnknownKeyError(
            f"agent {agent_id!r} had no key at time {at_ms} (first key from {history[0].valid_from_ms})"
        )

    def _register(self, event: KeyEvent, history: list[KeyPeriod]) -> None:
        if history:
            last = history[-1]
            if last.revoked_ms is None or event.effective_ms < last.revoked_ms:
                raise InvalidKeyEventError(
                    f"agent {event.agent_id!r} already has a live key; ROTATE it or REVOKE it first"
                )
            history[-1] = replace(last, valid_until_ms=event.effective_ms)
        history.append(KeyPeriod(event.public_key, event.effective_ms, authority=_authority(event)))

    def _rotate(self, event: KeyEvent, history: list[KeyPeriod]) -> None:
        if not history or history[-1].revoked_ms is not None:
            raise InvalidKeyEventError(f"agent {event.agent_id!r} has no live key to rotate; REGISTER instead")
        old = history[-1]
        if event.effective_ms <= old.valid_from_ms:
            raise InvalidKeyEventError(f"rotation at {event.effective_ms} is not after the key's start")
        message = endorsement_message(event.agent_id, event.public_key, event.effective_ms)
        verify_signature(self._object(old.public_key), event.endorsement, message, "rotation endorsement")
        history[-1] = replace(old, valid_until_ms=event.effective_ms)
        history.append(KeyPeriod(event.public_key, event.effective_ms, authority=_authority(event)))

    def _revoke(self, event: KeyEvent, history: list[KeyPeriod]) -> None:
        found = False
        for i, period in enumerate(history):  # every period that ever carried the key
            if period.public_key == event.public_key:
                found = True
                revoked = (
                    event.effective_ms if period.revoked_ms is None else min(period.revoked_ms, event.effective_ms)
                )
                history[i] = replace(period, revoked_ms=revoked)
        if not found:
            raise InvalidKeyEventError(f"agent {event.agent_id!r} never had key {key_id(event.public_key)}")
        earlier = self._revoked.get(event.public_key, event.effective_ms)
        self._revoked[event.public_key] = min(earlier, event.effective_ms)


def _authority(event: KeyEvent) -> Authority:
    return Authority(event.site, frozenset(event.capabilities))


@dataclass(frozen=True, slots=True)
class OperatorRoot:
    """The operator's root signer: creates signed key lifecycle events."""

    signer: AgentSigner

    @classmethod
    def generate(cls) -> OperatorRoot:
        return cls(AgentSigner.generate("operator-root"))

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> OperatorRoot:
        return cls(AgentSigner.from_private_bytes("operator-root", raw))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signer.public_key

    def sign_key_event(self, event: KeyEvent) -> bytes:
        payload = encode("KeyEvent", key_event_to_record(event))
        return seal_envelope(self.signer, KEY_PAYLOAD_TYPE, payload)

    def register(
        self,
        agent_id: str,
        public_key: bytes,
        effective_ms: int,
        *,
        site: str,
        capabilities: tuple[Capability, ...],
    ) -> bytes:
        """A REGISTER naming the key's site and capabilities (InvalidKeyEventError for a grant never valid)."""
        check_grant(agent_id, site, capabilities)
        event = KeyEvent(
            KeyAction.REGISTER, agent_id, key_id(public_key), public_key, effective_ms, b"", site, capabilities
        )
        return self.sign_key_event(event)

    def rotate(
        self,
        old: AgentSigner,
        new_public_key: bytes,
        effective_ms: int,
        *,
        site: str,
        capabilities: tuple[Capability, ...],
    ) -> bytes:
        """A ROTATE, endorsed by the old key; the new key's authority is named afresh (it may change)."""
        check_grant(old.agent_id, site, capabilities)
        message = endorsement_message(old.agent_id, new_public_key, effective_ms)
        endorsement = old.private_key.sign(message)
        event = KeyEvent(
            KeyAction.ROTATE,
            old.agent_id,
            key_id(new_public_key),
            new_public_key,
            effective_ms,
            endorsement,
            site,
            capabilities,
        )
        return self.sign_key_event(event)

    def revoke(self, agent_id: str, public_key: bytes, effective_ms: int) -> bytes:
        event = KeyEvent(KeyAction.REVOKE, agent_id, key_id(public_key), public_key, effective_ms)
        return self.sign_key_event(event)
