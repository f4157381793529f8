"""``consent-broker run`` as an operator runs it: Prometheus metrics over HTTP, clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from broker.infra.local import LocalDeployment
from consent_io import kafka
from tests.factories import BASE_MS, consent, patient
from tests.faults.rig import make_rig
from tests.faults.support import CoreProcess, high_water

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _scrape(port: int, want: str, timeout_s: float = 60) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            text = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            )
            if want in text:
                return text
        except OSError:
            pass
        assert loop.time() < deadline, f"metric {want!r} never appeared"
        await asyncio.sleep(0.5)


@pytest.mark.flaky(reruns=1)  # failed once in three runs after other broker tests in one process; not yet explained
async def test_metrics_endpoint_reports_each_stage_and_sigterm_exits_cleanly(
    deployment: LocalDeployment, unique_prefix: str, tmp_path: Path
) -> None:
    rig = await make_rig(deployment, unique_prefix, agents=1)
    agent = rig.agents[0]
    port = _free_port()
    core = CoreProcess({**rig.env(), "CONSENT_METRICS_PORT": str(port)}, tmp_path / "core.log")
    core.start()
    try:
        producer = kafka.producer(rig.conn, enable_idempotence=True, acks="all")
        await producer.start()
        try:
            batch = agent.batch([agent.event(patient(i), consent(), BASE_MS + i) for i in range(50)])
            await producer.send_and_wait(rig.topics.ingress, batch, key=agent.agent_id.encode())
            await producer.send_and_wait(rig.topics.ingress, b"not a batch", key=b"junk")
        finally:
            await producer.stop()
        text = await _scrape(port, 'broker_stage_records_in_total{stage="reconciler"} 50.0')
        assert 'broker_stage_records_in_total{stage="verifier"} 2.0' in text
        assert 'broker_stage_rejects_total{reason="BAD_MAGIC",stage="verifier"} 1.0' in text
        for name in (
            "broker_stage_batch_seconds_bucket",
            "broker_stage_consumer_lag_records",
            "broker_stage_state_entries",
        ):
            assert name in text
        assert await high_water(rig.conn, rig.topics.state) > 0
    finally:
        assert core.proc is not None
        core.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(core.proc.wait, 40)
    assert code == 0
    log = (tmp_path / "core.log").read_text()
    assert "core stopped" in log
    assert "Traceback" not in log
