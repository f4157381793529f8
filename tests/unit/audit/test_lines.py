"""The stored audit format: lines round-trip, and tampering with an export is named exactly."""

from __future__ import annotations

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.audit import (
    AuditLineError,
    AuditLog,
    AuditProblem,
    AuditRecord,
    LogScan,
    RecordKind,
    RestoredLog,
    Tamper,
    checkpoint_line,
    describe_problem,
    entry_line,
    note_line,
    parse_log,
    position_of,
    sources_cursor,
    verify_stored,
)
from broker.audit.tree import MerkleLog
from consent_wire.codes import DataClass, PurposeOfUse

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # fixed test key
T0 = 1_790_000_000_000


def lines(n: int, every: int = 3) -> list[bytes]:
    log = AuditLog(checkpoint_every=every)
    out: list[bytes] = []
    for i in range(n):
        record = AuditRecord(RecordKind.DECISION, T0 + i, "p1", f"staff-{i}", "RX1", "GP", PurposeOfUse.TREAT,
                             (DataClass.GENERAL,), "PERMIT", codes=("X",), state_version=i)  # fmt: skip
        out.append(entry_line(log.append(record), f"0/{i}" if i % 2 else None))
        if log.checkpoint_due:
            out.append(checkpoint_line(log.checkpoint(KEY), KEY.public_key()))
    return out


def kinds(problems: tuple[AuditProblem, ...]) -> list[tuple[Tamper, int, int | None]]:
    return sorted(((p.kind, p.index, p.other_index) for p in problems), key=str)


def test_lines_round_trip_with_sources_and_checkpoints() -> None:
    stored = parse_log([*lines(7), b""])
    assert [e.index for e in stored.entries] == list(range(7))
    assert stored.sources == (None, "0/1", None, "0/3", None, "0/5", None)
    assert [c.checkpoint.index for c in stored.checkpoints] == [2, 5]
    result = verify_stored(stored)
    assert (result.ok, result.entries_checked, result.checkpoints_checked) == (True, 7, 2)


def test_each_tampering_is_named() -> None:
    clean = lines(9)
    entries = [i for i, line in enumerate(clean) if b'"entry"' in line]
    edited = list(clean)
    edited[entries[4]] = edited[entries[4]].replace(b'\\"outcome\\":\\"PERMIT\\"', b'\\"outcome\\":\\"DENY\\"')
    assert edited != clean
    assert kinds(verify_stored(parse_log(edited)).problems) == [(Tamper.EDITED, 4, None)]
    deleted = [line for k, line in enumerate(clean) if k != entries[7]]
    assert (Tamper.DELETED, 6, 8) in kinds(verify_stored(parse_log(deleted)).problems)
    swapped = list(clean)
    swapped[entries[1]], swapped[entries[2]] = swapped[entries[2]], swapped[entries[1]]
    assert kinds(verify_stored(parse_log(swapped)).problems) == [(Tamper.REORDERED, 1, 2)]


def test_a_pinned_key_rejects_checkpoints_signed_by_another() -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    result = verify_stored(parse_log(lines(6)), trusted_key=other)
    assert kinds(result.problems) == [(Tamper.BAD_CHECKPOINT, 2, None), (Tamper.BAD_CHECKPOINT, 5, None)]


def test_describe_problem_names_kind_and_place() -> None:
    assert describe_problem(AuditProblem(Tamper.EDITED, 3, None, "x")) == "EDITED at index 3: x"
    assert describe_problem(AuditProblem(Tamper.REORDERED, 4, 5, "y")) == "REORDERED 4<->5: y"
    assert describe_problem(AuditProblem(Tamper.DELETED, 6, 8, "z")) == "DELETED after index 6: z"


@pytest.mark.parametrize("bad", [b"{", b'{"type": "entry"}', b'{"type": "other"}', orjson.dumps([1])])
def test_lines_that_are_not_audit_lines_are_rejected_with_their_number(bad: bytes) -> None:
    with pytest.raises(AuditLineError, match="line 2"):
        parse_log([lines(1)[0], bad])


def test_a_scan_line_by_line_restores_what_the_full_parse_gives() -> None:
    """Issue 16: an appender's restore streams the log (LogScan) instead of holding every line (parse_log)."""
    log_lines = [*lines(11), note_line("head-1", cosigned=False), b"", note_line("cp-1", cosigned=True)]
    scan = LogScan(MerkleLog())
    for line in log_lines:
        scan.add(line)
    stored = parse_log(log_lines)
    assert scan.in_order
    assert scan.position() == position_of(stored)
    assert scan.cursor == sources_cursor(stored.sources) == {0: 10}
    assert (scan.heads, scan.notes) == (["head-1"], ["cp-1"])
    expected = MerkleLog()
    for e in stored.entries:
        expected.append(e.record)
    assert scan.tree.root() == expected.root()
    assert scan.restored() == RestoredLog(11, {0: 10})


def test_a_scan_notices_entries_out_of_order_and_stops_adding_them() -> None:
    log_lines = [line for line in lines(6) if b'"entry"' in line]
    swapped = [log_lines[0], log_lines[2], log_lines[1], *log_lines[3:]]
    scan = LogScan(MerkleLog())
    for line in swapped:
        scan.add(line)
    assert not scan.in_order
    assert scan.tree.size == 1  # the full parse then names the problem (restore_problems)
    with pytest.raises(AuditLineError, match="line 2"):
        _scan_all([log_lines[0], b"not json"])  # a line that is not an audit line fails the restore, numbered


def _scan_all(log_lines: list[bytes]) -> None:
    scan = LogScan(MerkleLog())
    for line in log_lines:
        scan.add(line)


@pytest.mark.parametrize("cut", [0, 4, 7, 11])
def test_a_scan_resumed_from_a_saved_point_ends_where_a_scan_of_the_whole_log_ends(cut: int) -> None:
    """Issue 16: an appender that resumes reads only the lines after its saved point; the position, the cursor
    and the tree come out the same as from the start."""
    log_lines = lines(11)
    whole = LogScan(MerkleLog())
    for line in log_lines:
        whole.add(line)
    first = LogScan(MerkleLog())
    rest: list[bytes] = []
    for line in log_lines:
        if first.tree.size < cut:
            first.add(line)
        else:
            rest.append(line)
    resumed = LogScan(first.tree, start=first.position(), cursor=first.cursor)
    for line in rest:
        resumed.add(line)
    assert resumed.in_order
    assert resumed.position() == whole.position()
    assert resumed.cursor == whole.cursor
    assert resumed.tree.root() == whole.tree.root()
    assert resumed.restored() == whole.restored()
