"""Issue 13 item 3: the local checkpointed changelog store is a prefix of the committed changelog."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.changelog_store import LocalChangelog, PartitionStore, RestorePlan, plan_restore


@pytest.mark.parametrize(
    ("checkpoint", "first", "end", "plan"),
    [
        (None, 0, 100, RestorePlan(0, use_store=False)),  # nothing local: the whole changelog
        (60, 0, 100, RestorePlan(60, use_store=True)),  # the tail only
        (100, 0, 100, RestorePlan(100, use_store=True)),  # up to date: nothing to read
        (10, 20, 100, RestorePlan(20, use_store=False)),  # records below 20 were deleted: the store may miss some
        (150, 0, 100, RestorePlan(0, use_store=False)),  # beyond the end: the topic was re-created
    ],
)
def test_where_a_restore_starts(checkpoint: int | None, first: int, end: int, plan: RestorePlan) -> None:
    assert plan_restore(checkpoint, first, end) == plan


def _rows(store: PartitionStore) -> dict[bytes, bytes]:
    return {k: v for chunk in store.rows() for k, v in chunk}


def test_rows_and_the_checkpoint_survive_a_reopen(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0.sqlite")
    assert store.checkpoint() is None
    store.apply([(b"a", b"1", 10), (b"b", b"1", 11)])
    store.apply([(b"a", b"2", 14)])
    store.close()
    again = PartitionStore(tmp_path / "p0.sqlite")
    assert again.checkpoint() == 15
    assert _rows(again) == {b"a": b"2", b"b": b"1"}
    again.close()


def test_an_older_write_never_replaces_a_newer_one_nor_moves_the_checkpoint_back(tmp_path: Path) -> None:
    """Two instances sharing a directory across a rebalance: the old owner's late write must not regress."""
    store = PartitionStore(tmp_path / "p0.sqlite")
    store.apply([(b"a", b"new", 20)])
    store.apply([(b"a", b"old", 12)])
    assert _rows(store) == {b"a": b"new"}
    assert store.checkpoint() == 21
    store.close()


def test_a_tombstone_deletes_the_key_and_clear_empties_the_store(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0.sqlite")
    store.apply([(b"a", b"1", 1), (b"b", b"1", 2)])
    store.apply([(b"a", None, 3)])
    assert _rows(store) == {b"b": b"1"}
    assert store.checkpoint() == 4
    store.clear()
    assert _rows(store) == {} and store.checkpoint() is None
    store.close()


def test_writes_queued_on_the_hot_path_land_in_order_before_a_flush_returns(tmp_path: Path) -> None:
    async def scenario() -> dict[bytes, bytes]:
        local = LocalChangelog(tmp_path, "reconciler")
        for offset in range(100):
            local.record("consent.state", 3, [(b"k", str(offset).encode(), offset)])
        await local.flush()
        store = await local.open("consent.state", 3)
        rows: dict[bytes, bytes] = await local.run(_rows, store)
        assert await local.run(store.checkpoint) == 100
        await local.close()
        return rows

    import asyncio

    assert asyncio.run(scenario()) == {b"k": b"99"}
    assert (tmp_path / "reconciler" / "consent.state-3.sqlite").exists()
