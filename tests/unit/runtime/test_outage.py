"""Issue 13 item 4: Kafka unreachable at start or later makes a stage wait (unhealthy), never exit."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from broker import runtime, stage
from broker.health import HealthServer, health_document
from broker.pipeline import ReconcilerLogic
from broker.runtime import Core
from broker.settings import CoreSettings
from broker.stage import StageConfig, TransactionalStage
from broker.topics import TopicNames
from consent_io import kafka as kafka_io
from consent_io.connection import KafkaConnection


class _Unreachable:
    """A consumer whose start fails as aiokafka's does when no broker answers."""

    starts = 0
    tried_five_times = asyncio.Event()

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def start(self) -> None:
        type(self).starts += 1
        if type(self).starts >= 5:
            type(self).tried_five_times.set()
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1, <AddressFamily.AF_INET: 2>)]")

    async def stop(self) -> None:
        return None


async def test_a_stage_waits_with_backoff_while_kafka_is_unreachable_and_stops_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_io, "consumer", lambda *a, **k: _Unreachable())
    monkeypatch.setattr(stage, "backoff_delay", lambda attempt, base, cap: 0.01)
    _Unreachable.starts = 0
    _Unreachable.tried_five_times = asyncio.Event()
    s = TransactionalStage(StageConfig(KafkaConnection("127.0.0.1:1"), "g", "t"), ReconcilerLogic(TopicNames("p")))
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    await asyncio.wait_for(_Unreachable.tried_five_times.wait(), 10)
    assert not task.done()  # still waiting: no exception, no exit
    assert not s.healthy
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_the_core_waits_for_kafka_at_start_and_reports_unhealthy_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "backoff_delay", lambda attempt, base, cap: 0.01)
    core = Core(CoreSettings(stages=()))
    attempts = 0

    async def check_topics() -> bool:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise KafkaConnectionError("Unable to bootstrap")
        return True

    monkeypatch.setattr(core, "_check_topics", check_topics)
    await core.start()
    assert attempts == 4
    assert core.stage_health() == {"kafka": True}
    await core.stop()


async def test_a_core_stopped_while_waiting_for_kafka_returns_without_starting_stages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "backoff_delay", lambda attempt, base, cap: 0.01)
    core = Core(CoreSettings(stages=("reconciler",), kafka_security="PLAINTEXT"))

    async def unreachable() -> bool:
        core.stop_event.set()
        raise KafkaConnectionError("Unable to bootstrap")

    monkeypatch.setattr(core, "_check_topics", unreachable)
    await core.start()
    assert core.stages == {} and core.stage_health() == {"kafka": False}
    await core.stop()


def test_health_is_true_only_when_every_stage_is() -> None:
    assert health_document({"kafka": True, "verifier": True}) == (
        True,
        json.dumps({"healthy": True, "stages": {"kafka": True, "verifier": True}}).encode(),
    )
    assert not health_document({"kafka": True, "verifier": False})[0]
    assert not health_document({})[0]


def test_the_health_endpoint_answers_503_then_200_and_serves_metrics_beside() -> None:
    state = {"kafka": False}
    server = HealthServer(0, lambda: state)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/health", timeout=5)
        assert refused.value.code == 503
        assert json.loads(refused.value.read()) == {"healthy": False, "stages": {"kafka": False}}
        state["kafka"] = True
        with urllib.request.urlopen(f"{url}/health", timeout=5) as ok:
            assert ok.status == 200
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as metrics:
            assert b"broker_core_healthy" in metrics.read()
    finally:
        server.stop()
