"""The batch opt-out check (issue 17): NHS numbers streamed in, the permitted subset streamed out with counts
and reasons, invalid numbers counted by reason and never echoed, one audit record per batch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from broker.api import create_app
from broker.api.checks import CheckTally, Invalid, _InvalidLine, nhs_number_of
from broker.audit.requests import AuditReceipt, RequestPosition
from consent_wire.codes import ObjectionKind
from consent_wire.errors import InvalidNhsNumberError
from consent_wire.identity import validate_nhs_number
from tests.unit.api.backend import NHS, OTHER_NHS, MemoryBackend, objection

UNKNOWN = "9434765935"
QUERY = "/v1/checks?purpose=HRESCH&legal_basis=S251&role=RESEARCHER&accessor_id=r-1"


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient, MemoryBackend]]:  # type: ignore[type-arg]
    backend = MemoryBackend()
    backend.add(objection(ObjectionKind.NDOP))  # NHS opted out
    async with TestClient(TestServer(create_app(backend, None))) as c:
        yield c, backend


def _lines(raw: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = [orjson.loads(line) for line in raw.splitlines()]
    return rows[:-1], rows[-1]["summary"]


async def test_ndjson_batch_answers_the_permitted_subset_with_counts_and_one_audit_record(client: Any) -> None:
    c, backend = client
    body = "\n".join(
        [
            f'"{NHS}"',
            f'{{"nhs_number": "{OTHER_NHS}"}}',
            f'"{UNKNOWN}"',
            '"9434765918"',
            "{oops",
            "42",
            '"943 476 5935"',
        ]
    ).encode()
    resp = await c.post(QUERY, data=body, headers={"Content-Type": "application/x-ndjson"})
    raw = await resp.read()
    assert resp.status == 200 and resp.content_type == "application/x-ndjson"
    rows, summary = _lines(raw)
    assert [r["nhs_number"] for r in rows] == [OTHER_NHS, UNKNOWN, UNKNOWN]  # S251 basis; NHS opted out
    assert {k: summary[k] for k in ("received", "permitted", "withheld", "invalid")} == {
        "received": 7, "permitted": 3, "withheld": 1, "invalid": 3}  # fmt: skip
    assert summary["withheld_reasons"] == {"NDOP_ACTIVE": 1}
    assert summary["invalid_reasons"] == {"BAD_SHAPE": 1, "INVALID_CHECK_DIGIT": 1, "NOT_JSON": 1}
    assert NHS.encode() not in raw and b"9434765918" not in raw  # withheld and invalid never echoed
    assert len(backend.log.entries) == 1 and summary["audit_index"] == 0 and summary["audit_request"] is None


async def test_csv_with_a_header_and_crlf(client: Any) -> None:
    c, _ = client
    body = f"nhs_number,name\r\n{NHS},x\r\n{UNKNOWN},y\r\n12345,z\r\n".encode()
    resp = await c.post(QUERY, data=body, headers={"Content-Type": "text/csv"})
    rows, summary = _lines(await resp.read())
    assert [r["nhs_number"] for r in rows] == [UNKNOWN]
    assert (summary["received"], summary["invalid_reasons"]) == (3, {"INVALID_LENGTH": 1})


async def test_a_long_line_across_chunks_is_one_invalid_line(client: Any) -> None:
    c, _ = client

    def body() -> Iterator[bytes]:
        yield f'"{UNKNOWN}"\n"'.encode()
        for _ in range(20):
            yield b"9" * 50_000
        yield f'"\n"{UNKNOWN}"\n'.encode()

    async def stream() -> AsyncIterator[bytes]:
        for piece in body():
            yield piece

    resp = await c.post(QUERY, data=stream())
    rows, summary = _lines(await resp.read())
    assert len(rows) == 2
    assert summary["invalid_reasons"] == {"LINE_TOO_LONG": 1} and summary["received"] == 3


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("/v1/checks?purpose=GOSSIP&role=R&accessor_id=a", 400, "INVALID_CODE"),
        ("/v1/checks?purpose=HRESCH&accessor_id=a", 400, "BAD_REQUEST"),
        ("/v1/checks?purpose=HRESCH&role=R&accessor_id=a&legal_basis=MAGIC", 400, "INVALID_CODE"),
    ],
)
async def test_bad_parameters_are_refused_before_anything_is_read(
    client: Any, query: str, status: int, reason: str
) -> None:
    c, backend = client
    resp = await c.post(query, data=f'"{NHS}"\n'.encode())
    assert (resp.status, (await resp.json())["reason"]) == (status, reason)
    assert len(backend.log.entries) == 0


@given(st.text(max_size=20) | st.from_regex(r"[0-9]{10}", fullmatch=True))
def test_the_line_check_agrees_with_the_wire_validator(text: str) -> None:
    try:
        expected: str | None = validate_nhs_number(text)
    except InvalidNhsNumberError:
        expected = None
    try:
        got: str | None = nhs_number_of(orjson.dumps(text), csv=False)
    except _InvalidLine as bad:
        assert isinstance(bad.reason, Invalid)
        got = None
    if text.strip() == text:  # the wire validator strips; a batch line's value must be the number itself
        assert got == expected


def test_the_summary_names_the_batch_audit_request_as_a_decision_answer_does() -> None:
    summary = CheckTally().summary("b1", AuditReceipt(None, RequestPosition(2, 41)))
    assert (summary["audit_index"], summary["audit_request"]) == (None, {"partition": 2, "offset": 41})
