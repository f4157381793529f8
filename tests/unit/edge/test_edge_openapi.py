"""docs/edge-openapi.yaml documents every route of the agent's API, and real responses match its schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.api_auth import OPEN_PATHS
from edge_agent.http_api import BODY_LIMITS, make_app
from tests.openapi import DOCS, Case, Spec, check_response
from tests.unit.edge.test_http_api import CONSENT, Api, start_api

SPEC = Spec(DOCS / "edge-openapi.yaml")
CDS = SPEC.operation("/cds-services/patient-consent-consult", "POST")["requestBody"]["content"]["application/json"][
    "example"
]
DECISION = SPEC.operation("/v1/decisions", "POST")["requestBody"]["content"]["application/json"]["example"]


def test_spec_is_openapi_3_1_and_every_route_is_documented_with_its_methods(tmp_path: Path) -> None:
    assert SPEC.doc["openapi"].startswith("3.1")
    app = make_app(None, b"t" * 64)  # type: ignore[arg-type]  # routes only: no handler runs
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD" and r.resource}
    assert routes == set((m, p) for p, m in SPEC.operations())


def test_security_is_the_bearer_token_except_on_the_open_paths() -> None:
    assert SPEC.doc["components"]["securitySchemes"]["bearer"] == {
        **SPEC.doc["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    open_paths = {p for p, m in SPEC.operations() if SPEC.security(p, m) == []}
    assert open_paths == set(OPEN_PATHS)
    for path, method in SPEC.operations():
        if path not in OPEN_PATHS:
            assert 401 in SPEC.statuses(path, method), path


def test_every_route_with_a_body_documents_its_413_and_the_examples_are_valid() -> None:
    for path, method in SPEC.operations():
        if SPEC.request_body(path, method) is not None:
            assert path in BODY_LIMITS
            assert 413 in SPEC.statuses(path, method)
    assert SPEC.problems(DECISION, {"$ref": "#/components/schemas/DecisionRequest"}) == []
    assert SPEC.problems(CONSENT, {"$ref": "#/components/schemas/Submission"}) == []
    assert SPEC.problems({"type": "objection"}, {"$ref": "#/components/schemas/Submission"}) != []  # can fail


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    a = await start_api(tmp_path)
    yield a
    await a.client.close()
    await a.outbox.close()
    await a.replica.close()


CALLS = [
    ("POST", "/v1/events", CONSENT, 202),
    ("POST", "/v1/events", {**CONSENT, "nhs_number": "123"}, 400),
    ("POST", "/v1/events/batch", {"events": [CONSENT, CONSENT]}, 202),
    ("POST", "/v1/events/batch", {"events": []}, 400),
    ("POST", "/v1/fhir/Consent", {"resourceType": "Patient"}, 400),
    ("POST", "/v1/decisions", DECISION, 200),
    ("POST", "/v1/decisions", {**DECISION, "purpose": "GOSSIP"}, 400),
    ("GET", "/v1/health", None, 200),
    ("GET", "/metrics", None, 200),
    ("GET", "/cds-services", None, 200),
    ("POST", "/cds-services/patient-consent-consult", CDS, 200),
    ("POST", "/cds-services/patient-consent-consult", {**CDS, "hook": "patient-view"}, 400),
    ("GET", "/v1/nowhere", None, 404),
    ("DELETE", "/v1/events", None, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), CALLS)
async def test_real_responses_match_the_documented_schema(
    api: Api, method: str, path: str, body: object, status: int
) -> None:
    resp = await api.client.request(method, path, json=body)
    raw = await resp.read()
    assert resp.status == status, raw
    assert check_response(SPEC, Case(method, path), resp.status, resp.content_type, raw) == []


async def test_without_the_token_every_path_but_health_is_401_in_the_documented_shape(api: Api) -> None:
    for path, method in [*SPEC.operations(), ("/v1/nowhere", "GET")]:
        resp = await api.client.request(method, path, headers={"Authorization": ""})
        raw = await resp.read()
        expected = 200 if path in OPEN_PATHS else 401
        assert resp.status == expected, (path, raw)
        assert check_response(SPEC, Case(method, path), resp.status, resp.content_type, raw, any_path_401=True) == []
