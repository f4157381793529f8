from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest

from edge_agent.errors import AckOutOfRangeError, OutboxClosedError, OutboxFullError, OutboxOwnerError
from edge_agent.outbox import Outbox
from edge_agent.outbox_store import GENESIS_HASH, OutboxStore
from edge_agent.wire import AvroEventCodec
from tests.fakes import draft

CODEC = AvroEventCodec()
BIG_CAP = 1 << 30


async def open_outbox(path: Path, cap: int = BIG_CAP, agent_id: str = "agent-1") -> Outbox:
    return await Outbox.open(path / "outbox.db", agent_id=agent_id, site="A12345", codec=CODEC, cap_bytes=cap)


def assert_chain(rows: list[bytes], first_seq: int, prev: bytes) -> None:
    for i, data in enumerate(rows):
        event = CODEC.decode(data)
        assert event.seq == first_seq + i
        assert event.prev_hash == prev
        prev = hashlib.sha256(data).digest()


async def test_committed_submissions_survive_reopen_in_order(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    receipts = await asyncio.gather(*(outbox.submit(draft(i)) for i in range(20)))
    await outbox.close()

    reopened = await open_outbox(tmp_path)
    rows = await reopened.pending(100)
    await reopened.close()

    assert sorted(r.seq for r in receipts) == list(range(1, 21))
    assert [r.seq for r in rows] == list(range(1, 21))
    assert {r.event_id for r in rows} == {f"{i:032x}" for i in range(20)}
    assert_chain([r.data for r in rows], 1, GENESIS_HASH)


async def test_concurrent_submissions_are_group_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    transactions: list[int] = []
    original = OutboxStore.commit_groups

    def counting(self: OutboxStore, groups: list[list[object]], cap: int) -> object:
        transactions.append(len(groups))
        return original(self, groups, cap)  # type: ignore[arg-type]

    monkeypatch.setattr(OutboxStore, "commit_groups", counting)
    outbox = await open_outbox(tmp_path)
    receipts = await asyncio.gather(*(outbox.submit(draft(i)) for i in range(300)))
    await outbox.close()

    assert sorted(r.seq for r in receipts) == list(range(1, 301))
    assert sum(transactions) == 300
    assert len(transactions) < 300 / 10  # many submissions per transaction


async def test_seq_and_chain_continue_after_ack_and_restart(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    await outbox.submit_many([draft(i) for i in range(5)])
    last = (await outbox.pending(10))[-1]
    assert await outbox.ack_upto(5) == 5
    await outbox.close()

    reopened = await open_outbox(tmp_path)
    receipts = await reopened.submit_many([draft(i) for i in range(5, 8)])
    rows = await reopened.pending(10)
    await reopened.close()

    assert [r.seq for r in receipts] == [6, 7, 8]
    assert [r.seq for r in rows] == [6, 7, 8]
    assert_chain([r.data for r in rows], 6, hashlib.sha256(last.data).digest())


async def test_reopen_without_close_recovers_head_like_a_crash(tmp_path: Path) -> None:
    crashed = await open_outbox(tmp_path)
    await crashed.submit_many([draft(i) for i in range(3)])
    # no close(): the second instance must derive next seq and last hash from the file alone
    survivor = await open_outbox(tmp_path)
    receipts = await survivor.submit_many([draft(3)])
    rows = await survivor.pending(10)
    await survivor.close()
    await crashed.close()

    assert receipts[0].seq == 4
    assert_chain([r.data for r in rows], 1, GENESIS_HASH)


async def test_corrupt_row_is_quarantined_and_chain_repaired(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    await outbox.submit_many([draft(i) for i in range(5)])
    await outbox.close()
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        db.execute("UPDATE outbox SET data = CAST(substr(data, 1, 20) || x'FF' AS BLOB) WHERE seq = 3")

    reopened = await open_outbox(tmp_path)
    rows = await reopened.pending(10)
    quarantined = reopened.quarantined_count
    await reopened.close()

    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert [r.event_id for r in rows] == [f"{i:032x}" for i in (0, 1, 3, 4)]
    assert_chain([r.data for r in rows], 1, GENESIS_HASH)
    assert quarantined == 1
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        assert db.execute("SELECT seq, event_id, reason FROM quarantine").fetchall() == [
            (3, f"{2:032x}", "CHECKSUM_MISMATCH")
        ]


async def test_disk_cap_refuses_new_events_and_keeps_old_ones(tmp_path: Path) -> None:
    probe = await open_outbox(tmp_path / "probe")
    empty = (await probe.stats()).used_bytes
    await probe.close()
    cap = empty + 20 * 1024
    outbox = await open_outbox(tmp_path, cap=cap)
    accepted = 0
    with pytest.raises(OutboxFullError) as refused:
        for i in range(10_000):
            await outbox.submit(draft(i))
            accepted += 1
    stats = await outbox.stats()
    rows = await outbox.pending(100_000)
    await outbox.close()

    assert refused.value.reason == "OUTBOX_FULL"
    assert accepted > 10
    assert stats.full is True
    assert stats.pending == accepted
    assert [r.seq for r in rows] == list(range(1, accepted + 1))


async def test_batch_over_the_cap_is_refused_whole(tmp_path: Path) -> None:
    probe = await open_outbox(tmp_path / "probe")
    empty = (await probe.stats()).used_bytes
    await probe.close()
    outbox = await open_outbox(tmp_path, cap=empty + 8 * 1024)
    with pytest.raises(OutboxFullError):
        await outbox.submit_many([draft(i) for i in range(500)])
    receipt = await outbox.submit(draft(999))
    await outbox.close()

    assert receipt.seq == 1


async def test_alarm_clears_once_acks_free_space(tmp_path: Path) -> None:
    probe = await open_outbox(tmp_path / "probe")
    empty = (await probe.stats()).used_bytes
    await probe.close()
    outbox = await open_outbox(tmp_path, cap=empty + 20 * 1024)
    with pytest.raises(OutboxFullError):
        for i in range(10_000):
            await outbox.submit(draft(i))
    assert outbox.full
    await outbox.ack_upto(outbox.pending_count)
    receipt = await outbox.submit(draft(10_001))
    await outbox.close()

    assert outbox.full is False
    assert receipt.seq > 1


async def test_outbox_belongs_to_one_agent(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    await outbox.close()
    with pytest.raises(OutboxOwnerError, match="belongs to agent"):
        await open_outbox(tmp_path, agent_id="agent-2")


async def test_closed_outbox_refuses_submissions(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    await outbox.close()
    with pytest.raises(OutboxClosedError):
        await outbox.submit(draft(0))


async def test_ack_beyond_last_seq_is_an_error(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    await outbox.submit(draft(0))
    with pytest.raises(AckOutOfRangeError, match="last assigned seq is 1"):
        await outbox.ack_upto(2)
    assert await outbox.ack_upto(1) == 1
    assert await outbox.ack_upto(1) == 0
    await outbox.close()
