"""The demo's moving parts: the core in-process, edge agents in-process, and a follower of the state topic."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from consent_io.connection import KafkaConnection
from consent_io.kafka import KafkaTopicReader
from consent_rules.state import PatientState
from edge_agent.api_auth import generate_token_file
from edge_agent.app import Agent
from edge_agent.config import Settings
from edge_agent.wire import generate_signing_key

__all__ = ["AgentHandle", "StateFollower", "free_port", "wait_sent"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class AgentHandle:
    """One edge agent (its own data dir, signing key, API token and HTTP port) that can go offline and come back.

    ``settings`` carries the agent's TLS files (certificate CN = agent id) from the deployment; the API token
    (0600, in the agent's data dir) is what the site's clinical system sends as ``Authorization: Bearer``.
    """

    settings: Settings
    public_key: bytes
    token: bytes
    agent: Agent | None = None

    @classmethod
    def create(cls, workdir: Path, agent_id: str, site: str, **settings: Any) -> AgentHandle:
        data = workdir / agent_id
        data.mkdir(parents=True, exist_ok=True)
        key_file = data / "signing.key"
        public = generate_signing_key(key_file)
        token_file = data / "api-token"
        token = generate_token_file(token_file)
        s = Settings(
            agent_id=agent_id,
            site=site,
            data_dir=data,
            signing_key_file=key_file,
            api_token_file=token_file,
            http_port=free_port(),
            **settings,
        )
        return cls(s, public, token)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    @property
    def headers(self) -> dict[str, str]:
        """What the site's clinical system sends with every call to its agent."""
        return {"Authorization": f"Bearer {self.token.decode()}"}

    async def start(self, **overrides: Any) -> None:
        self.settings = replace(self.settings, **overrides)
        self.agent = await Agent.start(self.settings)

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()
            self.agent = None

    async def submit(self, session: aiohttp.ClientSession, kind: str, payload: dict[str, Any], nhs: str | None) -> int:
        body: dict[str, Any] = {"type": kind, "payload": payload}
        if nhs is not None:
            body["nhs_number"] = nhs
        async with session.post(f"{self.url}/v1/events", json=body, headers=self.headers) as response:
            answer = await response.json()
            if response.status != 202:
                raise RuntimeError(f"{self.settings.agent_id} refused {kind}: {answer}")
            seq: int = answer["seq"]
            return seq


@dataclass
class StateFollower:
    """Follows the compacted state topic (read_committed) into memory, for waiting on propagation."""

    kafka: KafkaConnection
    topic: str
    states: dict[str, PatientState] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reader = KafkaTopicReader(self.kafka, self.topic)
        await reader.start()
        self._task = asyncio.create_task(self._follow(reader))

    async def _follow(self, reader: KafkaTopicReader) -> None:
        try:
            while True:
                for records in (await reader.fetch(timeout_ms=200)).values():
                    for r in records:
                        if r.key is not None and r.value is not None:
                            self.states[r.key.decode()] = PatientState.from_bytes(r.value)
        finally:
            await reader.stop()

    def applied(self) -> int:
        return sum(s.version for s in self.states.values())

    async def wait_for(self, total: int, timeout_s: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.applied() < total:
            if loop.time() > deadline:
                raise TimeoutError(f"state holds {self.applied()} of {total} events after {timeout_s:.0f}s")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def wait_sent(handle: AgentHandle, timeout_s: float = 30.0) -> None:
    """Until the agent's outbox is empty (every event acknowledged end to end)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    assert handle.agent is not None
    while handle.agent.outbox.pending_count > 0:
        if loop.time() > deadline:
            raise TimeoutError(f"{handle.settings.agent_id} still has {handle.agent.outbox.pending_count} pending")
        await asyncio.sleep(0.1)
