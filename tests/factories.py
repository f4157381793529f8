"""Shared factories: simulated agents that build chained, signed batches exactly as an edge agent does."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from broker.infra.pki import Pki
from broker.settings import STAGES
from consent_io.secrets import write_secret
from consent_wire.authority import grantable
from consent_wire.avro_codec import encode_event
from consent_wire.codes import (
    Capability,
    ConsentDirective,
    DataClass,
    HiddenField,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    ShieldingAction,
)
from consent_wire.dsse import AgentSigner
from consent_wire.keys import OperatorRoot
from consent_wire.model import ConsentDecision, Event, Objection, Payload, ShieldingFlag
from consent_wire.signing import sign_batch

BASE_MS = 1_790_000_000_000  # a fixed instant (2026-09) so tests are reproducible


def consent(
    directive: ConsentDirective = ConsentDirective.OPTOUT, purpose: PurposeOfUse = PurposeOfUse.HRESCH
) -> Payload:
    return ConsentDecision(directive, purpose, DataClass.ALL, "*", None, None, "GP")


def objection(kind: ObjectionKind = ObjectionKind.NDOP, action: ObjectionAction = ObjectionAction.REGISTER) -> Payload:
    return Objection(kind, action, ())


def shielding(action: ShieldingAction = ShieldingAction.SET, role: str = "SAFEGUARDING_LEAD") -> Payload:
    return ShieldingFlag(action, (HiddenField.LOCATION, HiddenField.CONTACT), role, "CHILD_PROTECTION")


@dataclass
class SimAgent:
    """An agent's chain: gap-free seq, previous-event hash and an HLC that follows its (possibly skewed) clock."""

    agent_id: str
    site: str
    signer: AgentSigner
    clock_skew_ms: int = 0
    seq: int = 0
    last_hash: bytes = bytes(32)
    last_hlc: int = 0
    encoded: list[bytes] = field(default_factory=list)

    @classmethod
    def create(cls, agent_id: str | None = None, site: str = "A81001", skew_ms: int = 0) -> SimAgent:
        agent_id = agent_id or f"agent-{uuid.uuid4().hex[:8]}"
        return cls(agent_id, site, AgentSigner.generate(agent_id), skew_ms)

    def event(self, patient_key: str, payload: Payload, at_ms: int, *, subject_deceased_ms: int | None = None) -> bytes:
        self.seq += 1
        wall = at_ms + self.clock_skew_ms
        hlc = max(wall << 16, self.last_hlc + 1)
        self.last_hlc = hlc
        event = Event(
            uuid.uuid4().hex,
            self.agent_id,
            self.site,
            self.seq,
            self.last_hash,
            hlc,
            wall,
            patient_key,
            payload,
            subject_deceased_ms,
        )
        data = encode_event(event)
        self.last_hash = sha256(data).digest()
        self.encoded.append(data)
        return data

    def batch(self, events: list[bytes]) -> bytes:
        return sign_batch(self.signer, events)

    def register(
        self, root: OperatorRoot, effective_ms: int = 0, capabilities: tuple[Capability, ...] | None = None
    ) -> bytes:
        """Register the agent's key for its site with ``capabilities`` (default: every one its site may hold)."""
        granted = grantable(self.site) if capabilities is None else capabilities
        return root.register(
            self.agent_id, self.signer.public_key_bytes, effective_ms, site=self.site, capabilities=granted
        )


def patient(n: int) -> str:
    """A stand-in pseudonymous patient key (32 hex characters)."""
    return sha256(f"patient-{n}".encode()).hexdigest()[:32]


def api_door(directory: Path, clients: str = "") -> dict[str, Any]:
    """Settings for the core API's door: a client registry, a token key and an HTTPS certificate from a private CA.

    Secrets are written mode 0600 as the settings require; ``clients`` is TOML ``[[client]]`` tables.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "clients.toml").write_text(clients)
    write_secret(directory / "token.key", os.urandom(32).hex().encode())
    server = Pki(directory / "pki").issue("core.api-https", server=True)
    return {
        "api_clients_file": str(directory / "clients.toml"),
        "api_token_key_file": str(directory / "token.key"),
        "http_tls_cert_file": str(server.cert_file),
        "http_tls_key_file": str(server.key_file),
    }


def audit_log_settings(directory: Path) -> dict[str, Any]:
    """An audit log key (hex, 0600) and no witnesses: the api stage's audit settings for tests not about the audit."""
    directory.mkdir(parents=True, exist_ok=True)
    write_secret(directory / "audit.key", os.urandom(32).hex().encode())
    return {"audit_key_file": str(directory / "audit.key"), "insecure_unwitnessed_audit": True}


def core_signing_key(directory: Path) -> tuple[dict[str, str], AgentSigner]:
    """A core signing key file (hex, 0600) as the ``core_signing_key_file`` setting, and the signer it holds."""
    signer = AgentSigner.generate("core")
    raw = signer.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    path = directory / "core-signing.key"
    write_secret(path, raw.hex().encode() + b"\n")
    return {"core_signing_key_file": str(path)}, signer


def core_tls(directory: Path, stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
    """Settings for a core whose stages talk mutual TLS: a private CA and a certificate per ``core.<stage>``."""
    pki = Pki(directory / "pki")
    for stage in stages:
        pki.issue(f"core.{stage}")
    return {"tls_ca_file": str(pki.ca_file), "tls_credentials_dir": str(directory / "pki")}


def plain_event(patient_key: str, payload: Payload, hlc: int, *, site: str = "A81001") -> Event:
    """An unsigned Event as the reconciler folds it (for building states in tests)."""
    return Event(uuid.uuid4().hex, "agent-t", site, 1, bytes(32), hlc, hlc >> 16, patient_key, payload)
