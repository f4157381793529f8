"""Offline sharing decisions from the local replica, marked "offline, as at T".

The decision rules are the core's (:func:`broker.decision.decide`); they are imported lazily
so an agent installed without the core still runs everything else (the endpoint then answers
503 DECISION_UNAVAILABLE). A request document::

    {"nhs_number": "9434765919", "purpose": "TREAT", "data_classes": ["ALL"],
     "legal_basis": null,
     "requester": {"organisation": "A12345", "role": "GP", "registered": true,
                   "relationship": "LEGITIMATE", "care_team": true}}
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from consent_wire.codes import DataClass, LegalBasis, PurposeOfUse, Relationship
from edge_agent import fields
from edge_agent.errors import InvalidFieldError, MissingFieldError, OfflineDecisionUnavailable
from edge_agent.replica import ReplicaRecord
from edge_agent.submission import Pseudonymiser

__all__ = ["OfflineAnswer", "OfflineQuery", "decide_offline", "parse_query"]

_REQUEST_FIELDS = ("nhs_number", "purpose", "data_classes", "legal_basis", "requester")
_REQUESTER_FIELDS = ("organisation", "role", "registered", "relationship", "care_team")


@dataclass(frozen=True, slots=True)
class OfflineQuery:
    patient_key: str
    purpose: PurposeOfUse
    data_classes: tuple[DataClass, ...]
    legal_basis: LegalBasis | None
    organisation: str
    role: str
    registered: bool
    relationship: Relationship
    care_team: bool


@dataclass(frozen=True, slots=True)
class OfflineAnswer:
    outcome: str
    obligations: tuple[str, ...]
    reasons: tuple[str, ...]
    codes: tuple[str, ...]
    legal_basis: str | None
    state_version: int
    permitted: tuple[str, ...]
    withheld: tuple[str, ...]
    offline: bool  # always True: answered from the site's replica, not the core
    as_at_ms: int | None  # when the replica's state was current; None = no state held

    def to_json(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in self.__slots__}


def parse_query(doc: object, pseudonymise: Pseudonymiser) -> OfflineQuery:
    body = fields.object_("body", doc)
    _only("body", body, _REQUEST_FIELDS)
    requester = fields.object_("requester", _required(body, "requester"))
    _only("requester", requester, _REQUESTER_FIELDS)
    nhs = _required(body, "nhs_number")
    if not isinstance(nhs, str):
        raise MissingFieldError("nhs_number must be a string")
    return OfflineQuery(
        patient_key=pseudonymise(nhs),
        purpose=fields.enum(PurposeOfUse)("purpose", _required(body, "purpose")),
        data_classes=fields.enums(DataClass)("data_classes", _required(body, "data_classes")),
        legal_basis=fields.opt_enum(LegalBasis)("legal_basis", body.get("legal_basis")),
        organisation=fields.text("requester.organisation", _required(requester, "organisation")),
        role=fields.text("requester.role", _required(requester, "role")),
        registered=fields.bool_("requester.registered", _required(requester, "registered")),
        relationship=fields.enum(Relationship)("requester.relationship", _required(requester, "relationship")),
        care_team=fields.bool_("requester.care_team", _required(requester, "care_team")),
    )


def decide_offline(query: OfflineQuery, record: ReplicaRecord | None, now_ms: int) -> OfflineAnswer:
    """Apply the core's rules to the replica's state (an empty state if none is held)."""
    decision_mod, state_mod = _core()
    if record is not None and record.state is not None:
        state = state_mod.PatientState.from_bytes(record.state)
        as_at = record.state_as_at_ms
    else:
        state, as_at = state_mod.empty_state(query.patient_key), None
    requester = decision_mod.Requester(
        query.organisation, query.role, query.registered, query.relationship, query.care_team
    )
    request = decision_mod.DecisionRequest(
        requester, query.purpose, query.patient_key, query.data_classes, query.legal_basis, now_ms
    )
    d: Any = decision_mod.decide(request, state)
    return OfflineAnswer(
        outcome=str(d.outcome),
        obligations=tuple(str(o) for o in d.obligations),
        reasons=tuple(d.reasons),
        codes=tuple(d.codes),
        legal_basis=None if d.legal_basis is None else str(d.legal_basis.value),
        state_version=int(d.state_version),
        permitted=tuple(c.value for c in d.permitted),
        withheld=tuple(c.value for c in d.withheld),
        offline=True,
        as_at_ms=as_at,
    )


def _core() -> tuple[ModuleType, ModuleType]:
    try:
        return importlib.import_module("broker.decision"), importlib.import_module("broker.state")
    except ImportError as exc:
        raise OfflineDecisionUnavailable(
            "offline decisions need the core's decision rules (package 'broker'); install the full distribution"
        ) from exc


def _required(body: Mapping[str, object], name: str) -> object:
    if name not in body:
        raise MissingFieldError(f"{name} is required")
    return body[name]


def _only(path: str, body: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidFieldError(f"{path}: unknown field(s) {', '.join(unknown)}")
