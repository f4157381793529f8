"""The API's persistent views (issue 16): rows and positions in one transaction, resumed after a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.audit import AuditEntry
from broker.views import LruCache, ViewBatch, ViewStore, event_rows, state_row
from broker.views import store as store_module
from consent_wire.codes import ConsentDirective, DataClass, PurposeOfUse, Relationship
from consent_wire.model import AccessRecord, ConsentDecision, Event
from tests.unit.rules.state.strategies import BASE_MS, PATIENT, hlc_of, make_event


def consent(ms: int) -> Event:
    return make_event(
        ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.GENERAL, "RX1"), hlc=hlc_of(ms)
    )


def access(disclosed_to: str = "") -> Event:
    record = AccessRecord("c0ffee", "RX1", "GP", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT,
                          (DataClass.GENERAL,), None, disclosed_to)  # fmt: skip
    return make_event(record, hlc=hlc_of(BASE_MS))


async def test_rows_and_positions_survive_a_reopen_and_the_latest_state_record_wins(tmp_path: Path) -> None:
    path = tmp_path / "views.sqlite3"
    store = ViewStore(path)
    batch = ViewBatch("t.state")
    state_row(batch, 0, 7, PATIENT.encode(), b"old")
    state_row(batch, 0, 9, PATIENT.encode(), b"new")
    state_row(batch, 2, 3, b"gone", None)
    await store.write(batch)
    store.close()

    reopened = ViewStore(path)
    assert await reopened.positions("t.state") == {0: 10, 2: 4}
    assert await reopened.positions("t.events") == {}
    assert await reopened.state_record(PATIENT) == b"new"
    assert await reopened.state_record("gone") is None
    reopened.close()


async def test_history_holds_state_changes_in_hlc_order_and_reports_hold_disclosures_only(tmp_path: Path) -> None:
    store = ViewStore(tmp_path / "v.sqlite3")
    later, earlier, viewed, disclosed = consent(BASE_MS + 5), consent(BASE_MS), access(), access("RESLAB1")
    batch = ViewBatch("t.events")
    for offset, event in enumerate((later, earlier, viewed, disclosed)):
        event_rows(batch, 1, offset, event, event.event_id.encode())
    event_rows(batch, 1, 4, None, b"garbage")  # undecodable: only the position moves
    await store.write(batch)
    await store.write(batch)  # a re-read batch (after a restart before the audit cursor) adds nothing
    assert await store.history_records(PATIENT) == [earlier.event_id.encode(), later.event_id.encode()]
    assert await store.report_records() == [disclosed.event_id.encode()]
    assert await store.positions("t.events") == {1: 5}
    assert (await store.counts())["history"] == 2
    store.close()


async def test_the_audit_index_answers_per_patient_in_chain_order_and_ignores_a_second_copy(tmp_path: Path) -> None:
    store = ViewStore(tmp_path / "v.sqlite3")
    entries = [AuditEntry(i, bytes(32), bytes([i]) * 32, b"record-%d" % i) for i in range(4)]
    await store.add_audit([("a", entries[2]), ("b", entries[1]), ("a", entries[0])])
    await store.add_audit([("a", entries[0]), ("a", entries[3])])
    assert [e.index for e in await store.audit_entries("a")] == [0, 2, 3]
    assert await store.audit_entries("b") == [entries[1]]
    assert await store.audit_next_index() == 4
    store.close()


def test_the_cache_keeps_the_most_recently_used_up_to_its_capacity() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)
    cache.discard("a")
    assert cache.get("a") is None
    with pytest.raises(ValueError, match="positive"):
        LruCache(0)


async def test_an_access_log_page_is_one_index_range_read_in_chain_order(tmp_path: Path) -> None:
    """Issue 16: a patient with 1,000 entries reads a page through ``audit_by_patient``, never a scan or a sort."""
    store = ViewStore(tmp_path / "v.sqlite3")
    entries = [AuditEntry(i, bytes(32), bytes(32), b"r%d" % i) for i in range(2500)]
    await store.add_audit([("a" if i % 5 < 2 else f"p{i}", e) for i, e in enumerate(entries)])
    mine = [e.index for e in await store.audit_entries("a")]
    assert len(mine) == 1000
    first = await store.audit_entries("a", limit=300)
    second = await store.audit_entries("a", after=first[-1].index, limit=300)
    assert [e.index for e in first + second] == mine[:600]
    assert await store.audit_entries("a", after=mine[-1]) == []
    plan = " ".join(await store.query_plan(store_module._AUDIT_PAGE, ("a", -1, 100)))
    assert "USING INDEX audit_by_patient" in plan or "USING COVERING INDEX audit_by_patient" in plan, plan
    assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan
    store.close()


async def test_report_aggregates_keep_the_latest_value_per_key_with_their_positions(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    store = ViewStore(path)
    batch = ViewBatch("t.reports")
    batch.advance(0, 4)
    batch.aggregates[b"k1"] = ("disclosures", 10, b"old")
    batch.aggregates[b"k2"] = ("disclosures", 12, b"v2")
    batch.aggregates[b"k3"] = ("objectors", -1, b"v3")
    await store.write(batch)
    again = ViewBatch("t.reports")
    again.advance(0, 5)
    again.aggregates[b"k1"] = ("disclosures", 10, b"new")
    await store.write(again)
    store.close()
    reopened = ViewStore(path)
    assert await reopened.positions("t.reports") == {0: 6}
    assert sorted(await reopened.report_aggregates("disclosures")) == [b"new", b"v2"]
    assert await reopened.report_aggregates("disclosures", 11, 13) == [b"v2"]
    assert await reopened.report_aggregates("objectors") == [b"v3"]
    plan = " ".join(await reopened.query_plan(store_module._AGGREGATES, ("disclosures", 0, 20)))
    assert "aggregates_by_day" in plan, plan
    reopened.close()
