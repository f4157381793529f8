"""Edge-agent faults on real services: a Kafka outage with 10,000 events accepted meanwhile, kill -9 of the agent.

The outage test runs its own single-node stack ("edge-outage": Kafka 19300, Mosquitto 11900) so
it can really stop and restart the broker without disturbing the shared test stack.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.infra import Infra, InfraConfig
from broker.infra import process as infra_process
from broker.infra.local import LocalDeployment
from broker.topics import Topic, TopicNames, create_topics
from edge_agent.app import Agent
from edge_agent.config import Settings
from tests.factories import NATIONAL_SECRET
from tests.integration.edge.conftest import (
    EdgeKit,
    assert_exactly_once_in_order,
    consent_docs,
    dead_letter_reasons,
    forget_mqtt_session,
    harness,  # noqa: F401  (fixture)
    http_get,
    http_post,
    kit,  # noqa: F401  (fixture)
    make_bridge,
    nhs_numbers,
    read_all,
    state_total,
)
from tests.integration.pipeline.conftest import Harness

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)

OUTAGE_EVENTS = 10_000  # the acceptance number (edge-agent issue)
OUTAGE_STACK = InfraConfig(name="edge-outage", kafka_port=19300, mqtt_port=11900)


@pytest.fixture(scope="module")
def outage_stack() -> Iterator[Infra]:
    stack = Infra(OUTAGE_STACK)
    stack.up()
    yield stack
    stack.down()


async def _outage_harness(stack: Infra, prefix: str, directory: Path) -> Harness:
    """Topics, ACLs and a harness on the outage stack (secure, like every stack)."""
    deployment = LocalDeployment(stack, national_secret=NATIONAL_SECRET)
    topics = TopicNames(prefix)
    partitioned = [t for t in Topic if t not in (Topic.KEYS, Topic.AUDIT)]
    await create_topics(deployment.operator(), topics, replication=1, partitions=dict.fromkeys(partitioned, 2))
    await deployment.grant(prefix, f"{prefix}-core")
    return Harness.create(deployment, topics, f"{prefix}-core", directory)


def _stop_kafka(stack: Infra) -> None:
    for node in stack.config.kafka_nodes():
        infra_process.stop(node.pid_file)  # SIGTERM: a controlled broker shutdown


async def _wait_state(h: Harness, count: int, timeout_s: float = 300) -> None:
    await h.read(h.topics.state, lambda rs: state_total(rs) >= count, timeout_s=timeout_s)


async def _wait_drained(agent: Agent, timeout_s: float = 300) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while agent.outbox.pending_count:
        assert loop.time() < deadline, f"outbox still holds {agent.outbox.pending_count} events"
        await asyncio.sleep(0.05)


async def test_ten_thousand_events_accepted_while_kafka_is_down_reach_the_state_once_in_order(
    outage_stack: Infra, tmp_path: Path, unique_prefix: str
) -> None:
    h = await _outage_harness(outage_stack, unique_prefix, tmp_path)
    edge = EdgeKit(tmp_path, h)
    agent_id = f"outage-{unique_prefix}"
    settings = await edge.agent_settings(agent_id)  # registers the agent's key while Kafka is up

    await asyncio.to_thread(_stop_kafka, outage_stack)
    agent = await Agent.start(settings)
    try:
        docs = consent_docs(nhs_numbers(200), OUTAGE_EVENTS)
        started = time.monotonic()
        seqs: list[int] = []
        for i in range(0, OUTAGE_EVENTS, 500):
            status, body = await http_post(settings, "/v1/events/batch", {"events": docs[i : i + 500]})
            assert status == 202
            seqs.extend(r["seq"] for r in body["receipts"])
        submit_s = time.monotonic() - started
        assert seqs == list(range(1, OUTAGE_EVENTS + 1))
        _, health = await http_get(settings, "/v1/health")
        assert health["outbox_pending"] == OUTAGE_EVENTS and health["publisher_connected"] is False

        await asyncio.to_thread(outage_stack.start_node, 1)
        back = time.monotonic()
        await h.start_core()
        await _wait_drained(agent)
        drained_s = time.monotonic() - back
        await _wait_state(h, OUTAGE_EVENTS)
        applied_s = time.monotonic() - back
    finally:
        await agent.stop()
        for core in h.cores:
            await core.stop()
    log.warning(
        "edge outage: submitted=%d in %.2fs (%.0f ev/s) | after broker back: outbox drained in %.2fs (%.0f ev/s), "
        "state complete in %.2fs (%.0f ev/s, includes core start-up)",
        OUTAGE_EVENTS, submit_s, OUTAGE_EVENTS / submit_s, drained_s, OUTAGE_EVENTS / drained_s,
        applied_s, OUTAGE_EVENTS / applied_s,
    )  # fmt: skip
    assert state_total(await read_all(h.kafka, h.topics.state)) == OUTAGE_EVENTS
    assert_exactly_once_in_order(await read_all(h.kafka, h.topics.events), agent_id, OUTAGE_EVENTS)
    assert set(dead_letter_reasons(await read_all(h.kafka, h.topics.deadletter))) <= {"REPLAY"}


async def test_mqtt_gateway_events_sent_while_kafka_is_down_are_bridged_once_when_it_returns(
    outage_stack: Infra, tmp_path: Path, unique_prefix: str
) -> None:
    h = await _outage_harness(outage_stack, unique_prefix, tmp_path)
    edge = EdgeKit(tmp_path, h)
    gateway_id, total = f"gw-{unique_prefix}", 2000
    settings = await edge.agent_settings(
        gateway_id, transport="mqtt", batch_max_events=100, linger_ms=0, ack_timeout_s=2
    )
    bridge, bridge_stop = make_bridge(h, backoff_cap_s=2, kafka_timeout_s=5), asyncio.Event()
    (bridge_task,) = await bridge.start(bridge_stop)
    await asyncio.wait_for(bridge.connected.wait(), 30)
    await asyncio.to_thread(_stop_kafka, outage_stack)
    agent = await Agent.start(settings)
    try:
        status, _ = await http_post(settings, "/v1/events/batch", {"events": consent_docs(nhs_numbers(40), total)})
        assert status == 202
        await asyncio.sleep(3.0)  # the gateway publishes and retries; the bridge cannot write to Kafka
        assert agent.outbox.pending_count == total  # so no ack, and nothing leaves the outbox

        await asyncio.to_thread(outage_stack.start_node, 1)
        back = time.monotonic()
        await h.start_core()
        await _wait_drained(agent)
        drained_s = time.monotonic() - back
        await _wait_state(h, total)
    finally:
        await agent.stop()
        bridge_stop.set()
        await bridge_task
        for core in h.cores:
            await core.stop()
        for client_id in (bridge.config.client_id, f"edge-agent-{gateway_id}"):
            await forget_mqtt_session(h.deployment.operator_mqtt(), client_id)
    log.warning("edge mqtt outage: %d events bridged %.2fs after Kafka was back", total, drained_s)
    assert state_total(await read_all(h.kafka, h.topics.state)) == total
    assert_exactly_once_in_order(await read_all(h.kafka, h.topics.events), gateway_id, total)
    assert set(dead_letter_reasons(await read_all(h.kafka, h.topics.deadletter))) <= {"REPLAY"}


class AgentProcess:
    """``edge-agent run --config`` as a child process that can be killed with SIGKILL."""

    def __init__(self, config: Path, log_file: Path) -> None:
        self.config = config
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        exe = Path(sys.executable).parent / "edge-agent"
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen([str(exe), "run", "--config", str(self.config)], stdout=out, stderr=out)
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def _health(port: Settings, timeout_s: float = 60) -> dict[str, object]:
    """The agent's /v1/health once it answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            status, body = await http_get(port, "/v1/health")
            if status == 200:
                return body
        except OSError:
            pass
        assert loop.time() < deadline, "edge agent did not come up"
        await asyncio.sleep(0.05)


