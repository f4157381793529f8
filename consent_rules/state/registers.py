"""The registers of one patient's consent state and the state that holds them (pure).

The state of one patient is a set of last-writer-wins registers: one per consent scope
``(purpose, data_class, recipient)``, one per objection kind and one shielding register. Each
register carries the :class:`Stamp` ``(hlc, agent_id, event_id)`` of the event that set it (the
merge orders by it, see :mod:`consent_rules.state.merge`) and that event's ``(partition, offset)``
source in the events topic when known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from consent_rules.state.ledger import Applied, Mark
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionKind,
    PurposeOfUse,
)
from consent_wire.model import Event, ProxyAuthority

__all__ = [
    "ANY_RECIPIENT",
    "NATIONAL",
    "PER_ORGANISATION",
    "ConsentKey",
    "ConsentRegister",
    "DeceasedRegister",
    "ObjectionKey",
    "ObjectionRegister",
    "PatientState",
    "Provenance",
    "QuarantinedShielding",
    "Register",
    "ShieldingRegister",
    "Source",
    "Stamp",
    "objection_key",
]

ANY_RECIPIENT = "*"  # same wildcard as consent_wire.model.ANY_RECIPIENT

Source: TypeAlias = tuple[int, int]  # (partition, offset) of the event in the events topic
ConsentKey: TypeAlias = tuple[PurposeOfUse, DataClass, str]  # (purpose, data_class, recipient)
# (kind, site): the recording site for objections that belong to one organisation, "*" for national ones
ObjectionKey: TypeAlias = tuple[ObjectionKind, str]

NATIONAL = "*"  # the site part of the key of a national objection
# Objections that belong to the organisation that recorded them (issue 14, rule 6): local dissent is
# per organisation, and a type 1 is registered and withdrawn by the patient's GP practice only. The
# events carry no registered-practice field, so the practice is taken to be the recording site.
PER_ORGANISATION = frozenset({ObjectionKind.TYPE1, ObjectionKind.LOCAL_DISSENT})


def objection_key(kind: ObjectionKind, site: str) -> ObjectionKey:
    """The register an objection of ``kind`` recorded at ``site`` writes."""
    return (kind, site if kind in PER_ORGANISATION else NATIONAL)


@dataclass(frozen=True, slots=True, order=True)
class Stamp:
    """Total order used by the merge: ``(hlc, agent_id, event_id)`` compared as a tuple."""

    hlc: int
    agent_id: str
    event_id: str

    @staticmethod
    def of(event: Event) -> Stamp:
        return Stamp(event.hlc, event.agent_id, event.event_id)


@dataclass(frozen=True, slots=True)
class ConsentRegister:
    """Last-writer-wins register for one consent scope."""

    directive: ConsentDirective
    period_start_ms: int | None
    period_end_ms: int | None  # exclusive; None = open-ended
    stamp: Stamp
    source: Source | None = None
    # the data-sharing agreement or consent form it was collected under (rec 20; issue 14), kept so a
    # decision and an auditor can name it
    policy_ref: str | None = None
    # who recorded it on the person's behalf, under which authority (issue 14); None = the person
    proxy: ProxyAuthority | None = None

    def covers(self, at_ms: int) -> bool:
        """Whether ``at_ms`` lies in ``[period_start_ms, period_end_ms)``."""
        after_start = self.period_start_ms is None or self.period_start_ms <= at_ms
        return after_start and (self.period_end_ms is None or at_ms < self.period_end_ms)


@dataclass(frozen=True, slots=True)
class ObjectionRegister:
    active: bool
    exemptions: tuple[LegalBasis, ...]  # sorted, unique
    stamp: Stamp
    site: str
    source: Source | None = None
    # the data flows (approval, notice or agreement references) the exemptions hold for: an exemption
    # applies to a request naming one of these flows only (issue 14, rule 5); sorted, unique
    exempt_flows: tuple[str, ...] = ()
    # who recorded it on the person's behalf, under which authority (issue 14); None = the person
    proxy: ProxyAuthority | None = None


@dataclass(frozen=True, slots=True)
class ShieldingRegister:
    """Whether the patient is shielded and what is hidden.

    The flag's reason (e.g. domestic abuse) is deliberately not held: it stays on the events topic
    inside the core and never reaches the state topic, the API's state JSON or any site (issue 12).
    """

    active: bool
    hides: tuple[HiddenField, ...]  # sorted, unique; () when inactive
    stamp: Stamp
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class QuarantinedShielding:
    """A shielding SET from a role without authority, held for the safeguarding lead (issue 14, rule 10).

    It is not applied to :class:`ShieldingRegister` (the shielding topic and the sites' flags do not
    change), but it is kept, visible in the state with its reason code and the role that asked, and
    decisions treat it as a provisional shield until an authorised SET or CLEAR later than it decides
    (:meth:`PatientState.pending_quarantine`). Like the shielding register it holds no reason text.
    """

    hides: tuple[HiddenField, ...]  # sorted, unique
    role: str  # the role that asked (a role code, no person)
    reason: str  # the rejection code, e.g. UNAUTHORISED_SHIELDING_SET
    stamp: Stamp
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class DeceasedRegister:
    """Whether the person is recorded as deceased (issue 14): the latest statement on an event's envelope.

    Last-writer-wins like every register, so a later withdrawal (``subject_deceased_ms == 0``, a PDS
    death notification withdrawn) clears an earlier death and a later death replaces a withdrawal.
    Privacy by design: only yes/no and the stamp of the event that said it are kept, never a date of
    death (the rules need only whether the person has died).
    """

    deceased: bool
    stamp: Stamp
    source: Source | None = None


Register: TypeAlias = ConsentRegister | ObjectionRegister | ShieldingRegister | QuarantinedShielding | DeceasedRegister


@dataclass(frozen=True, slots=True)
class Provenance:
    """The event that set one register."""

    event_id: str
    source: Source | None


@dataclass(frozen=True, slots=True)
class PatientState:
    patient_key: str
    consents: Mapping[ConsentKey, ConsentRegister]
    objections: Mapping[ObjectionKey, ObjectionRegister]  # see objection_key
    shielding: ShieldingRegister | None
    marks: Mapping[str, Mark]  # per agent high-water mark (see consent_rules.state.ledger)
    recent: frozenset[Applied]  # the last ledger.WINDOW events applied, above their agent's mark
    version: int  # events folded in: ledger.version_of(marks, recent)
    quarantine: QuarantinedShielding | None = None  # the latest unauthorised shielding SET (rule 10)
    deceased: DeceasedRegister | None = None  # the latest statement of the person's death (issue 14)

    @property
    def is_deceased(self) -> bool:
        """Whether the latest statement in the state records the person as deceased."""
        return self.deceased is not None and self.deceased.deceased

    @property
    def applied(self) -> frozenset[str]:
        """The ids of the events still in the ledger's window (every id while fewer than ``ledger.WINDOW``)."""
        return frozenset(e.event_id for e in self.recent)

    @property
    def pending_quarantine(self) -> QuarantinedShielding | None:
        """The quarantined SET no authorised shielding event has yet answered (later than it), if any."""
        q = self.quarantine
        if q is None or (self.shielding is not None and self.shielding.stamp > q.stamp):
            return None
        return q

    def to_bytes(self) -> bytes:
        """Canonical JSON (orjson, sorted keys): byte-identical for equal states."""
        # imported here: the codec builds PatientState values, so it imports this module
        from consent_rules.state.codec import state_to_bytes

        return state_to_bytes(self)

    @staticmethod
    def from_bytes(data: bytes) -> PatientState:
        """Inverse of :meth:`to_bytes`; raises :class:`~consent_rules.state.StateDecodeError` on bad input."""
        from consent_rules.state.codec import state_from_bytes

        return state_from_bytes(data)

    @property
    def provenance(self) -> Mapping[str, Provenance]:
        """Register name (``consent/TREAT/ALL/*``, ``objection/NDOP``, ``objection/TYPE1/A81001``, ``shielding``,
        ``deceased``)."""
        out: dict[str, Provenance] = {}
        for (purpose, data_class, recipient), c in self.consents.items():
            out[f"consent/{purpose.value}/{data_class.value}/{recipient}"] = Provenance(c.stamp.event_id, c.source)
        for (kind, site), o in self.objections.items():
            name = f"objection/{kind.value}" if site == NATIONAL else f"objection/{kind.value}/{site}"
            out[name] = Provenance(o.stamp.event_id, o.source)
        if self.shielding is not None:
            out["shielding"] = Provenance(self.shielding.stamp.event_id, self.shielding.source)
        if self.quarantine is not None:
            out["quarantine/shielding"] = Provenance(self.quarantine.stamp.event_id, self.quarantine.source)
        if self.deceased is not None:
            out["deceased"] = Provenance(self.deceased.stamp.event_id, self.deceased.source)
        return out

    @property
    def newest_stamp(self) -> Stamp | None:
        """The latest stamp of any register (``None`` for an empty state).

        Every event folded in has a stamp at or before it (a losing event is older than the winner
        of its register), so the state as at any hlc at or after ``newest_stamp.hlc`` is this state.
        """
        stamps = [c.stamp for c in self.consents.values()] + [o.stamp for o in self.objections.values()]
        if self.shielding is not None:
            stamps.append(self.shielding.stamp)
        if self.quarantine is not None:
            stamps.append(self.quarantine.stamp)
        if self.deceased is not None:
            stamps.append(self.deceased.stamp)
        return max(stamps, default=None)
