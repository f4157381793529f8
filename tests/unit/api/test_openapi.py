"""docs/openapi.yaml documents every route of the app, and real responses match the documented schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from broker.api import create_app
from consent_wire.codes import BreachSeverity, ConsentDirective, PurposeOfUse
from tests.unit.api.backend import (
    DAY_MS,
    NHS,
    NOW_MS,
    READER,
    MemoryBackend,
    access,
    breach,
    consent,
    objection,
    shield,
)

SPEC_PATH = Path(__file__).parents[3] / "docs" / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = SPEC
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _is(value: object, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def problems(value: object, schema: dict[str, Any], at: str = "$") -> list[str]:
    """A small JSON Schema check: $ref, type, enum, required, properties, items, oneOf, allOf, min/maxItems."""
    s = _resolve(schema)
    if "allOf" in s:
        return [p for sub in s["allOf"] for p in problems(value, sub, at)]
    if "oneOf" in s:
        matches = sum(not problems(value, sub, at) for sub in s["oneOf"])
        return [] if matches == 1 else [f"{at}: matches {matches} of oneOf"]
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_is(value, t) for t in types):
            return [f"{at}: {type(value).__name__} is not {types}"]
    if "enum" in s and value not in s["enum"]:
        return [f"{at}: {value!r} not in enum"]
    out: list[str] = []
    if isinstance(value, dict):
        out += [f"{at}: missing {name}" for name in s.get("required", []) if name not in value]
        for name, sub in s.get("properties", {}).items():
            if name in value:
                out += problems(value[name], sub, f"{at}.{name}")
    if isinstance(value, list):
        if len(value) < s.get("minItems", 0) or len(value) > s.get("maxItems", len(value)):
            out.append(f"{at}: {len(value)} items out of bounds")
        for i, item in enumerate(value):
            out += problems(item, s.get("items", {}), f"{at}[{i}]")
    return out


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    op = SPEC["paths"][path][method.lower()]
    response = _resolve(op["responses"][str(status)])
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def test_spec_is_openapi_3_1_and_every_route_is_documented_with_its_methods() -> None:
    assert SPEC["openapi"].startswith("3.1")
    app = create_app(MemoryBackend(), None)
    routes = {
        (r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD" and r.resource is not None
    }
    documented = {(m.upper(), p) for p, ops in SPEC["paths"].items() for m in ops if m != "parameters"}
    assert routes == documented


def test_the_request_example_is_valid_against_its_own_schema() -> None:
    body = SPEC["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]
    assert problems(body["example"], body["schema"]) == []
    assert problems({"purpose": "TREAT"}, body["schema"]) != []  # the checker can fail


def _populated() -> MemoryBackend:
    backend = MemoryBackend(list_sizes={"A81001": 100})
    backend.add(
        consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, at_ms=NOW_MS - 3 * DAY_MS),
        objection(),
        shield(),
        access("A81001", "RESLAB1"),
        breach("RX1", BreachSeverity.LEVEL_1),
    )
    return backend


DECISION = SPEC["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]["example"]
CALLS = [
    ("POST", "/v1/decisions", "/v1/decisions", DECISION, 200),
    ("POST", "/v1/decisions", "/v1/decisions", {**DECISION, "as_at": "2026-09-01T00:00:00Z"}, 200),
    ("POST", "/v1/decisions", "/v1/decisions", {**DECISION, "nhs_number": "123"}, 400),
    ("GET", "/v1/patients/{nhs_number}/consent", f"/v1/patients/{NHS}/consent{READER}", None, 200),
    ("GET", "/v1/patients/{nhs_number}/consent", f"/v1/patients/{NHS}/consent{READER}&format=fhir", None, 200),
    ("GET", "/v1/patients/{nhs_number}/consent", f"/v1/patients/12/consent{READER}", None, 400),
    ("GET", "/v1/patients/{nhs_number}/accesses", f"/v1/patients/{NHS}/accesses{READER}", None, 200),
    ("GET", "/v1/reports/objections", "/v1/reports/objections", None, 200),
    ("GET", "/v1/reports/objections", "/v1/reports/objections?list_sizes=bad", None, 400),
    ("GET", "/v1/reports/breaches", f"/v1/reports/breaches?from={NOW_MS - 7 * DAY_MS}", None, 200),
    ("GET", "/v1/reports/disclosures", "/v1/reports/disclosures", None, 200),
    ("GET", "/v1/health", "/v1/health", None, 200),
]


async def test_not_ready_and_health_responses_match_the_documented_schema() -> None:
    backend = _populated()
    backend.ready = False
    async with TestClient(TestServer(create_app(backend, None))) as client:
        for method, template, url, body, _ in CALLS:
            resp = await client.request(method, url, json=body)
            assert resp.status == 503
            assert problems(await resp.json(), response_schema(template, method, 503)) == []


@pytest.mark.parametrize(("method", "template", "url", "body", "status"), CALLS)
async def test_real_responses_match_the_documented_schema(
    method: str, template: str, url: str, body: object, status: int
) -> None:
    async with TestClient(TestServer(create_app(_populated(), None))) as client:
        resp = await client.request(method, url, json=body)
        assert resp.status == status, await resp.text()
        payload = await resp.json()
    assert problems(payload, response_schema(template, method, status)) == []
