"""Issue 13 item 1: a client's retried POST (same event_id) is one event, at the agent and in the merge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consent_rules.state import apply, empty_state
from consent_wire.codes import ConsentDirective, DataClass, HiddenField, PurposeOfUse, ShieldingAction
from consent_wire.model import ConsentDecision, Event, ShieldingFlag
from edge_agent.http_api import ApiContext, make_app
from edge_agent.intake import Intake
from edge_agent.metrics import EdgeCollector, SubmissionCounts, make_registry
from edge_agent.outbox import Outbox
from edge_agent.wire import AvroEventCodec
from tests.fakes import VALID_NHS, FakeClock, draft, fake_pseudonymise

EVENT_ID = "0123456789abcdef0123456789abcdef"
SUBMISSION = {
    "type": "consent_decision",
    "nhs_number": VALID_NHS,
    "event_id": EVENT_ID,
    "payload": {"directive": "OPTOUT", "purpose": "HRESCH", "data_class": "ALL", "recipient": "*"},
}


async def _open(path: Path) -> Outbox:
    return await Outbox.open(
        path / "o.db", agent_id="agent-1", site="A12345", codec=AvroEventCodec(), cap_bytes=1 << 30
    )


async def _serve(outbox: Outbox) -> TestClient:  # type: ignore[type-arg]
    counts = SubmissionCounts()
    intake = Intake(outbox, fake_pseudonymise, FakeClock(), lambda: 1_700_000_000_000)
    registry = make_registry(EdgeCollector(outbox, counts, None, None))
    ctx = ApiContext("agent-1", "A12345", intake, outbox, fake_pseudonymise, counts, registry, lambda: 1, None)
    client = TestClient(TestServer(make_app(ctx, b"t" * 64)), headers={"Authorization": "Bearer " + "t" * 64})
    await client.start_server()
    return client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    outbox = await _open(tmp_path)
    c = await _serve(outbox)
    yield c
    await c.close()
    await outbox.close()


async def test_retried_post_with_the_same_event_id_answers_the_original_receipt_and_enqueues_once(
    tmp_path: Path,
) -> None:
    outbox = await _open(tmp_path)
    client = await _serve(outbox)
    first = await (await client.post("/v1/events", json=SUBMISSION)).json()
    retry = await client.post("/v1/events", json=SUBMISSION)
    assert retry.status == 202
    assert await retry.json() == first == {"event_id": EVENT_ID, "seq": 1}
    assert [r.event_id for r in await outbox.pending(10)] == [EVENT_ID]
    await client.close()
    await outbox.close()


async def test_retry_after_an_agent_restart_and_an_ack_still_answers_the_original_receipt(tmp_path: Path) -> None:
    outbox = await _open(tmp_path)
    client = await _serve(outbox)
    await client.post("/v1/events", json={**SUBMISSION, "event_id": "f" * 32})  # seq 1
    first = await (await client.post("/v1/events", json=SUBMISSION)).json()  # seq 2
    await outbox.ack_upto(2)
    await client.close()
    await outbox.close()

    outbox = await _open(tmp_path)  # the agent was killed before the client saw the response
    client = await _serve(outbox)
    retry = await client.post("/v1/events", json=SUBMISSION)
    assert retry.status == 202
    assert await retry.json() == first == {"event_id": EVENT_ID, "seq": 2}
    assert await outbox.pending(10) == []
    assert (await outbox.stats()).next_seq == 3
    await client.close()
    await outbox.close()


async def test_same_event_id_with_another_body_is_409_event_id_conflict(client: TestClient) -> None:  # type: ignore[type-arg]
    await client.post("/v1/events", json=SUBMISSION)
    other = {**SUBMISSION, "payload": {**SUBMISSION["payload"], "directive": "OPTIN"}}  # type: ignore[dict-item]
    resp = await client.post("/v1/events", json=other)
    assert resp.status == 409
    assert (await resp.json())["reason"] == "EVENT_ID_CONFLICT"


async def test_concurrent_retries_in_one_group_commit_are_one_event(tmp_path: Path) -> None:
    outbox = await _open(tmp_path)
    d = draft(7)
    receipts = await asyncio.gather(*(outbox.submit(replace(d, hlc=d.hlc + i)) for i in range(5)))
    assert {(r.event_id, r.seq) for r in receipts} == {(d.event_id, 1)}
    assert len(await outbox.pending(10)) == 1
    await outbox.close()


def _copy(event: Event, *, agent_id: str, seq: int, hlc: int) -> Event:
    return replace(event, agent_id=agent_id, seq=seq, hlc=hlc, recorded_ms=hlc >> 16)


def test_second_copy_of_an_event_id_does_not_re_stamp_the_register() -> None:
    t = 1_790_000_000_000
    patient = "ab" * 16
    optout = ConsentDecision(ConsentDirective.OPTOUT, PurposeOfUse.HRESCH, DataClass.ALL, "*")
    optin = replace(optout, directive=ConsentDirective.OPTIN)
    original = Event(EVENT_ID, "agent-1", "A12345", 1, bytes(32), t << 16, t, patient, optout)
    newer = Event("e" * 32, "agent-2", "B12345", 1, bytes(32), (t + 5_000) << 16, t + 5_000, patient, optin)
    stale_retry = _copy(original, agent_id="agent-1", seq=2, hlc=(t + 8_900) << 16)
    state = apply(apply(apply(empty_state(patient), original), newer), stale_retry)
    (register,) = state.consents.values()
    assert register.directive is ConsentDirective.OPTIN
    assert register.stamp.event_id == newer.event_id


def test_second_copy_of_a_shielding_clear_cannot_turn_shielding_off_again() -> None:
    t = 1_790_000_000_000
    patient = "cd" * 16
    clear = ShieldingFlag(ShieldingAction.CLEAR, (), "SAFEGUARDING_LEAD")
    set_ = ShieldingFlag(ShieldingAction.SET, (HiddenField.LOCATION,), "SAFEGUARDING_LEAD", "CHILD_PROTECTION")
    first_clear = Event(EVENT_ID, "agent-1", "A12345", 1, bytes(32), t << 16, t, patient, clear)
    state = apply(empty_state(patient), first_clear)
    later_set = Event("e" * 32, "agent-2", "B12345", 1, bytes(32), (t + 1) << 16, t + 1, patient, set_)
    state = apply(state, later_set)
    retried_clear = _copy(first_clear, agent_id="agent-1", seq=2, hlc=(t + 2) << 16)
    assert state.shielding is not None and state.shielding.active
    assert apply(state, retried_clear) == state
