"""Adapters from the edge agent's small Protocols to the shared wire protocol (consent_wire).

Wired together in one place, :mod:`edge_agent.app`; the pure modules never import this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent_io.secrets import SecretFileError, check_secret_mode
from consent_wire import hlc
from consent_wire.avro_codec import decode_event, encode_event
from consent_wire.dsse import AgentSigner
from consent_wire.model import Event
from consent_wire.signing import sign_batch
from consent_wire.site_pseudonyms import SITE_SECRET_BYTES, SitePseudonymiser
from edge_agent.errors import ConfigError
from edge_agent.submission import Pseudonymiser

__all__ = [
    "AvroEventCodec",
    "HlcClock",
    "WireBatchSigner",
    "generate_signing_key",
    "load_agent_signer",
    "load_pseudonymiser",
    "make_clock",
]

_KEY_FILE_MODE = 0o600


class HlcClock(Protocol):
    def tick(self) -> int: ...


class AvroEventCodec:
    """Avro single-object encoding of events (consent_wire.avro_codec)."""

    def encode(self, event: Event) -> bytes:
        return encode_event(event)

    def decode(self, data: bytes) -> Event:
        return decode_event(data)


@dataclass(frozen=True, slots=True)
class WireBatchSigner:
    """One Ed25519 signature over the Merkle root of a batch (consent_wire.signing.sign_batch)."""

    signer: AgentSigner

    def sign(self, events: Sequence[bytes], first_seq: int) -> bytes:
        return sign_batch(self.signer, events, first_seq=first_seq)


def generate_signing_key(path: Path) -> bytes:
    """Write a new Ed25519 private key (PKCS#8 PEM, mode 0600); returns the raw public key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _KEY_FILE_MODE)
    except FileExistsError as exc:
        raise ConfigError(f"key file {path} exists already; refusing to overwrite a signing key") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_agent_signer(path: Path, agent_id: str) -> AgentSigner:
    raw = _read_private_file(path)
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except ValueError as exc:
        raise ConfigError(f"signing key file {path} is not a PKCS#8 PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"signing key file {path} holds a {type(key).__name__}, not an Ed25519 key")
    return AgentSigner(agent_id, key)


def load_pseudonymiser(path: Path) -> Pseudonymiser:
    """NHS number -> this site's pseudonym (:func:`consent_wire.site_pseudonyms.site_patient_key`).

    The file holds the **site's** secret hex-encoded, exactly 32 bytes, as the operator derives it for
    the site's ODS code (``consent-broker keys site-secret --site ODS``); the national secret stays in
    the core (issue 12 item 11), which translates the site's pseudonyms to national ones.
    """
    text = _read_private_file(path).strip()
    try:
        secret = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"pseudonym secret file {path} must hold the secret hex-encoded") from exc
    if len(secret) != SITE_SECRET_BYTES:
        raise ConfigError(
            f"pseudonym secret in {path} is {len(secret)} bytes; a site secret is {SITE_SECRET_BYTES} "
            "(write it with `consent-broker keys site-secret --site ODS`)"
        )
    return SitePseudonymiser(secret)


def make_clock(now_ms: Callable[[], int], last_hlc: int = 0) -> HlcClock:
    """A hybrid logical clock that never goes below ``last_hlc`` (the outbox's last stamp)."""
    return hlc.HybridClock(now_ms, last_hlc)


def _read_private_file(path: Path) -> bytes:
    """The file's bytes, refused unless only its owner may read it (consent_io.secrets, the one check)."""
    try:
        check_secret_mode(path, "private file")
        return path.read_bytes()
    except SecretFileError as exc:
        raise ConfigError(str(exc)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
