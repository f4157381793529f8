"""``consent-broker demo`` (behind ``make demo``) plays the whole day and leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.demo.day import DEMO_KAFKA_PORT, DEMO_MQTT_PORT
from broker.infra import process

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_shows_permit_deny_redaction_offline_access_log_audit_and_reports(tmp_path: Path) -> None:
    kafka_port = int(os.environ.get("CONSENT_DEMO_KAFKA_PORT", DEMO_KAFKA_PORT))  # the CLI reads the same
    mqtt_port = int(os.environ.get("CONSENT_DEMO_MQTT_PORT", DEMO_MQTT_PORT))
    result = subprocess.run(
        [sys.executable, "-m", "broker", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Hospital clerk with no care relationship, Alice: DENY" in out
    # the secure stack's doors, shown as part of the story
    assert "Anyone on the network without an access token, break-glass, Dan: refused 401 AUTH_MISSING" in out
    assert 'asking as organisation "EVIL", break-glass, Dan: refused 403 AUTH_ORGANISATION' in out
    assert "(CONSULTANT), Dan: refused 403 AUTH_ROLE" in out
    assert "decision API on https://127.0.0.1:" in out
    assert "Researcher with s251 approval, Bob (national opt-out): DENY" in out
    assert "Hospital consultant, direct care, Carol (type 1 objector): PERMIT" in out
    assert "obligations: REDACT_CONTACT, REDACT_LOCATION" in out
    assert "Care-home worker via the care home's replica, Dan: PERMIT_WITH_OBLIGATIONS (offline" in out
    assert "RX1  ED_DOCTOR  BTG" in out  # the shielded child's access log lists the break-glass access
    assert "verified against the pinned log key and the witness" in out  # the Merkle log, witnessed (issue 15)
    assert "An audit witness runs as its own process" in out and "The audit log key was generated" in out
    assert "B82057" in out and "ALERT_HIGH" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "breaches.csv", "breaches.json", "disclosures.csv", "disclosures.json",
        "objections-funnel.png", "objections.csv", "objections.json",
    ]  # fmt: skip
    assert (tmp_path / "objections-funnel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not process.port_open(kafka_port) and not process.port_open(mqtt_port)
