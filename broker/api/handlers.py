"""The core's HTTP handlers (aiohttp): sharing decisions, a patient's consent and access list, reports.

Handlers hold no state and do no Kafka I/O: they talk to an :class:`ApiBackend` (the service in
:mod:`broker.api.service`, or an in-memory one in tests). Every error is ``{"reason": CODE, "message":
text}`` with the status :data:`STATUS_BY_ERROR` gives its class: ``400`` for invalid input, ``503``
when the audit log is unavailable or while the views are still catching up (a decision on a half-read
state could miss an objection); ``404``, ``405`` and ``413`` from :mod:`consent_io.http`. Messages
never repeat the NHS number. Routes (documented in ``docs/openapi.yaml``)::

    POST /v1/decisions                         decide; a live decision is appended to the audit log
    GET  /v1/patients/{nhs_number}/consent     current state (JSON), ?format=fhir: FHIR R4 Consents
    GET  /v1/patients/{nhs_number}/accesses    who accessed the record and why (recommendation 1)
    GET  /v1/reports/objections                objection rate per practice (?list_sizes=A81001:6000,...)
    GET  /v1/reports/breaches                  breaches by organisation and severity, and the list
    GET  /v1/reports/disclosures               disclosures by recipient and purpose
    GET  /v1/health                            readiness of the views and the audit appender

Errors: see the tree in :mod:`broker.errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from broker.api.codec import (
    ApiRequestError,
    HealthInfo,
    accesses_json,
    consent_fhir_json,
    parse_list_sizes,
    parse_window,
    state_json,
)
from broker.audit import AuditEntry, AuditRecord, AuditUnavailableError, accesses_for, decision_record
from broker.errors import NotReadyError
from broker.reports import breach_incidents, breach_summary, disclosures, objection_rates, render_json
from consent_io.http import StatusTable, error_middleware, json_response
from consent_rules.decision import DecisionAnswer, decide, decide_as_at, parse_request
from consent_rules.state import PatientState
from consent_wire.errors import WireError
from consent_wire.hlc import LOGICAL_BITS
from consent_wire.model import Event

__all__ = ["MAX_BODY_BYTES", "STATUS_BY_ERROR", "ApiBackend", "create_app"]

MAX_BODY_BYTES = 64 * 1024  # a decision request is < 1 KiB; bound parsing of hostile input
_LOGICAL_MAX = (1 << LOGICAL_BITS) - 1  # "as at" T includes every event stamped in millisecond T

# The HTTP status of each error class, first match wins (the one place statuses are chosen).
STATUS_BY_ERROR: StatusTable = (
    (AuditUnavailableError, 503),  # before WireError: the audit tree derives from ValidationError
    (NotReadyError, 503),
    (WireError, 400),  # ValidationError, DecodeError, ...: the request's content is wrong
)


class ApiBackend(Protocol):
    list_sizes: Mapping[str, int]  # registered patients per practice, for the objection report

    def patient_key(self, nhs_number: str) -> str: ...

    def state(self, patient_key: str) -> PatientState: ...

    def history(self, patient_key: str) -> Sequence[Event]: ...

    def events(self) -> Sequence[Event]: ...

    def audit_entries(self, patient_key: str) -> Sequence[AuditEntry]: ...

    async def record(self, record: AuditRecord) -> AuditEntry: ...

    def now_ms(self) -> int: ...

    def health(self) -> HealthInfo: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BACKEND: web.AppKey[ApiBackend] = web.AppKey("backend")


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    path: str
    handler: Handler


def _backend(request: web.Request) -> ApiBackend:
    """The backend, once its views are ready (NotReadyError before)."""
    backend = request.app[BACKEND]
    if not backend.health().ready:
        raise NotReadyError("the service is still reading the state and event topics; retry shortly")
    return backend


async def _body(request: web.Request) -> object:
    data = await request.read()  # over MAX_BODY_BYTES: aiohttp raises 413, answered BODY_TOO_LARGE
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiRequestError(f"request body is not JSON: {exc}") from exc


async def post_decision(request: web.Request) -> web.Response:
    backend = _backend(request)
    parsed = parse_request(await _body(request), backend.patient_key, backend.now_ms())
    req = parsed.request
    if parsed.as_at_ms is not None:  # a re-evaluation of the past, not a sharing decision: not recorded
        as_at_hlc = (parsed.as_at_ms << LOGICAL_BITS) | _LOGICAL_MAX
        decision = decide_as_at(req, backend.history(req.patient_key), as_at_hlc)
        return json_response(DecisionAnswer(decision, req.at_ms, parsed.as_at_ms).to_json())
    decision = decide(req, backend.state(req.patient_key))
    entry = await backend.record(decision_record(req, decision, parsed.accessor_id))
    return json_response(DecisionAnswer(decision, req.at_ms, None, entry.index).to_json())


async def get_consent(request: web.Request) -> web.Response:
    backend = _backend(request)
    nhs = request.match_info["nhs_number"]
    state = backend.state(backend.patient_key(nhs))
    fmt = request.query.get("format", "json")
    if fmt == "fhir":
        return json_response(consent_fhir_json(state, nhs))
    if fmt != "json":
        raise ApiRequestError(f"format must be json or fhir, got {fmt!r}")
    return json_response(state_json(state))


async def get_accesses(request: web.Request) -> web.Response:
    backend = _backend(request)
    key = backend.patient_key(request.match_info["nhs_number"])
    return json_response(accesses_json(accesses_for(backend.audit_entries(key), key)))


async def get_objections(request: web.Request) -> web.Response:
    backend = _backend(request)
    sizes = parse_list_sizes(request.query.get("list_sizes"), backend.list_sizes)
    report = objection_rates(backend.events(), sizes)
    body = orjson.loads(render_json(report))
    body["alerts"] = list(report.alerts)
    return json_response(body)


async def get_breaches(request: web.Request) -> web.Response:
    events = _backend(request).events()
    from_ms, to_ms = parse_window(request.query)
    summary = breach_summary(events, from_ms=from_ms, to_ms=to_ms)
    incidents = breach_incidents(events, from_ms=from_ms, to_ms=to_ms)
    body = {"summary": orjson.loads(render_json(summary)), "incidents": orjson.loads(render_json(incidents))}
    return json_response(body)


async def get_disclosures(request: web.Request) -> web.Response:
    from_ms, to_ms = parse_window(request.query)
    report = disclosures(_backend(request).events(), from_ms=from_ms, to_ms=to_ms)
    return json_response(orjson.loads(render_json(report)))


async def get_health(request: web.Request) -> web.Response:
    info = request.app[BACKEND].health()
    body: dict[str, Any] = {
        "status": "ok" if info.ready else "starting",
        "patients": info.patients,
        "events": info.events,
        "audit_next_index": info.audit_next_index,
    }
    return json_response(body, 200 if info.ready else 503)


ROUTES: tuple[_Route, ...] = (
    _Route("POST", "/v1/decisions", post_decision),
    _Route("GET", "/v1/patients/{nhs_number}/consent", get_consent),
    _Route("GET", "/v1/patients/{nhs_number}/accesses", get_accesses),
    _Route("GET", "/v1/reports/objections", get_objections),
    _Route("GET", "/v1/reports/breaches", get_breaches),
    _Route("GET", "/v1/reports/disclosures", get_disclosures),
    _Route("GET", "/v1/health", get_health),
)


def create_app(backend: ApiBackend) -> web.Application:
    """The aiohttp application over ``backend``."""
    app = web.Application(middlewares=[error_middleware(STATUS_BY_ERROR)], client_max_size=MAX_BODY_BYTES)
    app[BACKEND] = backend
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app
