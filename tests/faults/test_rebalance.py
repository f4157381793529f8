"""Two core instances with one app id: a rebalance mid-stream (join, then leave) changes nothing in the result."""

from __future__ import annotations

import asyncio
import logging

import pytest

from broker.runtime import Core
from broker.settings import CoreSettings
from tests.faults.rig import Rig
from tests.faults.support import Traffic, check_against_replay, wait_progress

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)


def _core(rig: Rig) -> Core:
    return Core(CoreSettings.load(**rig.settings()))


async def test_second_instance_joining_then_first_leaving_mid_stream_gives_the_reference_state(rig: Rig) -> None:
    first, second = _core(rig), _core(rig)
    traffic = Traffic(rig.conn, rig.topics.ingress, rig.agents, pause_s=0.1)
    stop = asyncio.Event()
    sender = asyncio.create_task(traffic.run(stop))
    try:
        await first.start()
        await first.wait_ready()
        await wait_progress(rig.conn, rig.topics.events, more=1000)
        await second.start()  # rebalance: the partitions split between the two
        await second.wait_ready()
        split = {name: sorted(stage.producers) for name, stage in second.stages.items()}
        await wait_progress(rig.conn, rig.topics.state, more=300)
        await first.stop()  # rebalance again: the second takes everything
        await wait_progress(rig.conn, rig.topics.events, more=1000)
        stop.set()
        await sender
        outcome = await check_against_replay(rig.conn, rig.topics, traffic.acked)
        owned = {name: sorted(stage.producers) for name, stage in second.stages.items()}
    finally:
        stop.set()
        await first.stop()
        await second.stop()
    log.warning("rebalance outcome split=%s batches=%d %s", split, traffic.batches, outcome)
    assert owned == {"verifier": [0, 1, 2, 3], "reconciler": [0, 1, 2, 3]}
    assert outcome.sent > 0
    assert outcome.in_state == outcome.sent
    assert outcome.mismatched == 0
    assert outcome.duplicates == 0
    assert outcome.missing == 0
    assert outcome.event_records == outcome.sent
    assert set(outcome.dead_letters) <= {"REPLAY"}  # a re-fetched batch is recognised, never re-applied
