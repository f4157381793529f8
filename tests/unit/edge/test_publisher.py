from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher, PublisherSettings
from edge_agent.wire import AvroEventCodec
from tests.fakes import FakeSigner, FlakyTransport, RecordingSleep, draft

SETTINGS = PublisherSettings(batch_max_events=7, linger_ms=0, backoff_base_s=0.5, backoff_cap_s=60.0)


async def open_outbox(path: Path) -> Outbox:
    return await Outbox.open(
        path / "o.db", agent_id="agent-1", site="A12345", codec=AvroEventCodec(), cap_bytes=1 << 30
    )


async def drain(publisher: Publisher, outbox: Outbox) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    for _ in range(1000):
        if outbox.pending_count == 0:
            break
        await asyncio.sleep(0.001)
    stop.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_failing_transport_loses_nothing_doubles_nothing_keeps_order(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    await outbox.submit_many([draft(i) for i in range(50)])
    transport = FlakyTransport(failures=4)
    sleep = RecordingSleep()
    publisher = Publisher(outbox, FakeSigner(), transport, SETTINGS, sleep=sleep, unit_random=lambda: 1.0)

    await drain(publisher, outbox)
    await outbox.close()

    assert transport.delivered == list(range(1, 51))
    assert publisher.published_total == 50
    assert publisher.failures_total == 4
    assert sleep.delays == [0.5, 1.0, 2.0, 4.0]


async def test_ack_lost_after_delivery_resends_same_seqs_in_order(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    await outbox.submit_many([draft(i) for i in range(10)])
    transport = FlakyTransport(failures=2, deliver_then_fail=True)
    publisher = Publisher(outbox, FakeSigner(), transport, SETTINGS, sleep=RecordingSleep(), unit_random=lambda: 0.0)

    await drain(publisher, outbox)

    # the core dedupes on (agent, seq): what matters is every seq arrives, in order, with the same number
    assert transport.delivered == [1, 2, 3, 4, 5, 6, 7] * 3 + [8, 9, 10]
    assert outbox.pending_count == 0
    await outbox.close()


async def test_rows_are_deleted_only_after_ack(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    await outbox.submit_many([draft(i) for i in range(3)])
    transport = FlakyTransport(failures=1)
    publisher = Publisher(outbox, FakeSigner(), transport, SETTINGS, sleep=RecordingSleep())

    with pytest.raises(Exception, match="unreachable"):
        await publisher.publish_once()
    assert outbox.pending_count == 3
    assert await publisher.publish_once() == 3
    assert outbox.pending_count == 0
    assert await publisher.publish_once() == 0
    await outbox.close()


async def test_new_submissions_wake_an_idle_publisher(tmp_path: Path) -> None:
    outbox = await open_outbox(tmp_path)
    transport = FlakyTransport()
    publisher = Publisher(outbox, FakeSigner(), transport, PublisherSettings(linger_ms=0, idle_poll_s=30.0))
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    await asyncio.sleep(0.01)
    await outbox.submit(draft(0))
    for _ in range(500):
        if transport.delivered:
            break
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await outbox.close()

    assert transport.delivered == [1]
