"""Shared factories: simulated agents that build chained, signed batches exactly as an edge agent does.

Pseudonyms (issue 12 item 11): every test core uses :data:`NATIONAL_SECRET` (``LocalDeployment`` in
tests/conftest.py, :func:`pseudonym_secret`). :func:`patient` is the *national* pseudonym of a test
NHS number (what the core's state, audit and API are keyed by); a :class:`SimAgent` keys its events
by its site's pseudonym of that person, as a real agent holding only its site's secret does, and the
core's verifier translates it back. A key :func:`patient` did not make is sent as given.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field, replace
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from broker.infra.pki import Pki
from broker.settings import STAGES
from consent_io.secrets import write_secret
from consent_rules.state import apply, empty_state
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
from consent_wire.identity import patient_key
from consent_wire.keys import OperatorRoot
from consent_wire.model import ConsentDecision, Event, Objection, Payload, ShieldingFlag
from consent_wire.signing import sign_batch
from consent_wire.site_pseudonyms import CorePseudonyms

BASE_MS = 1_790_000_000_000  # a fixed instant (2026-09) so tests are reproducible
NATIONAL_SECRET = bytes(range(64, 96))  # the national pseudonym secret of every test core (never a real one)
PSEUDONYMS = CorePseudonyms(NATIONAL_SECRET)
_NHS_OF: dict[str, str] = {}  # national key -> the test NHS number behind it (made by patient())


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

    def event(
        self,
        patient_key: str,
        payload: Payload,
        at_ms: int,
        *,
        as_signed: bool = False,
        subject_deceased_ms: int | None = None,
    ) -> bytes:
        """The next event about ``patient_key`` (a national key from :func:`patient`: keyed by this site's
        pseudonym of the person, as a real agent does; ``as_signed``: exactly ``patient_key``, e.g. a forgery)."""
        self.seq += 1
        wall = at_ms + self.clock_skew_ms
        hlc = max(wall << 16, self.last_hlc + 1)
        self.last_hlc = hlc
        key = patient_key if as_signed else site_key(self.site, patient_key)
        event = Event(
            uuid.uuid4().hex,
            self.agent_id,
            self.site,
            self.seq,
            self.last_hash,
            hlc,
            wall,
            key,
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


def nhs_number(n: int) -> str:
    """A distinct valid test NHS number for each ``n`` (0 <= n < 10**7): 9 then n's block of ten candidates."""
    for candidate in range(900_000_000 + 10 * n, 900_000_000 + 10 * n + 10):
        digits = f"{candidate:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check != 10:  # modulus 11: a check of 10 makes the number invalid
            return f"{digits}{0 if check == 11 else check}"
    raise AssertionError("unreachable: ten consecutive numbers always include a valid one")


def patient(n: int) -> str:
    """The national pseudonym (32 hex characters, under :data:`NATIONAL_SECRET`) of test NHS number ``n``."""
    return national_key(nhs_number(n))


def national_key(nhs: str) -> str:
    """The national pseudonym of ``nhs`` under :data:`NATIONAL_SECRET`; a :class:`SimAgent` sends its site's."""
    key = patient_key(NATIONAL_SECRET, nhs)
    _NHS_OF[key] = nhs
    return key


def site_key(site: str, national_key: str) -> str:
    """``site``'s pseudonym of the person whose national key :func:`patient` made; other keys as given."""
    nhs = _NHS_OF.get(national_key)
    return national_key if nhs is None else PSEUDONYMS.for_site(site, nhs)


def as_the_core_keys_it(event: Event) -> Event:
    """``event`` (as a :class:`SimAgent` signed it, under its site's pseudonym) keyed as the core's verifier
    forwards it: by the national pseudonym (for reference replays against the core's state)."""
    if not event.patient_key:
        return event
    return replace(event, patient_key=PSEUDONYMS.to_national(event.site, event.patient_key))


def pseudonym_secret(directory: Path) -> dict[str, str]:
    """The ``pseudonym_secret_file`` setting: :data:`NATIONAL_SECRET` in a mode-0600 file."""
    path = directory / "national-pseudonym.secret"
    write_secret(path, NATIONAL_SECRET.hex().encode() + b"\n")
    return {"pseudonym_secret_file": str(path)}


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


def shielded_state_bytes(patient_key: str, at_ms: int = BASE_MS) -> bytes:
    """A patient's canonical state record after one shielding flag (what the mirror seals for a replica)."""
    return apply(empty_state(patient_key), plain_event(patient_key, shielding(), at_ms << 16)).to_bytes()


def with_tampered_signature(token: str) -> str:
    """A JWT ``token`` with one character in the middle of its signature changed: every bit of that character
    counts (the last characters of an Ed25519 signature hold the top byte of S, often 0, so writing over them can
    leave the signature unchanged)."""
    body, _, signature = token.rpartition(".")
    middle = len(signature) // 2
    changed = "B" if signature[middle] == "A" else "A"
    return f"{body}.{signature[:middle]}{changed}{signature[middle + 1 :]}"
