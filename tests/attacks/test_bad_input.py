"""Issue 12 item 9: bad input is a 400 with a reason code, never a 500, and never fails its neighbours."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consent_wire.codes import BreachSeverity
from consent_wire.errors import InvalidNhsNumberError, OversizeError
from consent_wire.identity import patient_key, validate_nhs_number
from consent_wire.model import BreachReport
from edge_agent.http_api import ApiContext, make_app
from edge_agent.intake import Intake
from edge_agent.metrics import EdgeCollector, SubmissionCounts, make_registry
from edge_agent.outbox import Outbox
from edge_agent.wire import AvroEventCodec
from tests.fakes import FakeClock, draft

SECRET = b"s" * 32
UNICODE_DIGIT_FORMS = [
    "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669",  # Arabic-Indic 9434765919
    "\u0669\u0664\u0663 \u0664\u0667\u0666 \u0665\u0669\u0661\u0669",  # the same, grouped 3-3-4
    "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19",  # full-width
    "943 476 \uff15\uff19\uff11\uff19",  # mixed ASCII and full-width
    "\u06f9\u06f4\u06f3-\u06f4\u06f7\u06f6-\u06f5\u06f9\u06f1\u06f9",  # Extended Arabic-Indic, hyphens
]


def _pseudonymise(nhs_number: str) -> str:
    return patient_key(SECRET, nhs_number)


@pytest.mark.parametrize("text", UNICODE_DIGIT_FORMS)
def test_unicode_digit_nhs_number_is_invalid_nhs_number_not_unicode_encode_error(text: str) -> None:
    with pytest.raises(InvalidNhsNumberError):
        validate_nhs_number(text)
    with pytest.raises(InvalidNhsNumberError):
        patient_key(SECRET, text)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    outbox = await Outbox.open(
        tmp_path / "o.db", agent_id="agent-1", site="A12345", codec=AvroEventCodec(), cap_bytes=1 << 30
    )
    counts = SubmissionCounts()
    intake = Intake(outbox, _pseudonymise, FakeClock(), lambda: 1_700_000_000_000)
    registry = make_registry(EdgeCollector(outbox, counts, None, None))
    ctx = ApiContext("agent-1", "A12345", intake, outbox, _pseudonymise, counts, registry, lambda: 1, None)
    c = TestClient(TestServer(make_app(ctx, b"t" * 64)), headers={"Authorization": "Bearer " + "t" * 64})
    await c.start_server()
    yield c
    await c.close()
    await outbox.close()


@pytest.mark.parametrize("text", UNICODE_DIGIT_FORMS)
async def test_unicode_digit_nhs_number_posted_to_the_agent_is_a_400(client: TestClient, text: str) -> None:  # type: ignore[type-arg]
    body = {
        "type": "objection",
        "nhs_number": text,
        "payload": {"kind": "NDOP", "action": "REGISTER", "exemptions": []},
    }
    resp = await client.post("/v1/events", json=body)
    assert resp.status == 400
    assert (await resp.json())["reason"] == "INVALID_NHS_NUMBER"


def _breach(count: int | str) -> bytes:
    return (
        '{"type": "breach_report", "payload": {"organisation": "A12345", "severity": "LEVEL_2",'
        ' "category": "LOST_IN_TRANSIT", "explanation": "x", "remedial_action": "y", "apology_given": true,'
        f' "individuals_affected": {count}}}}}'
    ).encode()


@pytest.mark.parametrize("count", [2**63, 2**63 - 1, 10**11])
async def test_breach_count_beyond_the_bound_is_out_of_range(client: TestClient, count: int) -> None:  # type: ignore[type-arg]
    resp = await client.post("/v1/events", data=_breach(count), headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["reason"] == "OUT_OF_RANGE"


async def test_five_thousand_digit_integer_is_a_400(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.post("/v1/events", data=_breach("9" * 5000), headers={"Content-Type": "application/json"})
    assert resp.status == 400


async def test_one_unencodable_submission_in_a_group_commit_fails_alone(tmp_path: Path) -> None:
    outbox = await Outbox.open(
        tmp_path / "o.db", agent_id="agent-1", site="A12345", codec=AvroEventCodec(), cap_bytes=1 << 30
    )
    huge = BreachReport("A12345", BreachSeverity.LEVEL_2, "X", "x" * 70_000, "y", True, 1)
    bad = replace(draft(99), patient_key="", payload=huge)
    try:
        results = await asyncio.gather(
            outbox.submit(draft(1)), outbox.submit(bad), outbox.submit(draft(2)), return_exceptions=True
        )
    finally:
        await outbox.close()
    assert isinstance(results[1], OversizeError)
    assert [r.seq for r in (results[0], results[2])] == [1, 2]  # type: ignore[union-attr]