async def _pending(port: Settings) -> int:
    return int((await _health(port))["outbox_pending"])  # type: ignore[call-overload]


async def _kill_while_sending(agent: AgentProcess, port: Settings, pending_above: int) -> int:
    """SIGKILL the agent while its publisher is mid-stream (backlog shrinking, not yet empty)."""
    start = await _pending(port)
    while (now := await _pending(port)) >= start:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    assert now > pending_above, "the agent drained before it could be killed mid-stream"
    agent.kill()
    return now


async def test_kill_9_of_the_agent_while_sending_loses_nothing_and_applies_nothing_twice(
    harness: Harness,  # noqa: F811
    kit: EdgeKit,  # noqa: F811
    tmp_path: Path,
) -> None:
    await harness.start_core()
    agent_id = f"kill-{harness.topics.prefix}"
    settings = await kit.agent_settings(agent_id, batch_max_events=10, linger_ms=0)
    agent = AgentProcess(kit.toml(settings), tmp_path / "agent.log")
    port = settings  # the agent's API address and bearer token
    numbers = nhs_numbers(40)
    first, second = 2000, 500
    try:
        agent.start()
        await _health(port)
        status, _ = await http_post(port, "/v1/events/batch", {"events": consent_docs(numbers, first)})
        assert status == 202
        left = await _kill_while_sending(agent, port, pending_above=0)
        agent.start()  # restart: the same outbox, the same chain
        await _health(port)
        status, _ = await http_post(port, "/v1/events/batch", {"events": consent_docs(numbers, second)})
        assert status == 202
        left_again = await _kill_while_sending(agent, port, pending_above=0)
        agent.start()
        while await _pending(port):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await harness.read(harness.topics.state, lambda rs: state_total(rs) >= first + second, timeout_s=180)
    finally:
        agent.stop()
    log.warning("edge kill -9: killed with %d then %d events pending; starts=%d", left, left_again, agent.starts)
    total = first + second
    assert state_total(await read_all(harness.kafka, harness.topics.state)) == total
    assert_exactly_once_in_order(await read_all(harness.kafka, harness.topics.events), agent_id, total)
    assert set(dead_letter_reasons(await read_all(harness.kafka, harness.topics.deadletter))) <= {"REPLAY"}
