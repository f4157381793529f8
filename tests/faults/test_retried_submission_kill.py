"""Issue 13 item 1 on the real stack: a client retries a POST whose answer was lost when the agent was killed.

The agent (a child process) is killed with SIGKILL right after it answered 202, once while the event is still
in its outbox and once after it reached Kafka; the clinical system, having seen no answer, posts the same
``event_id`` again to the restarted agent. Each time: the original receipt, one event on the events topic
(by event id and by (agent, seq)), one stamp in the patient's state.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from consent_rules.state import PatientState
from consent_wire.signing import decode_verified_event
from tests.faults.test_edge_faults import AgentProcess, _health, _pending
from tests.integration.edge.conftest import (
    EdgeKit,
    dead_letter_reasons,
    harness,  # noqa: F401  (fixture)
    http_post,
    kit,  # noqa: F401  (fixture)
    nhs_numbers,
    read_all,
)
from tests.integration.pipeline.conftest import Harness, latest_by_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)


def _submission(nhs: str, event_id: str) -> dict[str, Any]:
    return {
        "type": "consent_decision",
        "nhs_number": nhs,
        "event_id": event_id,
        "payload": {"directive": "OPTOUT", "purpose": "HRESCH", "data_class": "ALL", "recipient": "*"},
    }


async def test_a_retry_after_the_agent_was_killed_is_one_event_and_one_stamp(
    harness: Harness,  # noqa: F811
    kit: EdgeKit,  # noqa: F811
    tmp_path: Path,
) -> None:
    await harness.start_core()
    agent_id = f"retry-{harness.topics.prefix}"
    # a long linger: the first event is still in the outbox when the agent is killed
    settings = await kit.agent_settings(agent_id, batch_max_events=10, linger_ms=3000)
    agent = AgentProcess(kit.toml(settings), tmp_path / "agent.log")
    in_outbox, published = _submission(nhs_numbers(2)[0], "a" * 32), _submission(nhs_numbers(2)[1], "b" * 32)
    try:
        agent.start()
        await _health(settings)
        status, first = await http_post(settings, "/v1/events", in_outbox)
        assert status == 202
        agent.kill()  # the answer never reached the clinical system
        agent.start()
        await _health(settings)
        status, retried = await http_post(settings, "/v1/events", in_outbox)
        assert (status, retried) == (202, first)

        status, second = await http_post(settings, "/v1/events", published)
        assert status == 202
        while await _pending(settings):  # noqa: ASYNC110 - polling the agent's API
            await asyncio.sleep(0.05)
        agent.kill()  # acknowledged end to end, then killed
        agent.start()
        await _health(settings)
        status, retried_again = await http_post(settings, "/v1/events", published)
        assert (status, retried_again) == (202, second)
        while await _pending(settings):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        states = await harness.read(harness.topics.state, lambda rs: len(latest_by_key(rs)) >= 2, timeout_s=120)
    finally:
        agent.stop()
    assert [first["seq"], second["seq"]] == [1, 2]
    events = [decode_verified_event(r.value) for r in await read_all(harness.kafka, harness.topics.events)]
    assert sorted(ve.event.event_id for ve in events) == ["a" * 32, "b" * 32]  # by event id: once each
    assert sorted((ve.agent_id, ve.event.seq) for ve in events) == [(agent_id, 1), (agent_id, 2)]
    stamps = [PatientState.from_bytes(v) for v in latest_by_key(states).values()]
    assert sorted(s.version for s in stamps) == [1, 1]  # one stamp per patient
    assert set(dead_letter_reasons(await read_all(harness.kafka, harness.topics.deadletter))) <= {"REPLAY"}
    log.warning("retried submission after kill -9: starts=%d receipts=%s %s", agent.starts, first, second)
