"""``POST /v1/checks``: the batch opt-out check, a stream of NHS numbers in, the permitted subset out.

NHS England's national data opt-out check is a batch exchange: a file of NHS numbers in, the numbers whose
data may be used for the purpose out. Here the body streams NHS numbers, one a line, as NDJSON (each line a
JSON string ``"9434765919"`` or an object ``{"nhs_number": "9434765919"}``; the default) or CSV
(``Content-Type: text/csv``: the first column; a first line that is not a number is a header). The query
names the purpose (``purpose``, HL7 ActReason), the legal basis relied on (``legal_basis``, optional), the
role and the person running the batch (``role``, ``accessor_id``) and the data classes (``data_classes``,
comma-separated, default ALL). Each number is decided by the same rules as ``POST /v1/decisions``
(:func:`consent_rules.decision.decide`), for the client's organisation with no care relationship: a batch
is for uses beyond direct care.

The answer streams back NDJSON: one line per permitted number (``{"nhs_number", "outcome",
"obligations"}``, in input order), then one summary line ``{"summary": {batch_id, received, permitted,
withheld, invalid, withheld_reasons: {code: count}, invalid_reasons: {code: count}, audit_index}}``.
Withheld numbers are never echoed (the caller learns only the counts per reason), nor are invalid ones
(reason codes :class:`Invalid`); nothing personal is logged. Request and answer are streamed in chunks
(:data:`CHUNK_BYTES`), so memory is bounded whatever the batch size. One audit record per batch, appended
before the first answer line (no disclosure without its audit entry): kind READ, outcome
``READ_BATCH_CHECK``, the batch id in its codes.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import mul
from typing import Protocol, TypeVar, runtime_checkable

import orjson
from aiohttp import web

import broker.api.handlers as core_api
from broker.audit import AuditRecord, RecordKind
from broker.audit.requests import AuditReceipt
from broker.auth import Principal, Scope, check_requester
from broker.errors import NotReadyError
from consent_rules.decision import Decision, DecisionRequest, Outcome, Requester, decide
from consent_rules.decision.document import MAX_TEXT, BadRequestError
from consent_rules.decision.policy import DecisionPolicy
from consent_rules.state import PatientState, empty_state
from consent_wire.codes import DataClass, LegalBasis, PurposeOfUse, Relationship
from consent_wire.errors import InvalidCodeError

__all__ = ["CHUNK_BYTES", "MAX_LINE_BYTES", "CheckTally", "Invalid", "nhs_number_of", "post_checks", "split_lines"]

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024  # read and write in 64 KiB pieces: ~5,000 numbers a piece, memory bounded
MAX_LINE_BYTES = 256  # an NHS number with JSON or CSV decoration is under 64 bytes; longer is not a number
_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)  # NHS Data Dictionary modulus 11 (as consent_wire.identity)
NDJSON = "application/x-ndjson"


@runtime_checkable
class BatchBackend(Protocol):
    """What a backend offers for batches of millions (the service does; others get the generic path).

    ``known_states``: the states of those keys with anything recorded (most of a national batch has nothing),
    in one lookup per chunk of the stream;
    ``key_of_digits``: the patient key of a number already validated here, without validating it again.
    """

    async def known_states(self, patient_keys: Sequence[str]) -> Mapping[str, PatientState]: ...

    def key_of_digits(self, digits: str) -> str: ...


class Invalid(StrEnum):
    """Why a line is not an NHS number (counted in the summary; the value is never echoed)."""

    NOT_JSON = "NOT_JSON"  # an NDJSON line that is not JSON
    BAD_SHAPE = "BAD_SHAPE"  # JSON, but neither a string nor {"nhs_number": string}
    LINE_TOO_LONG = "LINE_TOO_LONG"  # over MAX_LINE_BYTES
    INVALID_CHARACTERS = "INVALID_CHARACTERS"  # something other than digits, spaces and hyphens
    INVALID_LENGTH = "INVALID_LENGTH"  # not 10 digits
    INVALID_FORMAT = "INVALID_FORMAT"  # 10 digits, separators not grouping them 3-3-4
    INVALID_CHECK_DIGIT = "INVALID_CHECK_DIGIT"  # the modulus 11 check fails


class _InvalidLine(Exception):
    def __init__(self, reason: Invalid) -> None:
        self.reason = reason


@dataclass
class CheckTally:
    received: int = 0
    permitted: int = 0
    withheld_reasons: Counter[str] = field(default_factory=Counter)
    invalid_reasons: Counter[str] = field(default_factory=Counter)

    def summary(self, batch_id: str, receipt: AuditReceipt) -> dict[str, object]:
        request = receipt.request
        return {
            "batch_id": batch_id,
            "received": self.received,
            "permitted": self.permitted,
            "withheld": sum(self.withheld_reasons.values()),
            "invalid": sum(self.invalid_reasons.values()),
            "withheld_reasons": dict(sorted(self.withheld_reasons.items())),  # numbers per reason code
            "invalid_reasons": dict(sorted(self.invalid_reasons.items())),
            "audit_index": receipt.index,
            # the batch's audit request (as in a decision's answer): null when appended directly
            "audit_request": None if request is None else request.to_json(),
        }


def split_lines(pending: bytes, chunk: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines of ``pending + chunk`` and what is left over (pure)."""
    data = pending + chunk
    lines = data.split(b"\n")
    return lines[:-1], lines[-1]


