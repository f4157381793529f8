"""Issue 16's pure pieces around audit requests: the answer's request position, which request values the
appender takes, and the access cursor a new holder resumes from."""

from __future__ import annotations

import orjson

from broker.api.audit_follow import access_cursor
from broker.audit import AuditRecord, RecordKind
from broker.audit.appender import is_canonical_record
from broker.audit.lines import StoredLog
from broker.audit.log import AuditEntry
from broker.audit.requests import AuditReceipt, RequestPosition
from consent_wire.codes import DataClass, PurposeOfUse

RECORD = AuditRecord(RecordKind.DECISION, 1_790_000_000_000, "pk-1", "staff-1", "RX1", "GP", PurposeOfUse.TREAT,
                     (DataClass.GENERAL,), "PERMIT", state_version=3)  # fmt: skip


def test_a_request_position_is_its_partition_and_offset_and_a_direct_append_has_none() -> None:
    assert RequestPosition(2, 41).to_json() == {"partition": 2, "offset": 41}
    assert AuditReceipt(7).request is None
    assert AuditReceipt(None, RequestPosition(0, 0)).index is None


def test_the_appender_takes_only_the_canonical_bytes_of_an_audit_record() -> None:
    data = RECORD.to_bytes()
    assert is_canonical_record(data)
    reordered = orjson.dumps(dict(reversed(orjson.loads(data).items())))  # same fields, other order: other bytes
    assert reordered != data and not is_canonical_record(reordered)
    assert not is_canonical_record(data[:-1])
    assert not is_canonical_record(b"")
    extra = orjson.dumps({**orjson.loads(data), "nhs_number": "9434765919"}, option=orjson.OPT_SORT_KEYS)
    assert not is_canonical_record(extra)  # nothing more than the entry holds


def test_the_access_cursor_is_one_past_the_newest_access_entry_per_events_partition() -> None:
    entry = AuditEntry(0, b"", b"", b"")
    stored = StoredLog((entry,) * 5, (), ("0/5", None, "1/2", "0/9", None))
    assert access_cursor(stored) == {0: 10, 1: 3}
    assert access_cursor(StoredLog((), (), ())) == {}
