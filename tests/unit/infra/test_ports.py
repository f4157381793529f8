"""Issue 13 item 5: every port the project listens on by default lies outside Linux's ephemeral range.

An outgoing connection takes its local port from 32768-60999; a broker restarted on a port in that range
may find it taken and fail with "Address already in use". Each default below, with every port derived from it
(a 3-node stack's client and controller ports), must stay outside.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from broker.commands import demo as demo_command
from broker.demo.day import DEMO_KAFKA_PORT, DEMO_MQTT_PORT
from broker.infra import InfraConfig, process
from broker.infra.kafka import node_layout
from broker.settings import CoreSettings
from edge_agent.config import Settings as EdgeSettings
from loadtests import audit_bench, faults_bench, stack
from tests.conftest import CLUSTER_PORT_OFFSET, DEFAULT_TEST_KAFKA_PORT, DEFAULT_TEST_MQTT_PORT
from tests.faults.test_edge_faults import OUTAGE_STACK


def _kafka_ports(base: int, nodes: int) -> list[int]:
    layout = node_layout(Path("/nonexistent"), base, nodes)
    return [port for node in layout for port in (node.port, node.controller_port)]


def _stack_ports(kafka: int, mqtt: int, nodes: int = 3) -> list[int]:
    return [*_kafka_ports(kafka, nodes), mqtt]


def _click_default(name: str) -> int:
    (param,) = [p for p in demo_command.command.params if p.name == name]
    assert isinstance(param.default, int)
    return param.default


def _default(settings: type, name: str) -> int:
    (value,) = [f.default for f in dataclasses.fields(settings) if f.name == name]
    assert isinstance(value, int)
    return value


DEFAULTS: dict[str, list[int]] = {
    "infra default": _stack_ports(InfraConfig().kafka_port, InfraConfig().mqtt_port),
    "tests": _stack_ports(DEFAULT_TEST_KAFKA_PORT, DEFAULT_TEST_MQTT_PORT),
    "tests, 3-node cluster": _stack_ports(
        DEFAULT_TEST_KAFKA_PORT + CLUSTER_PORT_OFFSET, DEFAULT_TEST_MQTT_PORT + CLUSTER_PORT_OFFSET
    ),
    "tests, infra CLI stack": _stack_ports(DEFAULT_TEST_KAFKA_PORT + 50, DEFAULT_TEST_MQTT_PORT + 50),
    "edge outage test": _stack_ports(OUTAGE_STACK.kafka_port, OUTAGE_STACK.mqtt_port),
    "demo": _stack_ports(DEMO_KAFKA_PORT, DEMO_MQTT_PORT),
    "demo command": _stack_ports(_click_default("kafka_port"), _click_default("mqtt_port")),
    "bench": _stack_ports(stack.BENCH_KAFKA_PORT, stack.BENCH_MQTT_PORT),
    "bench plaintext": _stack_ports(stack.PLAIN_KAFKA_PORT, stack.PLAIN_MQTT_PORT),
    "bench faults": _stack_ports(faults_bench.FAULTS_KAFKA_PORT, faults_bench.FAULTS_MQTT_PORT),
    "bench audit": _stack_ports(audit_bench.AUDIT_KAFKA_PORT, audit_bench.AUDIT_MQTT_PORT),
    "core": [_default(CoreSettings, "http_port"), _default(CoreSettings, "mqtt_port")],
    "edge agent": [_default(EdgeSettings, "http_port"), _default(EdgeSettings, "mqtt_port")],
}


def test_the_three_broker_benches_use_ports_of_their_own() -> None:
    """bench, bench-faults and bench-audit once shared 29992: a second one then found its ports taken."""
    kafka = [stack.BENCH_KAFKA_PORT, faults_bench.FAULTS_KAFKA_PORT, audit_bench.AUDIT_KAFKA_PORT]
    assert len({p // 100 for p in kafka}) == len(kafka)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_default_ports_lie_outside_the_ephemeral_range(name: str) -> None:
    inside = [p for p in DEFAULTS[name] if p in process.EPHEMERAL_PORTS]
    assert inside == [], f"{name}: {inside} within 32768-60999"


def test_the_ephemeral_range_is_linux_default() -> None:
    assert (process.EPHEMERAL_PORTS.start, process.EPHEMERAL_PORTS.stop - 1) == (32768, 60999)


def test_a_port_taken_is_waited_for_then_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "BIND_POLL_S", 0.01)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not process.port_bindable(port)
        with pytest.raises(process.PortBusyError, match=rf"Kafka node 1 cannot bind 127.0.0.1:{port}: address"):
            process.wait_port_free(port, "Kafka node 1", timeout_s=0.05)
    assert process.port_bindable(port)
    process.wait_port_free(port, "Kafka node 1", timeout_s=0.05)  # free: returns at once


def test_an_ephemeral_port_taken_says_to_choose_one_outside_the_range() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # the kernel picks from the ephemeral range
        holder.listen()
        port = holder.getsockname()[1]
        if port not in process.EPHEMERAL_PORTS:
            pytest.fail(f"the kernel gave {port}, outside 32768-60999: ip_local_port_range differs here")
        with pytest.raises(process.PortBusyError, match="ephemeral range 32768-60999"):
            process.wait_port_free(port, "Mosquitto", timeout_s=0.0)
