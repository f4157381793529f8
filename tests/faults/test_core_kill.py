"""kill -9 of the core process mid-stream: after restarts the state equals a reference replay, nothing twice."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.faults.rig import Rig
from tests.faults.support import CoreProcess, Traffic, check_against_replay, wait_open_transaction, wait_progress

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)


async def test_kill_9_mid_stream_then_restart_neither_loses_nor_reapplies_an_event(rig: Rig, tmp_path: Path) -> None:
    core = CoreProcess(rig.env(), tmp_path / "core.log")
    traffic = Traffic(rig.conn, rig.topics.ingress, rig.agents)
    stop = asyncio.Event()
    sender = asyncio.create_task(traffic.run(stop))
    try:
        await wait_progress(rig.conn, rig.topics.ingress, more=200)  # a backlog: the core starts busy
        core.start()
        # three different moments: a verifier transaction open (events written, not committed), a reconciler
        # transaction open, and during start-up (importing, joining the group or restoring)
        await wait_progress(rig.conn, rig.topics.events, more=2000)
        caught = [await wait_open_transaction(rig.conn, rig.topics.events)]
        core.kill()
        core.start()
        await wait_progress(rig.conn, rig.topics.state, more=300)
        caught.append(await wait_open_transaction(rig.conn, rig.topics.state))
        core.kill()
        core.start()
        await asyncio.sleep(1.5)
        core.kill()
        core.start()
        await wait_progress(rig.conn, rig.topics.events, more=300)
        stop.set()
        await sender
        outcome = await check_against_replay(rig.conn, rig.topics, traffic.acked)
    finally:
        stop.set()
        core.stop()
    log.warning("kill-9 outcome starts=%d open_txn=%s batches=%d %s", core.starts, caught, traffic.batches, outcome)
    assert outcome.sent > 0
    assert outcome.in_state == outcome.sent
    assert outcome.mismatched == 0
    assert outcome.duplicates == 0
    assert outcome.missing == 0
    assert outcome.event_records == outcome.sent
    assert outcome.dead_letters == {}
