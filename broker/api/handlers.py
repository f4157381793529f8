"""The core's HTTP handlers (aiohttp): sharing decisions, a patient's consent and access list, reports.

Handlers hold no state and do no Kafka I/O: they talk to an :class:`ApiBackend` (the service in
:mod:`broker.api.service`, or an in-memory one in tests). Every error is ``{"reason": CODE, "message":
text}`` with the status :data:`STATUS_BY_ERROR` gives its class: ``400`` for invalid input, ``503``
when the audit log is unavailable or while the views are still catching up (a decision on a half-read
state could miss an objection); ``404``, ``405`` and ``413`` from :mod:`consent_io.http`. Messages
never repeat the NHS number. Routes (documented in ``docs/openapi.yaml``)::

    POST /oauth2/token                         OAuth 2.0 client credentials (private_key_jwt) -> access token
    POST /v1/decisions                         decide; a live decision is appended to the audit log
    GET  /v1/patients/{nhs_number}/consent     current state (JSON), ?format=fhir: FHIR R4 Consents
    GET  /v1/patients/{nhs_number}/accesses    who accessed the record and why (recommendation 1); ?limit=&after=
                                               pages through it in log order (next_after: the next page's after)
    GET  /v1/reports/objections                objection rate per practice (?list_sizes=A81001:6000,...)
    GET  /v1/reports/breaches                  breaches by organisation and severity, and the list
    GET  /v1/reports/disclosures               disclosures by recipient and purpose (windows of whole UTC days)

The reports read the ``reports`` stage's running aggregates (:mod:`broker.reports.aggregates`, the compacted
reports topic as the API's view holds it), never the raw events.
    GET  /v1/health                            readiness of the views and the audit appender
    GET  /fhir/metadata, /fhir/Consent, /fhir/Consent/{id}, /fhir/AuditEvent: FHIR R4 (broker.api.fhir_handlers)
    GET  /cds-services                         CDS Hooks discovery (broker.api.cds)
    POST /cds-services/patient-consent-consult CDS Hooks consent consult: cards from a live decision
    POST /v1/checks                            batch opt-out check: NHS numbers in, the permitted subset out

Every route but the token endpoint and health needs ``Authorization: Bearer <access token>`` with the
route's scope (:data:`ROUTES`); the requester's organisation and role must be the client's registered
ones; every read of a patient's data ("as at" decisions included) is recorded on the audit trail with the
client and the accessor. ``create_app(backend, None)`` (the ``insecure_http`` debug setting) skips all of
this and is refused unless asked for by name.

Errors: see the tree in :mod:`broker.errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from broker.api import cds, checks
from broker.api.codec import (
    ApiRequestError,
    HealthInfo,
    accesses_json,
    consent_fhir_json,
    parse_list_sizes,
    parse_page,
    parse_window,
    state_json,
)
from broker.api.report_cache import ReportCache
from broker.audit import (
    AuditEntry,
    AuditRecord,
    AuditUnavailableError,
    accesses_for,
    decision_record,
    read_record,
)
from broker.audit.requests import AuditReceipt
from broker.audit.tlog import InclusionProof
from broker.auth import AuthError, AuthorisationError, Principal, Scope, TokenService, check_requester, require_scope
from broker.auth.errors import TokenRequestError
from broker.errors import NotReadyError
from broker.reports import report_object
from broker.reports.aggregates import (
    AggKind,
    Aggregate,
    breach_reports,
    day_window,
    disclosure_report,
    objection_report,
)
from consent_io.http import StatusTable, error_middleware, json_response
from consent_rules.decision import DecisionAnswer, decide, decide_as_at, parse_request
from consent_rules.decision.document import MAX_TEXT
from consent_rules.decision.policy import DEFAULT_POLICY, DecisionPolicy
from consent_rules.state import PatientState
from consent_wire.codes import PurposeOfUse
from consent_wire.errors import WireError
from consent_wire.hlc import LOGICAL_BITS
from consent_wire.model import Event

__all__ = ["MAX_BODY_BYTES", "ROUTES", "STATUS_BY_ERROR", "ApiBackend", "AsAtInFutureError", "create_app"]

MAX_BODY_BYTES = 64 * 1024  # a decision request is < 1 KiB; bound parsing of hostile input
_LOGICAL_MAX = (1 << LOGICAL_BITS) - 1  # "as at" T includes every event stamped in millisecond T

# The HTTP status of each error class, first match wins (the one place statuses are chosen).
STATUS_BY_ERROR: StatusTable = (
    (TokenRequestError, 400),
    (AuthorisationError, 403),
    (AuthError, 401),
    (AuditUnavailableError, 503),  # before WireError: the audit tree derives from ValidationError
    (NotReadyError, 503),
    (WireError, 400),  # ValidationError, DecodeError, ...: the request's content is wrong
)


class AsAtInFutureError(ApiRequestError):
    reason = "AS_AT_IN_FUTURE"


class ApiBackend(Protocol):
    list_sizes: Mapping[str, int]  # registered patients per practice, for the objection report

    def patient_key(self, nhs_number: str) -> str: ...

    async def state(self, patient_key: str) -> PatientState: ...

    async def history(self, patient_key: str) -> Sequence[Event]: ...

    def reports_version(self) -> int | None:
        """Changes whenever the report aggregates do (None: not tracked; report answers are then never cached)."""
        ...

    async def report_aggregates(self, kind: AggKind) -> Sequence[Aggregate]:
        """Every report aggregate of ``kind`` (the reports topic's latest values): the breach incidents."""
        ...

    async def report_totals(
        self, kind: AggKind, first_day: int = -1, end_day: int | None = None
    ) -> Mapping[tuple[str, ...], Mapping[str, int]]:
        """The aggregates of ``kind`` summed per group over the days ``[first_day, end_day)`` (``totals_of``)."""
        ...

    async def audit_entries(self, patient_key: str, after: int = -1, limit: int = -1) -> Sequence[AuditEntry]:
        """``patient_key``'s audit entries with an index above ``after``, in log order, at most ``limit`` (-1: all)."""
        ...

    async def state_with_event(self, event_id: str) -> PatientState | None:
        """The state holding a register set by ``event_id`` (a FHIR Consent read by id), if any."""
        ...

    async def record(self, record: AuditRecord) -> AuditReceipt:
        """Durable before it returns: the entry (holder) or the audit request (any other instance)."""
        ...

    def audit_proof(self, index: int) -> InclusionProof | None: ...

    def now_ms(self) -> int: ...

    def health(self) -> HealthInfo: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BACKEND: web.AppKey[ApiBackend] = web.AppKey("backend")
AUTH: web.AppKey[TokenService | None] = web.AppKey("auth")
POLICY: web.AppKey[DecisionPolicy] = web.AppKey("policy")
REPORT_CACHE: web.AppKey[ReportCache] = web.AppKey("report_cache")
_OPEN = Principal("insecure-debug", "", frozenset(), frozenset(Scope))  # only with insecure_http


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    path: str
    handler: Handler
    scope: Scope | None  # None: open (token endpoint, health)


def _principal(request: web.Request, scope: Scope) -> Principal:
    """The authenticated caller, holding ``scope`` (401/403 otherwise)."""
    auth = request.app[AUTH]
    if auth is None:
        return _OPEN
    principal = auth.authenticate(request.headers.get("Authorization"), request.app[BACKEND].now_ms() // 1000)
    require_scope(principal, scope)
    return principal


def _asking_as(request: web.Request, principal: Principal, organisation: str, role: str) -> None:
    if request.app[AUTH] is not None:
        check_requester(principal, organisation, role)


def _reader(request: web.Request, principal: Principal) -> tuple[str, str, PurposeOfUse]:
    """The person reading (accessor_id, role, purpose query parameters, all required) for the audit trail."""
    q = request.query
    accessor, role, purpose = q.get("accessor_id", ""), q.get("role", ""), q.get("purpose", "")
    if not accessor or not role or not purpose:
        raise ApiRequestError("reads of patient data name the reader: accessor_id, role and purpose are required")
    if len(accessor) > MAX_TEXT or len(role) > MAX_TEXT:
        raise ApiRequestError(f"accessor_id and role are at most {MAX_TEXT} characters")
    try:
        use = PurposeOfUse(purpose)
    except ValueError as exc:
        raise ApiRequestError(f"purpose must be an HL7 ActReason code such as TREAT, got {purpose[:32]!r}") from exc
    _asking_as(request, principal, principal.organisation, role)
    return accessor, role, use


async def _record_read(
    request: web.Request, principal: Principal, patient: str, reader: tuple[str, str, PurposeOfUse], what: str
) -> None:
    backend = request.app[BACKEND]
    accessor, role, purpose = reader
    organisation = principal.organisation or "UNAUTHENTICATED"
    record = read_record(
        at_ms=backend.now_ms(),
        patient_key=patient,
        accessor_id=accessor,
        organisation=organisation,
        role=role,
        purpose=purpose,
        what=what,
        client_id=principal.client_id,
    )
    await backend.record(record)  # AuditUnavailableError (503): no read without its audit entry


def request_position(receipt: AuditReceipt) -> tuple[int, int] | None:
    """The answer's ``audit_request``: the audit request's (partition, offset), None when appended directly."""
    r = receipt.request
    return None if r is None else (r.partition, r.offset)


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


async def post_token(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    if auth is None:
        raise TokenRequestError("this API runs with insecure_http (debug): there are no tokens to issue")
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    token = auth.exchange(fields, request.app[BACKEND].now_ms() // 1000)
    return json_response(token.to_json())


async def post_decision(request: web.Request) -> web.Response:
    principal = _principal(request, Scope.DECISIONS)
    backend = _backend(request)
    now_ms = backend.now_ms()
    parsed = parse_request(await _body(request), backend.patient_key, now_ms)
    req = parsed.request
    _asking_as(request, principal, req.requester.organisation, req.requester.role)
    if not parsed.accessor_id:
        raise ApiRequestError("requester.accessor_id is required: every decision names the person asking")
    if parsed.as_at_ms is not None:  # a re-evaluation of the past: a read of the patient's history
        if parsed.as_at_ms > now_ms:
            raise AsAtInFutureError("as_at is later than now: decisions can be re-evaluated only for the past")
        require_scope(principal, Scope.PATIENT_READ)
        reader = (parsed.accessor_id, req.requester.role, req.purpose)
        await _record_read(request, principal, req.patient_key, reader, "AS_AT")
        as_at_hlc = (parsed.as_at_ms << LOGICAL_BITS) | _LOGICAL_MAX
        decision = decide_as_at(req, await backend.history(req.patient_key), as_at_hlc, request.app[POLICY])
        return json_response(DecisionAnswer(decision, req.at_ms, parsed.as_at_ms).to_json())
    decision = decide(req, await backend.state(req.patient_key), request.app[POLICY])
    receipt = await backend.record(decision_record(req, decision, parsed.accessor_id, principal.client_id))
    answer = DecisionAnswer(decision, req.at_ms, None, receipt.index, audit_request=request_position(receipt))
    return json_response(answer.to_json())


async def get_consent(request: web.Request) -> web.Response:
    principal = _principal(request, Scope.PATIENT_READ)
    backend = _backend(request)
    nhs = request.match_info["nhs_number"]
    key = backend.patient_key(nhs)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "fhir"):
        raise ApiRequestError(f"format must be json or fhir, got {fmt[:32]!r}")
    await _record_read(request, principal, key, _reader(request, principal), "CONSENT")
    state = await backend.state(key)
    if fmt == "fhir":
        return json_response(consent_fhir_json(state, nhs, f"{request.scheme}://{request.host}/fhir"))
    return json_response(state_json(state))


async def get_accesses(request: web.Request) -> web.Response:
    principal = _principal(request, Scope.PATIENT_READ)
    backend = _backend(request)
    key = backend.patient_key(request.match_info["nhs_number"])
    after, limit = parse_page(request.query)
    await _record_read(request, principal, key, _reader(request, principal), "ACCESSES")
    entries = await backend.audit_entries(key, after, limit)
    body = accesses_json(accesses_for(entries, key), backend.audit_proof)
    if limit >= 0:  # a page: where the next one starts (null after the last)
        body["next_after"] = entries[-1].index if entries and len(entries) == limit else None
    return json_response(body)


async def _report(request: web.Request, key: Hashable, render: Callable[[], Awaitable[object]]) -> web.Response:
    """A report's answer, rendered once per version of the report aggregates (:mod:`broker.api.report_cache`)."""
    backend = _backend(request)
    fresh = "no-cache" in request.headers.get("Cache-Control", "")
    body = await request.app[REPORT_CACHE].body(key, backend.reports_version, render, fresh=fresh)
    return web.Response(body=body, content_type="application/json")


async def get_objections(request: web.Request) -> web.Response:
    _principal(request, Scope.REPORTS)
    backend = _backend(request)
    sizes = parse_list_sizes(request.query.get("list_sizes"), backend.list_sizes)

    async def render() -> object:
        report = objection_report(await backend.report_totals(AggKind.OBJECTORS), sizes)
        body = report_object(report)
        body["alerts"] = list(report.alerts)
        return body

    return await _report(request, ("objections", tuple(sorted(sizes.items()))), render)


async def get_breaches(request: web.Request) -> web.Response:
    _principal(request, Scope.REPORTS)
    backend = _backend(request)
    from_ms, to_ms = parse_window(request.query)

    async def render() -> object:
        summary, incidents = breach_reports(await backend.report_aggregates(AggKind.BREACH), from_ms, to_ms)
        return {"summary": report_object(summary), "incidents": report_object(incidents)}

    return await _report(request, ("breaches", from_ms, to_ms), render)


async def get_disclosures(request: web.Request) -> web.Response:
    _principal(request, Scope.REPORTS)
    backend = _backend(request)
    from_ms, to_ms = parse_window(request.query)
    first, end = day_window(from_ms, to_ms)  # whole UTC days (BAD_REPORT_INPUT otherwise)

    async def render() -> object:
        return report_object(disclosure_report(await backend.report_totals(AggKind.DISCLOSURES, first, end)))

    return await _report(request, ("disclosures", first, end), render)


async def get_health(request: web.Request) -> web.Response:
    info = request.app[BACKEND].health()
    body: dict[str, Any] = {
        "status": "ok" if info.ready else "starting",
        "patients": info.patients,
        "events": info.events,
        "audit_next_index": info.audit_next_index,
        "audit_holder": info.audit_holder,
        "audit_indexed": info.audit_indexed,
    }
    return json_response(body, 200 if info.ready else 503)


# The FHIR handlers use the helpers above: imported once they exist (broker.api imports this module first).
from broker.api.fhir_handlers import FHIR_ROUTES, fhir_error_middleware  # noqa: E402

# The scope each route needs (declared beside it in docs/openapi.yaml; a test keeps the two in step).
ROUTES: tuple[_Route, ...] = (
    _Route("POST", "/oauth2/token", post_token, None),
    _Route("POST", "/v1/decisions", post_decision, Scope.DECISIONS),
    _Route("GET", "/v1/patients/{nhs_number}/consent", get_consent, Scope.PATIENT_READ),
    _Route("GET", "/v1/patients/{nhs_number}/accesses", get_accesses, Scope.PATIENT_READ),
    _Route("GET", "/v1/reports/objections", get_objections, Scope.REPORTS),
    _Route("GET", "/v1/reports/breaches", get_breaches, Scope.REPORTS),
    _Route("GET", "/v1/reports/disclosures", get_disclosures, Scope.REPORTS),
    _Route("GET", "/v1/health", get_health, None),
    *FHIR_ROUTES,
    _Route("GET", "/cds-services", cds.get_cds_services, None),
    _Route("POST", cds.SERVICE_PATH, cds.post_consent_consult, Scope.DECISIONS),
    _Route("POST", "/v1/checks", checks.post_checks, Scope.DECISIONS),
)


def create_app(
    backend: ApiBackend, auth: TokenService | None, policy: DecisionPolicy = DEFAULT_POLICY
) -> web.Application:
    """The aiohttp application over ``backend``; ``auth`` None is the insecure debug mode (no authentication).

    ``policy``: the deployment's decision policy (``decision_policy_file``) every decision route applies.
    """
    middlewares = [error_middleware(STATUS_BY_ERROR), fhir_error_middleware(STATUS_BY_ERROR)]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[BACKEND] = backend
    app[AUTH] = auth
    app[POLICY] = policy
    app[REPORT_CACHE] = ReportCache()
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app
