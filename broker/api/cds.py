"""CDS Hooks 2.0 on the core: ``GET /cds-services`` (discovery) and ``POST /cds-services/patient-consent-consult``.

The hook's request and cards are :mod:`consent_rules.cds_hooks` (shared with the edge agent, which answers
the same hook offline from its replica). Authentication, as the CDS Hooks specification asks: a JWT signed
by the CDS client with its registered key (``kid``), ``aud`` the service URL, ``exp``, unique ``jti``
(:mod:`broker.auth.cds_jwt`); an OAuth access token from ``/oauth2/token`` is accepted too. Either way the
client needs the ``decisions`` scope and asks as its registered organisation and one of its roles. Every
consult is decided live on the authoritative state and recorded on the audit trail like ``POST
/v1/decisions``; discovery is open (it carries no data) and, like every route but health, 503 until ready.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import orjson
from aiohttp import web

import broker.api.handlers as core_api
from broker.audit import decision_record
from broker.auth import Principal, Scope, TokenService, check_requester, require_scope
from broker.auth.cds_jwt import CdsJwtVerifier, is_cds_jwt
from broker.errors import NotReadyError
from consent_io.http import json_response
from consent_rules.cds_hooks import (
    SERVICE_ID,
    card_json,
    decision_document,
    discovery,
    example_responses,
    label_parameters,
)
from consent_rules.decision import DecisionAnswer, decide, parse_request
from consent_rules.decision.document import BadRequestError

__all__ = [
    "SERVICE_PATH",
    "export_fhir_content",
    "fhir_resources_for_validation",
    "get_cds_services",
    "post_consent_consult",
    "service_url",
]

SERVICE_PATH: str = f"/cds-services/{SERVICE_ID}"
SOURCE = {"label": "consent-broker core (authoritative consent state)"}
_VERIFIERS: weakref.WeakKeyDictionary[TokenService, CdsJwtVerifier] = weakref.WeakKeyDictionary()


def service_url(auth: TokenService) -> str:
    """The URL a CDS client JWT must name as ``aud``: the API's own origin (from its token URL) + the service path."""
    return auth.token_url.removesuffix("/oauth2/token") + SERVICE_PATH


async def get_cds_services(request: web.Request) -> web.Response:
    _ready(request)  # a service listed must be able to answer
    return json_response(discovery("consent-broker core"))


def _ready(request: web.Request) -> None:
    if not request.app[core_api.BACKEND].health().ready:
        raise NotReadyError("the service is still reading the state and event topics; retry shortly")


async def post_consent_consult(request: web.Request) -> web.Response:
    principal = _principal(request)
    _ready(request)
    backend = request.app[core_api.BACKEND]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not JSON: {exc}") from exc
    document, kept = decision_document(body)
    now_ms = backend.now_ms()
    parsed = parse_request(document, backend.patient_key, now_ms)
    req = parsed.request
    if request.app[core_api.AUTH] is not None:
        check_requester(principal, req.requester.organisation, req.requester.role)
    if not kept:
        return json_response(card_json(None, SOURCE, kept=False))
    decision = decide(req, await backend.state(req.patient_key), request.app[core_api.POLICY])
    receipt = await backend.record(decision_record(req, decision, parsed.accessor_id, principal.client_id))
    answer = DecisionAnswer(decision, now_ms, None, receipt.index, audit_request=core_api.request_position(receipt))
    return json_response(card_json(answer, SOURCE))


def _principal(request: web.Request) -> Principal:
    auth = request.app[core_api.AUTH]
    if auth is None:
        return Principal("insecure-debug", "", frozenset(), frozenset(Scope))
    header = request.headers.get("Authorization")
    now_s = request.app[core_api.BACKEND].now_ms() // 1000
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() == "bearer" and is_cds_jwt(token.strip()):
        verifier = _VERIFIERS.get(auth)
        if verifier is None:
            verifier = _VERIFIERS[auth] = CdsJwtVerifier(auth.registry)
        principal = verifier.verify(token.strip(), service_url(auth), now_s)
    else:
        principal = auth.authenticate(header, now_s)
    require_scope(principal, Scope.DECISIONS)
    return principal


def fhir_resources_for_validation() -> list[tuple[str, dict[str, object]]]:
    """The FHIR content of each kind of card (an R4 ``Parameters`` resource each), for the HAPI validator test."""
    return [(name, label_parameters(response)) for name, response in example_responses().items()]


def export_fhir_content(directory: Path) -> list[Path]:
    """Write the FHIR content of each kind of card as an R4 ``Parameters`` resource, one JSON file each.

    For an independent FHIR validator (the HAPI validator test picks up ``cds-*.parameters.json``): cards carry no
    FHIR resource, only Codings (obligation ids and security labels), which these resources hold.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, response in example_responses().items():
        path = directory / f"cds-{name}.parameters.json"
        path.write_bytes(orjson.dumps(label_parameters(response), option=orjson.OPT_INDENT_2))
        written.append(path)
    return written
