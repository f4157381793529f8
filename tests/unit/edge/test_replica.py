from __future__ import annotations

import sqlite3
from pathlib import Path

from consent_rules.replica_feed import ReplicaUpdate
from edge_agent.replica import Replica, ReplicaKind, load_patient_keys
from edge_agent.replica_follow import mqtt_replica_topics, parse_mqtt_replica_topic


async def test_fresher_record_wins_a_less_fresh_one_is_ignored_whatever_its_time(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "r.db", frozenset({"p1"}))
    await replica.open()
    assert await replica.upsert(ReplicaKind.STATE, "p1", b"v2", 2, 200)
    assert not await replica.upsert(ReplicaKind.STATE, "p1", b"v1", 1, 10**15)  # a later time does not help
    assert await replica.upsert(ReplicaKind.SHIELDING, "p1", b"s1", 7, 150)
    record = await replica.get("p1")
    await replica.close()

    assert record is not None
    assert (record.state, record.state_as_at_ms, record.shielding, record.shielding_as_at_ms) == (
        b"v2",
        200,
        b"s1",
        150,
    )


async def test_other_sites_patients_are_not_stored(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "r.db", frozenset({"p1"}))
    await replica.open()
    stored = await replica.upsert(ReplicaKind.STATE, "p2", b"x", 1, 1)
    record = await replica.get("p2")
    count = await replica.count()
    await replica.close()

    assert (stored, record, count) == (False, None, 0)


async def test_a_deletion_deletes_and_survives_reopen(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "r.db", None)
    await replica.open()
    await replica.upsert(ReplicaKind.STATE, "p1", b"x", 1, 1)
    await replica.upsert(ReplicaKind.STATE, "p2", b"y", 1, 1)
    assert await replica.delete(ReplicaKind.STATE, "p1")
    await replica.close()
    reopened = Replica(tmp_path / "r.db", None)
    await reopened.open()
    gone, kept = await reopened.get("p1"), await reopened.get("p2")
    await reopened.close()

    assert gone is None
    assert kept is not None and kept.state == b"y"


def test_patient_keys_file_ignores_comments_and_blanks(tmp_path: Path) -> None:
    path = tmp_path / "patients"
    path.write_text("# registered at A12345\nabc\n\n def  # trailing\n")

    assert load_patient_keys(path) == frozenset({"abc", "def"})


def test_mqtt_replica_topics_parse_only_own_site() -> None:
    assert mqtt_replica_topics("A12345") == ("consent/state/A12345/+", "consent/shielding/A12345/+")
    assert parse_mqtt_replica_topic("consent/state/A12345/k1", "A12345") == (ReplicaKind.STATE, "k1")
    assert parse_mqtt_replica_topic("consent/shielding/A12345/k1", "A12345") == (ReplicaKind.SHIELDING, "k1")
    assert parse_mqtt_replica_topic("consent/state/B99999/k1", "A12345") is None
    assert parse_mqtt_replica_topic("consent/audit/A12345/k1", "A12345") is None
    assert parse_mqtt_replica_topic("consent/state/A12345/", "A12345") is None


async def test_unsigned_rows_of_an_older_replica_are_dropped_on_open(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "r.db")
    db.execute("CREATE TABLE records (kind TEXT, patient_key TEXT, data BLOB, as_at_ms INTEGER)")
    db.execute("INSERT INTO records VALUES ('state', 'p1', x'00', 1)")
    db.commit()
    db.close()
    replica = Replica(tmp_path / "r.db", None)
    await replica.open()
    found, count = await replica.get("p1"), await replica.count()
    await replica.close()
    assert (found, count) == (None, 0)


async def test_feed_positions_survive_reopen_per_topic_and_a_later_save_moves_them(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "r.db", None)
    await replica.open()
    assert await replica.positions("consent.site.A81001") == {}
    await replica.save_positions("consent.site.A81001", {0: 5, 1: 2})
    await replica.save_positions("consent.site.A81001", {1: 9})
    await replica.save_positions("other.site.A81001", {0: 1})
    await replica.close()
    reopened = Replica(tmp_path / "r.db", None)
    await reopened.open()
    positions = await reopened.positions("consent.site.A81001")
    await reopened.close()

    assert positions == {0: 5, 1: 9}


async def test_a_batch_is_applied_in_order_with_its_positions_in_one_transaction(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "r.db", frozenset({"p1", "p2"}))
    await replica.open()
    await replica.upsert(ReplicaKind.STATE, "p2", b"old", 1, 1)
    told: list[tuple[ReplicaKind, str]] = []
    replica.on_change = lambda kind, key: told.append((kind, key))
    batch = (
        ReplicaUpdate(ReplicaKind.STATE, "p1", b"v1", 1, 10),
        ReplicaUpdate(ReplicaKind.STATE, "p1", b"v3", 3, 30),
        ReplicaUpdate(ReplicaKind.STATE, "p1", b"v2", 2, 20),  # less fresh than v3, read before it: ignored
        ReplicaUpdate(ReplicaKind.SHIELDING, "p9", b"s", 1, 1),  # not this site's patient
        ReplicaUpdate(ReplicaKind.STATE, "p2", None, None, 40),  # deleted
        ReplicaUpdate(ReplicaKind.SHIELDING, "p2", None, None, 40),  # nothing held to delete
    )
    changed = await replica.apply_all(batch, ("consent.site.A81001", {0: 17, 1: 4}))
    await replica.close()
    reopened = Replica(tmp_path / "r.db", None)
    await reopened.open()
    p1, p2, positions = (
        await reopened.get("p1"),
        await reopened.get("p2"),
        await reopened.positions("consent.site.A81001"),
    )
    await reopened.close()

    assert changed == [True, True, False, False, True, False]
    assert told == [(ReplicaKind.STATE, "p1"), (ReplicaKind.STATE, "p1"), (ReplicaKind.STATE, "p2")]
    assert replica.updates_total == 1 + 3
    assert p1 is not None and p1.state == b"v3" and p2 is None
    assert positions == {0: 17, 1: 4}


async def test_a_failed_batch_leaves_neither_its_records_nor_its_positions(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "r.db", None)
    await replica.open()
    bad = ReplicaUpdate(ReplicaKind.STATE, "p2", b"x", 1, 1)
    object.__setattr__(bad, "record", object())  # not bytes: SQLite refuses it midway through the batch
    try:
        await replica.apply_all((ReplicaUpdate(ReplicaKind.STATE, "p1", b"x", 1, 1), bad), ("t", {0: 9}))
    except sqlite3.Error:
        pass
    else:
        raise AssertionError("the batch should have failed")
    found, positions = await replica.get("p1"), await replica.positions("t")
    assert await replica.apply_all((ReplicaUpdate(ReplicaKind.STATE, "p1", b"y", 1, 1),)) == [True]  # usable again
    await replica.close()
    assert (found, positions) == (None, {})
