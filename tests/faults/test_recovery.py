"""Issue 13: recover from every fault under load, with the ledger check (nothing lost, nothing doubled).

- a broker paused (SIGSTOP) mid-stream on the three-broker cluster: every partition resumes;
- Kafka fully down (every broker killed) mid-stream: the core process waits, says it is unhealthy, resumes;
  no crash loop (one process from start to end);
- a second core joins and the first leaves, then the first restarts: partitions kept across a rebalance read
  only the changelog's tail, a restart reads its local store and the tail, never the whole changelog again,
  and there is at most one restore per partition per assignment (no storm).
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from broker.infra import Infra
from broker.infra.local import LocalDeployment
from broker.runtime import Core
from broker.settings import CoreSettings
from broker.stage import TransactionalStage
from tests.factories import NATIONAL_SECRET
from tests.faults.rig import PARTITIONS, Rig, make_rig
from tests.faults.support import CoreProcess, Outcome, Traffic, check_against_replay, wait_progress
from tests.faults.test_core_runtime import _free_port

# Whole-cluster faults on a shared 2-core machine are timing-sensitive; each gets one re-run, and a failure
# that repeats fails CI. (The full outage once stalled for good under load: a failed partition recovery ended
# the session while the others' transactions ran on, the cleanup waited forever on producers Kafka could not
# serve, and a partition fenced by the coordinator's own timeout abort was dropped while still assigned.)
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.flaky(reruns=1)]

log = logging.getLogger(__name__)

PAUSED_VICTIM = 3
PAUSE_S = 12.0  # longer than KRaft's broker session timeout (9 s): its leaderships move, as in the campaign
OUTAGE_S = 25.0  # every broker down: the campaign had 60 s; 25 s covers many retries of every client


def _assert_ledger(outcome: Outcome) -> None:
    assert outcome.sent > 0
    assert outcome.in_state == outcome.sent  # every acknowledged event applied, once
    assert outcome.mismatched == 0
    assert (outcome.duplicates, outcome.duplicate_ids) == (0, 0)  # by (agent, seq) and by event id
    assert (outcome.missing, outcome.missing_ids) == (0, 0)
    assert outcome.event_records == outcome.sent
    assert set(outcome.dead_letters) <= {"REPLAY"}  # a re-sent batch that had landed is recognised


def _assert_no_storm(stage: TransactionalStage) -> None:
    """At most one restore per partition per assignment received."""
    assert len(stage.restores) <= sum(len(a) for a in stage.assignments)


async def _restore_cluster(cluster: Infra) -> None:
    for node in (1, 2, 3):
        cluster.pause_node(node, paused=False)
    if not cluster.status().healthy:
        await asyncio.to_thread(cluster.start_nodes, [1, 2, 3])


async def test_a_paused_broker_stalls_no_partition_and_loses_or_doubles_nothing(
    cluster3: Infra, unique_prefix: str, tmp_path: Path
) -> None:
    rig = await make_rig(LocalDeployment(cluster3, national_secret=NATIONAL_SECRET), unique_prefix, replication=3)
    core = Core(CoreSettings.load(**rig.settings(), state_dir=str(tmp_path / "state")))
    traffic = Traffic(rig.conn, rig.topics.ingress, rig.agents, pause_s=0.1)
    stop = asyncio.Event()
    sender = asyncio.create_task(traffic.run(stop))
    try:
        await core.start()
        await core.wait_ready()
        await wait_progress(rig.conn, rig.topics.events, more=1000)
        cluster3.pause_node(PAUSED_VICTIM)
        await asyncio.sleep(PAUSE_S)
        cluster3.pause_node(PAUSED_VICTIM, paused=False)
        await wait_progress(rig.conn, rig.topics.state, more=300)
        stop.set()
        await sender
        outcome = await check_against_replay(rig.conn, rig.topics, traffic.acked)
        alive = all(not t.done() for t in core._tasks)
    finally:
        stop.set()
        await core.stop()
        await _restore_cluster(cluster3)
    log.warning("broker pause outcome batches=%d %s", traffic.batches, outcome)
    _assert_ledger(outcome)
    assert core.failure is None and alive
    for stage in core.stages.values():
        _assert_no_storm(stage)


def _health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _wait_health(port: int, status: int, timeout_s: float = 120) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            code, body = await asyncio.to_thread(_health, port)
            if code == status:
                return body
        except OSError:
            pass
        assert loop.time() < deadline, f"/health never answered {status}"
        await asyncio.sleep(0.5)


async def test_a_full_kafka_outage_is_waited_out_unhealthy_without_a_crash_loop_and_loses_nothing(
    cluster3: Infra, unique_prefix: str, tmp_path: Path
) -> None:
    """Issue 13. Once seen on a quiet CI machine (every broker killed 3 s after the core started): right after
    Kafka returned, a verifier batch found no leader within its time to live and failed, yet aiokafka committed
    the transaction without it, input offset included; the agent's chain cursor was lost with it, and its next
    batches were held and dead-lettered GAP_TIMEOUT (86 acknowledged events). Fixed: every send is delivered
    before the commit, else the transaction is aborted (``kafka.delivered``). Also seen: state behind the events
    topic (fixed: a failed transaction forgets its memory at once)."""
    rig = await make_rig(LocalDeployment(cluster3, national_secret=NATIONAL_SECRET), unique_prefix, replication=3)
    port = _free_port()
    env = {**rig.env(), "CONSENT_METRICS_PORT": str(port), "CONSENT_STATE_DIR": str(tmp_path / "state")}
    core = CoreProcess(env, tmp_path / "core.log")
    traffic = Traffic(rig.conn, rig.topics.ingress, rig.agents, pause_s=0.1)
    stop = asyncio.Event()
    sender = asyncio.create_task(traffic.run(stop))
    try:
        core.start()
        await wait_progress(rig.conn, rig.topics.events, more=1000)
        await _wait_health(port, 200)
        for node in (1, 2, 3):
            await asyncio.to_thread(cluster3.kill_node, node)
        down = await _wait_health(port, 503)  # waits, says so
        await asyncio.sleep(OUTAGE_S)
        assert core.proc is not None and core.proc.poll() is None  # still the first process: no exit
        await asyncio.to_thread(cluster3.start_nodes, [1, 2, 3])
        await wait_progress(rig.conn, rig.topics.state, more=300, timeout_s=240)
        await _wait_health(port, 200)
        stop.set()
        await sender
        outcome = await check_against_replay(rig.conn, rig.topics, traffic.acked)
        exited = core.proc.poll()
    finally:
        stop.set()
        core.stop()
        await _restore_cluster(cluster3)
    log.warning("full outage outcome down=%s batches=%d failures=%d %s", down, traffic.batches,
                traffic.send_failures, outcome)  # fmt: skip
    if outcome.in_state != outcome.sent:  # say where the core stood (its own log: stage names, no personal data)
        lines = (tmp_path / "core.log").read_text(errors="replace").splitlines()
        log.warning("core log, last warnings:\n%s", "\n".join([x for x in lines if "level=INFO" not in x][-40:]))
    _assert_ledger(outcome)
    assert exited is None and core.starts == 1  # one process from start to end: no crash loop
    assert "Unable to bootstrap" not in "".join(
        line for line in (tmp_path / "core.log").read_text().splitlines() if "Traceback" in line
    )


def _core(rig: Rig, state: Path) -> Core:
    return Core(CoreSettings.load(**rig.settings(), state_dir=str(state)))


async def test_a_rebalance_under_load_restores_only_tails_and_a_restart_only_its_local_store_and_tail(
    rig: Rig, tmp_path: Path
) -> None:
    first, second = _core(rig, tmp_path / "first"), _core(rig, tmp_path / "second")
    traffic = Traffic(rig.conn, rig.topics.ingress, rig.agents, pause_s=0.1)
    stop = asyncio.Event()
    sender = asyncio.create_task(traffic.run(stop))
    restarted: Core | None = None
    try:
        await first.start()
        await first.wait_ready()
        await wait_progress(rig.conn, rig.topics.state, more=1000)
        await second.start()  # rebalance: the partitions split between the two
        await second.wait_ready()
        await wait_progress(rig.conn, rig.topics.state, more=300)
        await first.stop()  # rebalance again: the second takes everything
        await wait_progress(rig.conn, rig.topics.state, more=300)
        await second.stop()
        restarted = _core(rig, tmp_path / "first")  # the first comes back on its own disk and takes everything
        await restarted.start()
        await restarted.wait_ready()
        await wait_progress(rig.conn, rig.topics.state, more=300)
        stop.set()
        await sender
        outcome = await check_against_replay(rig.conn, rig.topics, traffic.acked)
    finally:
        stop.set()
        for core in (first, second, restarted):
            if core is not None:
                await core.stop()
    summary = {
        name: {label: (c.stages[name].assignments, c.stages[name].restores) for label, c in
               (("first", first), ("second", second), ("restarted", restarted)) if c is not None}
        for name in ("verifier", "reconciler")
    }  # fmt: skip
    log.warning("rebalance under load outcome %s restores=%s", outcome, summary)
    _assert_ledger(outcome)
    assert restarted is not None
    for name in ("verifier", "reconciler"):
        for core in (first, second, restarted):
            _assert_no_storm(core.stages[name])
        # the first core read its whole (empty) changelog once; afterwards it kept what it held
        later = first.stages[name].restores[len(first.stages[name].assignments[0]) :]
        assert {kind for _, kind, _ in later} <= {"kept"}, later
        # back on its own disk: the local store plus the tail, for every partition that has a changelog
        back = restarted.stages[name].restores
        assert {p for p, _, _ in back} == set(range(PARTITIONS))
        assert all(kind in ("local", "kept") or read == 0 for _, kind, read in back), back
