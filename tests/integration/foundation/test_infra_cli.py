"""``consent-broker infra up|status|down`` on a stack of its own: idempotent, leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.infra import process
from tests.conftest import TEST_KAFKA_PORT, TEST_MQTT_PORT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CONSENT_INFRA_NAME": "cli-test",
        "CONSENT_KAFKA_PORT": str(TEST_KAFKA_PORT + 50),
        "CONSENT_MQTT_PORT": str(TEST_MQTT_PORT + 50),
    }
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _pids(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.pid")]


def test_infra_up_twice_status_then_down_leaves_no_process() -> None:
    first = _cli("infra", "up")
    assert first.returncode == 0, first.stderr
    second = _cli("infra", "up")  # harmless when already up
    assert second.returncode == 0, second.stderr
    assert f"127.0.0.1:{TEST_KAFKA_PORT + 50}" in second.stdout

    status = _cli("infra", "status")
    assert status.returncode == 0
    assert "kafka-1      up" in status.stdout
    assert "mosquitto    up" in status.stdout
    assert "Apache Kafka 4.3.1" in status.stdout

    from broker.infra import InfraConfig

    root = InfraConfig(name="cli-test").root
    pid_files = _pids(root)
    pids = [int(p.read_text()) for p in pid_files]
    assert len(pids) == 2

    down = _cli("infra", "down")
    assert down.returncode == 0
    assert "kafka-1" in down.stdout and "mosquitto" in down.stdout
    assert _pids(root) == []
    for pid in pids:
        state = Path(f"/proc/{pid}/stat")
        assert not state.exists() or state.read_text().split(") ", 1)[1][0] == "Z"
    assert not process.port_open(TEST_KAFKA_PORT + 50)
    assert _cli("infra", "status").returncode == 1
