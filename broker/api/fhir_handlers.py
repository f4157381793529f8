"""The core's FHIR R4 REST endpoint (aiohttp handlers): ``/fhir/metadata``, Consent read and search,
AuditEvent search; every error an OperationOutcome.

Routes (documented in ``docs/openapi.yaml`` and docs/fhir.md)::

    GET /fhir/metadata                 CapabilityStatement (open, as SMART and FHIR clients expect)
    GET /fhir/Consent?patient=...      searchset of the patient's Consents (scope patient.read)
    GET /fhir/Consent/{id}             one Consent (scope patient.read)
    GET /fhir/AuditEvent?patient=...   searchset of the patient's audit trail (scope audit.read)

Reads of a patient's data name the reader (``accessor_id``, ``role``, ``purpose``) and are recorded on
the audit trail, exactly as the ``/v1`` reads. Search parameters are strict: an unknown one is a 400
(a misspelt filter silently ignored would return more than asked). Paging: ``_count`` (0..100, default
50) and ``_offset`` (from the ``next`` link) over the results ordered oldest first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from broker.api.codec import ApiRequestError
from broker.api.fhir_resources import (
    FHIR_JSON,
    audit_event,
    capability_statement,
    consents_of,
    operation_outcome,
    searchset,
)
from broker.api.handlers import (
    _backend,
    _principal,
    _reader,
    _record_read,
    _Route,
)
from broker.audit import AuditRecord
from broker.auth import Scope
from consent_io.http import HTTP_REASONS, StatusTable, status_for
from consent_wire.errors import ValidationError
from consent_wire.fhir import NHS_NUMBER_SYSTEM
from consent_wire.fhir_dates import period_bound_ms

__all__ = ["DEFAULT_COUNT", "FHIR_ROUTES", "MAX_COUNT", "NotFoundError", "fhir_error_middleware"]

log = logging.getLogger(__name__)

DEFAULT_COUNT = 50
MAX_COUNT = 100
MAX_OFFSET_DIGITS = 9
_READER = ("accessor_id", "role", "purpose")
_PAGING = ("_count", "_offset", "_format")
_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge")
PUBLISHED = "2026-11-30"  # the date of this CapabilityStatement's content


class NotFoundError(ValidationError):
    """No resource with that id (a FHIR read)."""

    reason = "NOT_FOUND"


def _fhir(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=FHIR_JSON)


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/fhir"


def _query(request: web.Request, allowed: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.query.items():
        if name not in allowed:
            raise ApiRequestError(f"unknown search parameter {name[:40]!r}; this server supports {', '.join(allowed)}")
        if name in out and name != "date":
            raise ApiRequestError(f"search parameter {name} is repeated")
        out[name] = value
    fmt = out.get("_format")
    if fmt is not None and fmt not in ("json", FHIR_JSON, "application/json"):
        raise ApiRequestError(f"_format must be json or {FHIR_JSON}: this server speaks JSON only")
    return out


def _patient(query: Mapping[str, str]) -> str:
    """The NHS number of ``patient`` (``9434765919``, ``system|value`` or ``Patient?identifier=system|value``)."""
    value = query.get("patient") or query.get("patient:identifier")
    if not value:
        raise ApiRequestError("patient is required: searches are per patient (an NHS number, or system|value)")
    system, sep, number = value.partition("|")
    if not sep:
        return value
    if system != NHS_NUMBER_SYSTEM:
        raise ApiRequestError(f"patient identifier system must be {NHS_NUMBER_SYSTEM}")
    return number


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    count, offset = query.get("_count", str(DEFAULT_COUNT)), query.get("_offset", "0")
    if not (count.isascii() and count.isdigit() and len(count) <= 3) or int(count) > MAX_COUNT:
        raise ApiRequestError(f"_count must be a whole number 0..{MAX_COUNT}")
    if not (offset.isascii() and offset.isdigit() and len(offset) <= MAX_OFFSET_DIGITS):
        raise ApiRequestError(f"_offset must be a whole number of at most {MAX_OFFSET_DIGITS} digits")
    return int(count), int(offset)


def _date_filter(values: list[str]) -> Callable[[int], bool]:
    """FHIR date search (prefix + partial or full dateTime, UK time for partial dates) as a predicate on ms."""
    tests: list[Callable[[int], bool]] = []
    for raw in values:
        prefix, value = (raw[:2], raw[2:]) if raw[:2] in _PREFIXES else ("eq", raw)
        try:
            lo = period_bound_ms(_parsed(value), end=False, where="date")
            hi = period_bound_ms(_parsed(value), end=True, where="date")
        except ValidationError as exc:
            raise ApiRequestError(f"date {raw[:40]!r} is not [prefix]dateTime: {exc.message}") from exc
        assert lo is not None and hi is not None
        if hi == lo:  # a full instant: the second it names
            hi = lo + 1000
        tests.append(_compare(prefix, lo, hi))
    return lambda ms: all(t(ms) for t in tests)


def _compare(prefix: str, lo: int, hi: int) -> Callable[[int], bool]:
    return {
        "eq": lambda t: lo <= t < hi,
        "ne": lambda t: not lo <= t < hi,
        "lt": lambda t: t < lo,
        "le": lambda t: t < hi,
        "gt": lambda t: t >= hi,
        "ge": lambda t: t >= lo,
    }[prefix]


def _parsed(value: str) -> object:
    """A full dateTime as an aware datetime; partial dates stay strings (fhir_dates reads both)."""
    from datetime import datetime

    if "T" not in value:
        return value
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiRequestError(f"date {value[:40]!r} is not a FHIR dateTime") from exc


def _token_matches(values: str | None, wanted: str, system: str) -> bool:
    """A token search (``code`` or ``system|code``, comma = OR) against one code."""
    if values is None:
        return True
    for value in values.split(","):
        sys, sep, code = value.rpartition("|")
        if code == wanted and (not sep or sys in ("", system)):
            return True
    return False


async def get_metadata(request: web.Request) -> web.Response:
    from broker import __version__

    return _fhir(capability_statement(_base(request), __version__, PUBLISHED))


async def search_consent(request: web.Request) -> web.Response:
    principal = _principal(request, Scope.PATIENT_READ)
    query = _query(request, ("patient", "patient:identifier", "status", "scope", "date", *_PAGING, *_READER))
    backend = _backend(request)
    nhs = _patient(query)
    key = backend.patient_key(nhs)
    count, offset = _paging(query)
    in_dates = _date_filter(request.query.getall("date", []))
    status_ok = _token_matches(query.get("status"), "active", "http://hl7.org/fhir/consent-state-codes")
    scope_ok = _token_matches(
        query.get("scope"), "patient-privacy", "http://terminology.hl7.org/CodeSystem/consentscope"
    )
    await _record_read(request, principal, key, _reader(request, principal), "CONSENT")
    found = (
        [r for ms, r in consents_of(await backend.state(key), nhs) if in_dates(ms)] if status_ok and scope_ok else []
    )
    page = found[offset : offset + count]
    return _fhir(
        searchset(
            _base(request),
            "Consent",
            page,
            total=len(found),
            query=list(request.query.items()),
            offset=offset,
            count=count,
        )
    )


async def read_consent(request: web.Request) -> web.Response:
    principal = _principal(request, Scope.PATIENT_READ)
    _query(request, ("_format", *_READER))
    backend = _backend(request)
    resource_id = request.match_info["id"]
    state = await backend.state_with_event(resource_id)
    found = [r for _, r in consents_of(state, None) if r["id"] == resource_id] if state is not None else []
    if state is None or not found:
        raise NotFoundError(f"no Consent with id {resource_id[:64]!r}")
    await _record_read(request, principal, state.patient_key, _reader(request, principal), "CONSENT")
    return _fhir(found[0])


async def search_audit_events(request: web.Request) -> web.Response:
    principal = _principal(request, Scope.AUDIT_READ)
    query = _query(request, ("patient", "patient:identifier", "date", *_PAGING, *_READER))
    backend = _backend(request)
    nhs = _patient(query)
    key = backend.patient_key(nhs)
    count, offset = _paging(query)
    in_dates = _date_filter(request.query.getall("date", []))
    reader = _reader(request, principal)
    entries = list(await backend.audit_entries(key))  # before this read's own entry
    await _record_read(request, principal, key, reader, "AUDIT")
    records = [(e.index, AuditRecord.from_bytes(e.record)) for e in entries]
    found = sorted(
        ((r.at_ms, i, r) for i, r in records if r.patient_key == key and in_dates(r.at_ms)), key=lambda t: t[:2]
    )
    page = [audit_event(i, r, nhs) for _, i, r in found[offset : offset + count]]
    return _fhir(
        searchset(
            _base(request),
            "AuditEvent",
            page,
            total=len(found),
            query=list(request.query.items()),
            offset=offset,
            count=count,
        )
    )


def fhir_error_middleware(table: StatusTable) -> Middleware:
    """Under ``/fhir`` every error is an OperationOutcome (``application/fhir+json``) with the product's reason."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not (request.path == "/fhir" or request.path.startswith("/fhir/")):
            return await handler(request)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {}
            if isinstance(exc, web.HTTPMethodNotAllowed):
                headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            message = "no such FHIR interaction on this server; see /fhir/metadata" if exc.status == 404 else exc.reason
            response = _fhir(
                operation_outcome(exc.status, HTTP_REASONS.get(exc.status, f"HTTP_{exc.status}"), message), exc.status
            )
            response.headers.update(headers)
            return response
        except Exception as exc:
            status = 404 if isinstance(exc, NotFoundError) else status_for(exc, table)
            if status is None:
                log.exception("fhir handler failed path=%s", request.path)
                return _fhir(operation_outcome(500, "INTERNAL_ERROR", "the server failed; the error is logged"), 500)
            coded: Any = exc
            return _fhir(operation_outcome(status, coded.reason, coded.message), status)

    return errors


FHIR_ROUTES: tuple[_Route, ...] = (
    _Route("GET", "/fhir/metadata", get_metadata, None),
    _Route("GET", "/fhir/Consent", search_consent, Scope.PATIENT_READ),
    _Route("GET", "/fhir/Consent/{id}", read_consent, Scope.PATIENT_READ),
    _Route("GET", "/fhir/AuditEvent", search_audit_events, Scope.AUDIT_READ),
)
