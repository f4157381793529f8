"""JSON in and out of the HTTP API (pure): request parsing with typed errors, response bodies.

The decision request and its answer are consent_rules' (``consent_rules.decision.document`` and
``answer``), shared with the edge agent's offline API.

Errors::

    ValidationError (consent_wire.errors)
    +-- BadRequestError          BAD_REQUEST (consent_rules.decision)
        +-- ApiRequestError      BAD_REQUEST
    InvalidCodeError             INVALID_CODE (an unknown purpose, data class, basis or relationship)
    InvalidNhsNumberError        INVALID_NHS_NUMBER (from the backend's pseudonymisation)
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from broker.api.fhir_resources import consents_of, searchset
from broker.audit import AccessView
from broker.audit.tlog import InclusionProof
from consent_rules.decision import BadRequestError, parse_as_at
from consent_rules.state import PatientState

__all__ = [
    "MAX_PAGE",
    "ApiRequestError",
    "HealthInfo",
    "accesses_json",
    "consent_fhir_json",
    "parse_list_sizes",
    "parse_page",
    "parse_window",
    "state_json",
]

Json = dict[str, Any]


MAX_MS_DIGITS = 18  # epoch milliseconds below 10^18 (year 31,000,000) fit an Avro long; more is not a time
MAX_LIST_SIZE_DIGITS = 9  # the largest GP practice lists are ~10^5 patients; 10^9 is more than any country


class ApiRequestError(BadRequestError):
    reason = "BAD_REQUEST"


@dataclass(frozen=True, slots=True)
class HealthInfo:
    ready: bool  # the views have caught up with the topics as they stood at start
    patients: int
    events: int
    audit_next_index: int
    audit_holder: bool = False  # this instance appends to the audit log (else its decisions go as audit requests)
    audit_indexed: int = 0  # audit entries this instance's access-log index has read (below audit_next_index: lag)


def parse_list_sizes(text: str | None, configured: Mapping[str, int]) -> dict[str, int]:
    """``A81001:6000,B82002:4000`` (query) or else the configured sizes."""
    if not text:
        if not configured:
            raise ApiRequestError("no list sizes: pass ?list_sizes=PRACTICE:SIZE,... or configure them")
        return dict(configured)
    sizes: dict[str, int] = {}
    for part in text.split(","):
        practice, sep, size = part.partition(":")
        if not sep or not practice or not _is_count(size, MAX_LIST_SIZE_DIGITS):
            raise ApiRequestError(f"list_sizes entry {part[:40]!r} is not PRACTICE:SIZE (SIZE: up to 9 digits)")
        sizes[practice] = int(size)
    return sizes


def _is_count(text: str, max_digits: int) -> bool:
    """ASCII digits only (``str.isdigit`` also takes Arabic-Indic, full-width and superscript digits), bounded."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


MAX_PAGE = 1000  # access-log entries per page


def parse_page(query: Mapping[str, str]) -> tuple[int, int]:
    """``after`` (an audit index, default -1: from the start) and ``limit`` (1..MAX_PAGE, default -1: everything)."""
    values = []
    for name, default, low, high in (("after", -1, -1, 2**62), ("limit", -1, 1, MAX_PAGE)):
        raw = query.get(name)
        if raw is None:
            values.append(default)
            continue
        text = raw[1:] if raw.startswith("-") else raw
        if not (text.isascii() and text.isdigit()) or len(raw) > 20 or not low <= int(raw) <= high:
            raise ApiRequestError(f"{name} must be an integer from {low} to {high}, got {raw[:32]!r}")
        values.append(int(raw))
    return values[0], values[1]


def parse_window(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``from`` / ``to`` (ms or ISO 8601) query parameters: the half-open period reported."""
    return _instant(query.get("from")), _instant(query.get("to"))


def _instant(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isascii() and value.isdigit():
        if len(value) > MAX_MS_DIGITS:
            raise ApiRequestError(f"from/to in milliseconds has at most {MAX_MS_DIGITS} digits, got {len(value)}")
        return parse_as_at(int(value))
    return parse_as_at(value)


def state_json(state: PatientState) -> Json:
    """The state's canonical JSON without its ledger (the recent event ids and per-agent marks)."""
    body: Json = orjson.loads(state.to_bytes())
    body.pop("applied", None)
    body.pop("marks", None)
    body.pop("format", None)
    return body


def consent_fhir_json(state: PatientState, nhs_number: str, base: str) -> Json:
    """A FHIR R4 searchset Bundle of Consents: one per consent register and per active objection."""
    resources = [r for _, r in consents_of(state, nhs_number)]
    return searchset(base, "Consent", resources, total=len(resources), query=[("patient", nhs_number)], offset=0,
                     count=len(resources))  # fmt: skip


def accesses_json(views: Sequence[AccessView], proof: Callable[[int], InclusionProof | None]) -> Json:
    """The access list; each entry with its leaf bytes and inclusion proof against the one cosigned checkpoint.

    A patient-facing app checks ``record`` against ``inclusion_proof`` and the root of ``checkpoint`` (RFC 6962,
    leaf = SHA-256(0x00 || record)) and the checkpoint's signatures with the log and witness keys it pins:
    nothing of it needs trusting the API. Entries newer than the checkpoint carry ``inclusion_proof: null``.
    """
    proofs = {v.index: proof(v.index) for v in views}  # no await in between: all against one checkpoint
    checkpoint = next((p.checkpoint for p in proofs.values() if p is not None), None)
    return {
        "checkpoint": checkpoint,
        "accesses": [
            {
                "at_ms": v.at_ms,
                "kind": v.kind.value,
                "accessor_id": v.accessor_id,
                "organisation": v.organisation,
                "role": v.role,
                "purpose": v.purpose.value,
                "outcome": v.outcome,
                "disclosed_to": v.disclosed_to,
                "notice": v.notice,
                "index": v.index,
                "record": v.record.decode("utf-8"),
                "inclusion_proof": _proof_json(proofs[v.index]),
            }
            for v in views
        ],
    }


def _proof_json(p: InclusionProof | None) -> Json | None:
    if p is None:
        return None
    return {"tree_size": p.tree_size, "hashes": [base64.b64encode(h).decode() for h in p.hashes]}
