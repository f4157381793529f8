"""What the OpenAPI fuzz found, each kept as a regression test (issue 12 items 9 and 10)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

import consent_wire.fhir
from broker.api import create_app
from edge_agent.http_api import BODY_LIMITS, FHIR_BODY_BYTES
from tests.unit.api.backend import NOW_MS, MemoryBackend
from tests.unit.api.test_api import decision_body
from tests.unit.edge.test_http_api import CONSENT, Api, start_api

FIVE_THOUSAND_DIGITS = "9" * 5000  # int() refuses more than 4,300 digits (CPython's int_max_str_digits)


@pytest.fixture
async def core() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    from aiohttp.test_utils import TestServer

    async with TestClient(TestServer(create_app(MemoryBackend(list_sizes={"A81001": 100}), None))) as c:
        yield c


async def _bad_request(resp: object) -> str:
    assert resp.status == 400, await resp.text()  # type: ignore[attr-defined]
    return str((await resp.json())["reason"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [FIVE_THOUSAND_DIGITS, "\u00b2", "\u0661\u0662\u0663", "\uff11\uff12"])
@pytest.mark.parametrize("report", ["breaches", "disclosures"])
async def test_report_window_of_huge_or_unicode_digits_is_400_not_500(
    core: TestClient, report: str, value: str
) -> None:  # type: ignore[type-arg]
    for name in ("from", "to"):
        resp = await core.get(f"/v1/reports/{report}", params={name: value})
        assert await _bad_request(resp) in {"BAD_REQUEST", "BAD_DECISION_REQUEST"}


@pytest.mark.parametrize("size", [FIVE_THOUSAND_DIGITS, "\u00b2", "\u0661\u0662", "1" * 10])
async def test_list_size_of_huge_or_unicode_digits_is_400_not_500(core: TestClient, size: str) -> None:  # type: ignore[type-arg]
    resp = await core.get("/v1/reports/objections", params={"list_sizes": f"A81001:{size}"})
    assert await _bad_request(resp) == "BAD_REQUEST"


async def test_as_at_beyond_an_avro_long_is_400(core: TestClient) -> None:  # type: ignore[type-arg]
    resp = await core.post("/v1/decisions", json={**decision_body(), "as_at": 2**63})
    assert await _bad_request(resp) == "BAD_REQUEST"
    ok = await core.post("/v1/decisions", json={**decision_body(), "as_at": NOW_MS - 1})
    assert ok.status == 200


async def test_a_request_line_over_8_kib_is_refused_by_the_parser_with_400(core: TestClient) -> None:  # type: ignore[type-arg]
    resp = await core.get("/v1/reports/breaches", params={"from": "9" * 9000})
    assert resp.status == 400


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Api]:
    a = await start_api(tmp_path)
    yield a
    await a.client.close()
    await a.outbox.close()
    await a.replica.close()


async def test_the_agent_refuses_a_body_over_its_routes_limit_with_413(edge: Api) -> None:
    big_event = {**CONSENT, "payload": {**CONSENT["payload"], "recorded_by_role": "x" * (70 * 1024)}}  # type: ignore[dict-item]
    resp = await edge.client.post("/v1/events", json=big_event)
    assert resp.status == 413
    assert (await resp.json())["reason"] == "BODY_TOO_LARGE"
    fhir = await edge.client.post("/v1/fhir/Consent", data=b" " * (FHIR_BODY_BYTES + 1))
    assert fhir.status == 413
    decision = await edge.client.post("/v1/decisions", data=b" " * (70 * 1024))
    assert decision.status == 413
    assert edge.outbox.pending_count == 0


async def test_a_batch_may_be_larger_than_one_submission(edge: Api) -> None:
    resp = await edge.client.post("/v1/events/batch", json={"events": [CONSENT] * 400})  # ~80 KiB
    assert resp.status == 202
    assert BODY_LIMITS["/v1/events/batch"] > BODY_LIMITS["/v1/events"]


def test_the_agents_fhir_body_limit_is_the_wire_protocols() -> None:
    assert consent_wire.fhir.MAX_FHIR_BYTES == FHIR_BODY_BYTES
