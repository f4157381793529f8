"""The event model shared by the edge agent and the core (pure data).

An :class:`Event` is one fact recorded at a site: an envelope (who recorded it,
its place in the agent's chain, its hybrid-logical-clock stamp, the patient's
pseudonymous key) around exactly one payload. The Avro schemas in
``consent_wire/avro_schemas/`` mirror these classes field for field.

Times are integer milliseconds since the Unix epoch (UTC). ``hlc`` is a hybrid
logical clock packed into one int: ``(physical_ms << 16) | logical``.
No field carries an NHS number or a name: the patient is ``patient_key``, a
keyed pseudonym (see :mod:`consent_wire.identity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from consent_wire.codes import (
    BreachSeverity,
    Capability,
    ConsentDirective,
    DataClass,
    HiddenField,
    KeyAction,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
)

__all__ = [
    "MAX_INDIVIDUALS_AFFECTED",
    "AccessRecord",
    "BreachReport",
    "ConsentDecision",
    "Event",
    "KeyEvent",
    "Objection",
    "Payload",
    "ProxyAuthority",
    "ShieldingFlag",
]

ANY_RECIPIENT = "*"
# A breach cannot affect more people than live on Earth (~8.2e9, UN 2025): 10**10 bounds the
# count so that sums over any realistic number of reports stay far inside a 64-bit integer.
MAX_INDIVIDUALS_AFFECTED = 10**10


@dataclass(frozen=True, slots=True)
class ProxyAuthority:
    """Who recorded a consent or objection on the person's behalf, and under which authority (issue 14).

    ``reference`` is the instrument's reference (the OPG registration number of a lasting power of
    attorney, a Court of Protection order number); empty for parental responsibility. Never a name.
    ConsentDecision v3 / Objection v3 / Event v4.
    """

    authority: ProxyAuthorityKind
    reference: str = ""


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """An explicit consent directive for one scope (purpose x data class x recipient)."""

    directive: ConsentDirective
    purpose: PurposeOfUse
    data_class: DataClass
    recipient: str  # ODS organisation code, or "*" for every recipient
    period_start_ms: int | None = None
    period_end_ms: int | None = None  # exclusive; None = open-ended
    recorded_by_role: str = ""
    policy_ref: str | None = None  # data sharing agreement / consent form reference (rec. 20); Event v2
    proxy: ProxyAuthority | None = None  # recorded on the person's behalf (issue 14); None = by the person


@dataclass(frozen=True, slots=True)
class Objection:
    kind: ObjectionKind
    action: ObjectionAction
    exemptions: tuple[LegalBasis, ...] = ()  # bases that still override this objection
    # the data flows (approval, notice or agreement references) the exemptions hold for; an exemption
    # on an objection applies to these flows only (issue 14, rule 5); Objection v2 / Event v3
    exempt_flows: tuple[str, ...] = ()
    proxy: ProxyAuthority | None = None  # recorded on the person's behalf (issue 14); None = by the person


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """Who looked at or received the record, and why (recommendation 1 and 19)."""

    accessor_id: str  # staff identifier (pseudonymous, e.g. smartcard UUID), never a name
    organisation: str  # ODS code
    role: str  # e.g. "GP", "NURSE", "CARE_WORKER", "RESEARCHER"
    registered: bool  # registered/regulated professional
    relationship: Relationship
    purpose: PurposeOfUse
    data_classes: tuple[DataClass, ...]
    legal_basis: LegalBasis | None = None
    disclosed_to: str = ""  # recipient organisation for a disclosure, "" for a view


@dataclass(frozen=True, slots=True)
class ShieldingFlag:
    action: ShieldingAction
    hides: tuple[HiddenField, ...]
    set_by_role: str  # only authorised roles may SET/CLEAR; see core shielding policy
    reason: str = ""  # coded reason, e.g. "CHILD_PROTECTION", "DOMESTIC_ABUSE"


@dataclass(frozen=True, slots=True)
class BreachReport:
    organisation: str  # data controller, ODS code
    severity: BreachSeverity
    category: str  # e.g. "DISCLOSED_IN_ERROR", "LOST_IN_TRANSIT", "UNAUTHORISED_ACCESS"
    explanation: str  # no personal data
    remedial_action: str
    apology_given: bool
    individuals_affected: int


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """Key lifecycle, signed by the operator root key (and, for ROTATE, by the old key)."""

    action: KeyAction
    agent_id: str
    key_id: str  # hint only; verification uses the registry
    public_key: bytes  # raw 32-byte Ed25519 public key (the new key for ROTATE)
    effective_ms: int
    endorsement: bytes = b""  # ROTATE: old key's signature over the new public key
    # KeyEvent v2 (REGISTER/ROTATE): the key's authority, see consent_wire.authority. A v1 registration
    # (site "") carries no authority at all: its key may sign nothing the verifier accepts.
    site: str = ""  # ODS code of the agent's site
    capabilities: tuple[Capability, ...] = ()


Payload: TypeAlias = ConsentDecision | Objection | AccessRecord | ShieldingFlag | BreachReport | KeyEvent


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str  # 32 lowercase hex chars (uuid4().hex)
    agent_id: str
    site: str  # ODS code of the recording organisation
    seq: int  # per-agent, gap-free, starting at 1
    prev_hash: bytes  # SHA-256 of the previous event's encoded bytes; 32 zero bytes for seq 1
    hlc: int  # (physical_ms << 16) | logical
    recorded_ms: int  # the agent's wall clock when recorded
    patient_key: str  # keyed pseudonym (hex); "" for events about no patient (breach, key)
    payload: Payload = field()
    # the site's statement of the person's death (issue 14; Event v5): None states nothing, > 0 records
    # the person as deceased (the time the site recorded the notification, not the date of death), 0
    # withdraws a death recorded earlier; only a GP practice's key may stamp it (consent_wire.authority)
    subject_deceased_ms: int | None = None
