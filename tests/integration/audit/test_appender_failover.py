"""kill -9 of the active audit appender under load: the standby takes over, the log verifies, and every
append acknowledged before the kill is in the log exactly once."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import sys
from pathlib import Path

import orjson
import pytest

from broker.audit import AuditRecord, parse_log
from tests.integration.audit.conftest import AuditRig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)


class Proc:
    def __init__(self, rig: AuditRig, name: str, out: Path) -> None:
        pki = rig.deployment.infra.pki
        files = pki.files("core.api")
        cfg = {
            "bootstrap": rig.deployment.infra.config.bootstrap,
            "ca": str(pki.ca_file),
            "cert": str(files.cert_file),
            "key": str(files.key_file),
            "topic": rig.names.audit,
            "origin": rig.origin,
            "key_file": str(rig.key_file),
            "app_id": rig.app_id,
            "witnesses": [[c.url, c.key.vkey()] for c in rig.clients],
            "name": name,
        }
        self.out = out
        self._file = out.open("wb")
        self.proc: asyncio.subprocess.Process | None = None
        self.cfg = orjson.dumps(cfg).decode()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.audit.appender_proc", self.cfg,
            stdout=self._file, stderr=asyncio.subprocess.STDOUT, cwd=str(Path(__file__).parents[3]),
        )  # fmt: skip

    def lines(self) -> list[str]:
        return self.out.read_text(errors="replace").splitlines()

    def acked(self) -> list[str]:
        return [line.split()[1] for line in self.lines() if line.startswith("ACK ")]

    async def wait_for(self, predicate: str, count: int = 1, within_s: float = 120) -> None:
        async with asyncio.timeout(within_s):
            while sum(1 for line in self.lines() if line.startswith(predicate)) < count:
                assert self.proc is not None and self.proc.returncode is None, self.lines()[-20:]
                await asyncio.sleep(0.2)


async def test_kill_9_of_the_active_appender_standby_takes_over_nothing_lost_nothing_twice(
    rig: AuditRig, tmp_path: Path
) -> None:
    active, standby = Proc(rig, "a", tmp_path / "a.out"), Proc(rig, "b", tmp_path / "b.out")
    try:
        await _failover(rig, active, standby)
    finally:
        for p in (active, standby):
            if p.proc is not None and p.proc.returncode is None:
                p.proc.kill()
                await p.proc.wait()


async def _failover(rig: AuditRig, active: Proc, standby: Proc) -> None:
    await active.start()
    await active.wait_for("ACTIVE")
    await standby.start()
    await active.wait_for("ACK ", 150)
    assert "ACTIVE" not in standby.lines()  # the standby waits while the active one holds the log
    assert active.proc is not None
    os.kill(active.proc.pid, signal.SIGKILL)
    await active.proc.wait()
    acked_before_kill = active.acked()
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    await standby.wait_for("ACTIVE")
    took_over_s = loop.time() - killed_at
    await standby.wait_for("ACK ", 100)
    assert standby.proc is not None
    standby.proc.send_signal(signal.SIGTERM)
    await standby.proc.wait()
    assert "STOPPED" in standby.lines()

    result = await rig.verify()
    assert result.ok, [p.describe() for p in result.problems]
    stored = parse_log(await rig.lines())
    counts = collections.Counter(AuditRecord.from_bytes(e.record).accessor_id for e in stored.entries)
    assert [e.index for e in stored.entries] == list(range(len(stored.entries)))
    assert all(counts[a] == 1 for a in acked_before_kill)
    assert all(n == 1 for n in counts.values())
    assert all(counts[b] == 1 for b in standby.acked())
    log.warning("appender failover acked_a=%d acked_b=%d entries=%d takeover_s=%.1f",
                len(acked_before_kill), len(standby.acked()), len(stored.entries), took_over_s)  # fmt: skip