def nhs_number_of(line: bytes, *, csv: bool) -> str:
    """The NHS number on one line (10 digits), or :class:`_InvalidLine` with its reason (pure)."""
    if len(line) > MAX_LINE_BYTES:
        raise _InvalidLine(Invalid.LINE_TOO_LONG)
    if csv:
        text = line.split(b",", 1)[0].strip().strip(b'"').strip()
    else:
        text = _json_number(line)
    if len(text) == 10 and text.isdigit():  # the fast path: ten ASCII digits (bytes.isdigit is ASCII only)
        return _checked(text)
    return _checked(_grouped(text))


def _json_number(line: bytes) -> bytes:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise _InvalidLine(Invalid.NOT_JSON) from None
    if isinstance(value, dict):
        value = value.get("nhs_number")
    if not isinstance(value, str):
        raise _InvalidLine(Invalid.BAD_SHAPE)
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise _InvalidLine(Invalid.INVALID_CHARACTERS) from None


def _grouped(text: bytes) -> bytes:
    if any(c not in b"0123456789 -" for c in text):
        raise _InvalidLine(Invalid.INVALID_CHARACTERS)
    digits = text.replace(b" ", b"").replace(b"-", b"")
    if len(digits) != 10:
        raise _InvalidLine(Invalid.INVALID_LENGTH)
    if text not in (digits, digits[:3] + b" " + digits[3:6] + b" " + digits[6:]) and text != b"-".join(
        (digits[:3], digits[3:6], digits[6:])
    ):
        raise _InvalidLine(Invalid.INVALID_FORMAT)
    return digits


def _checked(digits: bytes) -> str:
    # sum((d - 48) * w) over ASCII digit bytes d, as one C-level map: 48 * sum(_WEIGHTS) = 2592
    check = 11 - (sum(map(mul, digits[:9], _WEIGHTS)) - 2592) % 11
    if check == 11:
        check = 0
    if check == 10 or digits[9] - 48 != check:
        raise _InvalidLine(Invalid.INVALID_CHECK_DIGIT)
    return digits.decode("ascii")


@dataclass(frozen=True, slots=True)
class _Batch:
    requester: Requester
    purpose: PurposeOfUse
    legal_basis: LegalBasis | None
    data_classes: tuple[DataClass, ...]
    accessor_id: str
    csv: bool
    policy: DecisionPolicy  # the deployment's (decision_policy_file)


def _batch(request: web.Request, principal: Principal) -> _Batch:
    q = request.query
    accessor, role = q.get("accessor_id", ""), q.get("role", "")
    if not accessor or not role or len(accessor) > MAX_TEXT or len(role) > MAX_TEXT:
        raise BadRequestError(f"accessor_id and role are required, each at most {MAX_TEXT} characters")
    purpose = _code(PurposeOfUse, q.get("purpose", ""), "purpose")
    if purpose is PurposeOfUse.ANY:
        raise InvalidCodeError("purpose ANY is a consent-scope wildcard; name the purpose of use")
    basis = None if not q.get("legal_basis") else _code(LegalBasis, q["legal_basis"], "legal_basis")
    classes = tuple(_code(DataClass, c, "data class") for c in q.get("data_classes", "ALL").split(",")[:32])
    if request.app[core_api.AUTH] is not None:
        check_requester(principal, principal.organisation, role)
    requester = Requester(principal.organisation or "UNAUTHENTICATED", role, True, Relationship.NONE, False)
    csv = request.content_type == "text/csv"
    return _Batch(requester, purpose, basis, classes, accessor, csv, request.app[core_api.POLICY])


E = TypeVar("E", bound=StrEnum)


def _code(enum: type[E], value: str, name: str) -> E:
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(m.value for m in enum)
        raise InvalidCodeError(f"{name} {value[:32]!r} is not a known code; use one of {known}") from None


