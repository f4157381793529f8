"""kill -9 during submissions: every acknowledged event is on disk, the chain stays gap-free."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from edge_agent.outbox import Outbox
from edge_agent.outbox_store import GENESIS_HASH
from edge_agent.wire import AvroEventCodec
from tests.fakes import draft

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from edge_agent.outbox import Outbox
    from edge_agent.wire import AvroEventCodec
    from tests.fakes import draft

    async def main(path):
        outbox = await Outbox.open(path, agent_id="agent-1", site="A12345", codec=AvroEventCodec(), cap_bytes=1 << 30)
        i = 0
        while True:
            receipts = await asyncio.gather(*(outbox.submit(draft(i + k)) for k in range(20)))
            i += 20
            for r in receipts:
                sys.stdout.write(f"{r.event_id} {r.seq}\\n")
            sys.stdout.flush()

    asyncio.run(main(Path(sys.argv[1])))
    """
)


async def read_acknowledged(proc: asyncio.subprocess.Process, wanted: int) -> list[tuple[str, int]]:
    acked: list[tuple[str, int]] = []
    assert proc.stdout is not None
    while len(acked) < wanted:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        event_id, seq = line.decode().split()
        acked.append((event_id, int(seq)))
    return acked


async def test_acknowledged_events_survive_kill_9_and_seq_continues(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, str(path), stdout=subprocess.PIPE, env=env)
    acked = await read_acknowledged(proc, 500)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()

    outbox = await Outbox.open(path, agent_id="agent-1", site="A12345", codec=AvroEventCodec(), cap_bytes=1 << 30)
    rows = await outbox.pending(1_000_000)
    after = await outbox.submit(draft(10**6))
    new_row = (await outbox.pending(1_000_000))[-1]
    codec = AvroEventCodec()
    await outbox.close()

    on_disk = {(r.event_id, r.seq) for r in rows}
    assert set(acked) <= on_disk  # nothing acknowledged was lost
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))  # gap-free
    prev = GENESIS_HASH
    for r in rows:
        assert codec.decode(r.data).prev_hash == prev
        prev = hashlib.sha256(r.data).digest()
    assert after.seq == len(rows) + 1
    assert codec.decode(new_row.data).prev_hash == prev
