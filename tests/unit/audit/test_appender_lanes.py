"""Issue 16: the holder's backlog of access records must not hold up a decision's audit entry."""

from __future__ import annotations

import asyncio

from broker.audit.appender import _BULK_BESIDE_URGENT, _MAX_BATCH, _Item, _Lanes


def _item(name: str) -> _Item:
    return _Item(name.encode(), None, asyncio.get_running_loop().create_future())


async def test_interactive_appends_go_first_and_share_a_transaction_with_only_a_few_bulk_ones() -> None:
    lanes = _Lanes()
    for i in range(2 * _MAX_BATCH):
        lanes.put(_item(f"access-{i}"), bulk=True)
    lanes.put(_item("decision-a"), bulk=False)
    lanes.put(_item("decision-b"), bulk=False)
    first = [x.data.decode() for x in await lanes.batch()]
    assert first[:2] == ["decision-a", "decision-b"]
    assert first[2:] == [f"access-{i}" for i in range(_BULK_BESIDE_URGENT)]  # in event order
    second = [x.data.decode() for x in await lanes.batch()]  # no decision waiting: a full batch of bulk
    assert second == [f"access-{i}" for i in range(_BULK_BESIDE_URGENT, _BULK_BESIDE_URGENT + _MAX_BATCH)]


async def test_a_batch_waits_for_the_first_append_of_either_lane() -> None:
    lanes = _Lanes()
    waiting = asyncio.ensure_future(lanes.batch())
    await asyncio.sleep(0.01)
    assert not waiting.done() and lanes.empty()
    lanes.put(_item("access-0"), bulk=True)
    assert [x.data for x in await asyncio.wait_for(waiting, 1)] == [b"access-0"]
    assert lanes.empty()
