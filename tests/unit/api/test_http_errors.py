"""Every error of the core's API is ``{"reason", "message"}`` with the status its class is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.api import MAX_BODY_BYTES, STATUS_BY_ERROR, create_app
from broker.audit import AuditRecord, AuditUnavailableError
from broker.errors import CoreError, NotReadyError
from consent_io.http import HTTP_REASONS, status_for
from consent_wire.errors import InvalidNhsNumberError, TruncatedError
from tests.unit.api.backend import MemoryBackend
from tests.unit.api.test_api import decision_body

Client = TestClient  # type: ignore[type-arg]


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    assert set(body) == {"reason", "message"}
    assert body["message"]
    return body


async def test_an_unknown_route_is_404_not_found(client: Client) -> None:
    body = await error_of(await client.get("/v1/nowhere"), 404)
    assert body["reason"] == "NOT_FOUND"
    assert "/v1/nowhere" in body["message"]


async def test_a_wrong_method_is_405_naming_the_allowed_one(client: Client) -> None:
    resp = await client.get("/v1/decisions")
    body = await error_of(resp, 405)
    assert body == {"reason": "METHOD_NOT_ALLOWED", "message": "GET is not allowed on /v1/decisions; use POST"}
    assert resp.headers["Allow"] == "POST"


async def test_a_body_over_the_limit_is_413_body_too_large(client: Client) -> None:
    resp = await client.post("/v1/decisions", data=b"{" + b" " * MAX_BODY_BYTES + b"}")
    body = await error_of(resp, 413)
    assert body["reason"] == "BODY_TOO_LARGE"
    assert str(MAX_BODY_BYTES) in body["message"]


async def test_a_body_that_is_not_json_is_400_bad_request(client: Client) -> None:
    body = await error_of(await client.post("/v1/decisions", data=b"{not json"), 400)
    assert body["reason"] == "BAD_REQUEST"


@dataclass
class _AuditDown(MemoryBackend):
    async def record(self, record: AuditRecord) -> Any:
        raise AuditUnavailableError("audit topic not writable")


async def test_a_decision_the_audit_log_cannot_take_is_503_audit_unavailable() -> None:
    async with TestClient(TestServer(create_app(_AuditDown(), None))) as client:
        body = await error_of(await client.post("/v1/decisions", json=decision_body()), 503)
    assert body == {"reason": "AUDIT_UNAVAILABLE", "message": "audit topic not writable"}


@dataclass
class _Broken(MemoryBackend):
    def now_ms(self) -> int:
        raise RuntimeError("patient 9434765919 broke it")  # a bug whose text must not reach the client


async def test_an_unexpected_error_is_500_without_its_detail(caplog: pytest.LogCaptureFixture) -> None:
    async with TestClient(TestServer(create_app(_Broken(), None))) as client:
        body = await error_of(await client.post("/v1/decisions", json=decision_body()), 500)
    assert body == {"reason": "INTERNAL_ERROR", "message": "the server failed; the error is logged"}
    assert "http handler failed" in caplog.text


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (AuditUnavailableError("x"), 503),
        (NotReadyError("x"), 503),
        (InvalidNhsNumberError("x"), 400),
        (TruncatedError("x"), 400),
        (CoreError("x"), None),
    ],
)
def test_the_status_is_chosen_by_the_error_class(error: Exception, status: int | None) -> None:
    assert status_for(error, STATUS_BY_ERROR) == status


def test_every_http_layer_code_is_documented() -> None:
    docs = Path(__file__).parents[3] / "docs"
    reasons, openapi = (docs / "reason-codes.md").read_text(), (docs / "openapi.yaml").read_text()
    for code in (*HTTP_REASONS.values(), "INTERNAL_ERROR"):
        assert f"`{code}`" in reasons, code
        assert code in openapi, code
