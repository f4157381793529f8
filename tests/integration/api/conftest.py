"""Fixtures for the API on the real broker: the pipeline harness, a pseudonym secret and the CLI."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.infra.local import LocalDeployment
from broker.topics import TopicNames
from tests.integration.pipeline.conftest import Harness

CLI = str(Path(sys.executable).with_name("consent-broker"))


@pytest.fixture
async def harness(
    deployment: LocalDeployment, topic_names: TopicNames, app_id: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    h = Harness.create(deployment, topic_names, app_id, tmp_path)
    yield h
    for core in h.cores:
        await core.stop()


@pytest.fixture(autouse=True)
def _cli_as_operator(deployment: LocalDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """``consent-broker`` subprocesses reach the secure test Kafka with the operator's credentials."""
    monkeypatch.setenv("CONSENT_CLI_TLS_DIR", str(deployment.infra.config.pki_dir / "operator"))


@pytest.fixture
def secret_file(deployment: LocalDeployment) -> Path:
    """The core's national pseudonym secret (tests.factories.NATIONAL_SECRET, hex, mode 0600): the agents
    (SimAgent) key their events by their site's pseudonyms of the same people, which the core translates."""
    return deployment.pseudonym_secret_file()


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


async def cli(*args: str) -> CliResult:
    proc = await asyncio.create_subprocess_exec(
        CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())
