"""Three brokers (RF 3, min ISR 2), one killed mid-run and restarted: no acknowledged event is lost."""

from __future__ import annotations

import asyncio
import logging

import pytest

from broker.infra import Infra
from broker.infra.local import LocalDeployment
from broker.runtime import Core
from broker.settings import CoreSettings
from tests.factories import NATIONAL_SECRET
from tests.faults.rig import make_rig
from tests.faults.support import Traffic, check_against_replay, wait_progress

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)

VICTIM = 2  # any one of three: RF 3 with min ISR 2 keeps accepting acks=all writes without it


async def test_one_broker_killed_mid_run_loses_no_acknowledged_event(cluster3: Infra, unique_prefix: str) -> None:
    rig = await make_rig(LocalDeployment(cluster3, national_secret=NATIONAL_SECRET), unique_prefix, replication=3)
    core = Core(CoreSettings.load(**rig.settings()))
    conn = rig.conn
    traffic = Traffic(conn, rig.topics.ingress, rig.agents, pause_s=0.1)
    stop = asyncio.Event()
    sender = asyncio.create_task(traffic.run(stop))
    try:
        await core.start()
        await core.wait_ready()
        await wait_progress(conn, rig.topics.events, more=1000)
        await asyncio.to_thread(cluster3.kill_node, VICTIM)
        await asyncio.sleep(5)  # traffic keeps flowing on two brokers
        await wait_progress(conn, rig.topics.state, more=300)
        await asyncio.to_thread(cluster3.start_node, VICTIM)
        await wait_progress(conn, rig.topics.events, more=1000)
        stop.set()
        await sender
        outcome = await check_against_replay(conn, rig.topics, traffic.acked)
    finally:
        stop.set()
        await core.stop()
        if not cluster3.status().healthy:
            await asyncio.to_thread(cluster3.start_node, VICTIM)
    log.warning("failover outcome batches=%d send_failures=%d %s", traffic.batches, traffic.send_failures, outcome)
    assert outcome.sent > 0
    assert outcome.in_state == outcome.sent  # every acknowledged event is in the state, once
    assert outcome.mismatched == 0
    assert outcome.duplicates == 0
    assert outcome.missing == 0
    assert set(outcome.dead_letters) <= {"REPLAY"}  # a re-sent batch that had landed is recognised
