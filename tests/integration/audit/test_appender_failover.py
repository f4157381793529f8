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
    def __init__(
        self, rig: AuditRig, name: str, out: Path, requests: str | None = None, tree_dir: Path | None = None
    ) -> None:
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
            **({"requests": requests} if requests else {}),
            **({"tree_dir": str(tree_dir)} if tree_dir else {}),
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

    def requested(self) -> list[str]:
        return [line.split()[1] for line in self.lines() if line.startswith("REQ ")]

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


async def test_kill_9_then_the_killed_host_takes_the_log_back_from_its_saved_point(
    rig: AuditRig, tmp_path: Path
) -> None:
    """Issue 16: hosts keep their tree and resume point on disk. The holder is killed (its files and saved point
    are up to a second behind what it committed), the standby takes over, then stops; the killed host starts
    again, resumes from its saved point, reads only the tail (its own last batches and all of the other's), and
    appends on: the log verifies and every acknowledged append is in it once."""
    a_dir, b_dir = tmp_path / "a-tree", tmp_path / "b-tree"
    active, standby = (
        Proc(rig, "a", tmp_path / "a.out", tree_dir=a_dir),
        Proc(rig, "b", tmp_path / "b.out", tree_dir=b_dir),
    )
    again = Proc(rig, "c", tmp_path / "c.out", tree_dir=a_dir)
    try:
        await _failover(rig, active, standby)
        assert (a_dir / "state.json").exists()
        total = len(await rig.lines())
        await again.start()
        await again.wait_for("ACTIVE")
        await again.wait_for("ACK ", 50)
        assert again.proc is not None
        again.proc.send_signal(signal.SIGTERM)
        await again.proc.wait()
        assert "STOPPED" in again.lines()
    finally:
        for p in (active, standby, again):
            if p.proc is not None and p.proc.returncode is None:
                p.proc.kill()
                await p.proc.wait()
    resumed = next(line.split() for line in again.lines() if line.startswith("RESUMED "))
    at, read = int(resumed[1]), int(resumed[2])
    assert at > 0  # resumed, not restored from the start
    assert read < total  # only the tail
    stored = parse_log(await rig.lines())
    assert [e.index for e in stored.entries] == list(range(len(stored.entries)))
    counts = collections.Counter(AuditRecord.from_bytes(e.record).accessor_id for e in stored.entries)
    assert all(n == 1 for n in counts.values())
    assert all(counts[x] == 1 for x in [*active.acked(), *standby.acked(), *again.acked()])
    log.warning("resume after kill -9 at=%d read=%d of=%d", at, read, total)


async def test_kill_9_of_the_holder_while_two_instances_write_audit_requests_each_is_appended_once(
    rig: AuditRig, tmp_path: Path
) -> None:
    """Issue 16: both instances write requests all along; the holder (appending them, offsets in its
    transactions) is killed; the other takes over from the committed offsets: every acknowledged request is
    in the log exactly once and the log verifies."""
    a = Proc(rig, "a", tmp_path / "a.out", requests=rig.names.audit_requests)
    b = Proc(rig, "b", tmp_path / "b.out", requests=rig.names.audit_requests)
    try:
        await a.start()
        await a.wait_for("ACTIVE")
        await b.start()
        await a.wait_for("REQ ", 150)
        await b.wait_for("REQ ", 150)
        assert "ACTIVE" not in b.lines()
        assert a.proc is not None and b.proc is not None
        os.kill(a.proc.pid, signal.SIGKILL)
        await a.proc.wait()
        acked_a = a.requested()
        await b.wait_for("ACTIVE")
        before = len(b.requested())
        await b.wait_for("REQ ", before + 100)
        b.proc.send_signal(signal.SIGUSR1)
        await b.wait_for("QUIET")
        acked_b = b.requested()
        wanted = set(acked_a) | set(acked_b)

        async def appended() -> collections.Counter[str]:
            stored = parse_log(await rig.lines())
            return collections.Counter(AuditRecord.from_bytes(e.record).accessor_id for e in stored.entries)

        for _ in range(240):  # up to about 2 minutes for the new holder to move the backlog
            if wanted <= set(await appended()):
                break
            await asyncio.sleep(0.5)
        b.proc.send_signal(signal.SIGTERM)
        await b.proc.wait()
        assert "STOPPED" in b.lines()
    finally:
        for p in (a, b):
            if p.proc is not None and p.proc.returncode is None:
                p.proc.kill()
                await p.proc.wait()
    result = await rig.verify()
    assert result.ok, [p.describe() for p in result.problems]
    stored = parse_log(await rig.lines())
    counts = collections.Counter(AuditRecord.from_bytes(e.record).accessor_id for e in stored.entries)
    assert [e.index for e in stored.entries] == list(range(len(stored.entries)))
    assert all(n == 1 for n in counts.values()), [k for k, n in counts.items() if n > 1][:5]
    assert wanted <= set(counts)  # every acknowledged request, whoever wrote it and whoever held the log
    log.warning("requests failover acked_a=%d acked_b=%d entries=%d", len(acked_a), len(acked_b), len(stored.entries))