async def post_checks(request: web.Request) -> web.StreamResponse:
    principal = core_api._principal(request, Scope.DECISIONS)  # the core API's one door (tokens, scope)
    backend = request.app[core_api.BACKEND]
    if not backend.health().ready:
        raise NotReadyError("the service is still reading the state and event topics; retry shortly")
    batch = _batch(request, principal)
    batch_id = uuid.uuid4().hex
    now_ms = backend.now_ms()
    record = AuditRecord(
        RecordKind.READ, now_ms, "", batch.accessor_id, batch.requester.organisation, batch.requester.role,
        batch.purpose, batch.data_classes, "READ_BATCH_CHECK", batch.legal_basis, (f"BATCH:{batch_id}",),
        client_id=principal.client_id,
    )  # fmt: skip
    receipt = await backend.record(record)  # AuditUnavailableError (503) before anything is answered
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    await response.prepare(request)
    tally = CheckTally()
    unrecorded: list[tuple[Decision, bytes]] = []  # the one decision for every patient with nothing recorded
    pending = b""
    skipping = False  # inside an over-long line: drop bytes up to its end
    first = True
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        lines, pending = split_lines(pending, chunk)
        if skipping and lines:
            lines, skipping = lines[1:], False
        if len(pending) > MAX_LINE_BYTES:
            if not skipping:
                tally.received += 1
                tally.invalid_reasons[Invalid.LINE_TOO_LONG.value] += 1
            pending, skipping = b"", True
        if first and batch.csv and lines:
            lines, first = _without_header(lines), False
        out = await _decide_lines(lines, batch, backend, now_ms, tally, unrecorded)
        if out:
            await response.write(out)
    if pending.strip() and not skipping:
        await response.write(await _decide_lines([pending], batch, backend, now_ms, tally, unrecorded))
    summary = tally.summary(batch_id, receipt)
    await response.write(orjson.dumps({"summary": summary}) + b"\n")
    await response.write_eof()
    log.info("batch check batch=%s received=%d permitted=%d", batch_id, tally.received, tally.permitted)
    return response


def _without_header(lines: list[bytes]) -> list[bytes]:
    head = lines[0].split(b",", 1)[0].strip().strip(b'"')
    return lines[1:] if head and not head.replace(b" ", b"").replace(b"-", b"").isdigit() else lines


async def _decide_lines(
    lines: list[bytes],
    batch: _Batch,
    backend: core_api.ApiBackend,
    now_ms: int,
    tally: CheckTally,
    cache: list[tuple[Decision, bytes]],
) -> bytes:
    """The answer lines for one chunk: numbers validated, their recorded states looked up at once, then decided."""
    key_of: Callable[[str], str] = backend.key_of_digits if isinstance(backend, BatchBackend) else backend.patient_key
    numbers: list[tuple[str, str]] = []
    for line in lines:
        if not line.strip():
            continue
        tally.received += 1
        try:
            nhs = nhs_number_of(line.rstrip(b"\r"), csv=batch.csv)
        except _InvalidLine as bad:
            tally.invalid_reasons[bad.reason.value] += 1
            continue
        numbers.append((nhs, key_of(nhs)))
    keys = [key for _, key in numbers]
    if isinstance(backend, BatchBackend):
        known = await backend.known_states(keys)
    else:
        known = await _known_by_version(backend, keys)
    out: list[bytes] = []
    for nhs, key in numbers:
        state = known.get(key)
        if state is None:
            decision, answer = _unrecorded(batch, key, now_ms, cache)
        else:
            decision = decide(_request(batch, key, now_ms), state, batch.policy)
            answer = _answer_json(decision)
        if decision.outcome is Outcome.DENY:
            tally.withheld_reasons.update(set(decision.codes) or {"DENY"})  # each reason once per number
            continue
        tally.permitted += 1
        out.append(b'{"nhs_number":"' + nhs.encode() + b'",' + answer + b"}\n")
    return b"".join(out)


def _request(batch: _Batch, key: str, now_ms: int) -> DecisionRequest:
    return DecisionRequest(batch.requester, batch.purpose, key, batch.data_classes, batch.legal_basis, now_ms)


def _unrecorded(batch: _Batch, key: str, now_ms: int, cache: list[tuple[Decision, bytes]]) -> tuple[Decision, bytes]:
    """The decision for a patient with nothing recorded, and its answer bytes: the same for all of a batch (cached)."""
    if not cache:
        decision = decide(_request(batch, key, now_ms), empty_state(key), batch.policy)
        cache.append((decision, _answer_json(decision)))
    return cache[0]


def _answer_json(decision: Decision) -> bytes:
    body = orjson.dumps({"outcome": decision.outcome.value, "obligations": [o.value for o in decision.obligations]})
    return body[1:-1]


async def _known_by_version(backend: core_api.ApiBackend, keys: Sequence[str]) -> dict[str, PatientState]:
    found: dict[str, PatientState] = {}
    for key in keys:
        state = await backend.state(key)
        if state.version:
            found[key] = state
    return found
