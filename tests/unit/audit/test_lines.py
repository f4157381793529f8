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
    RecordKind,
    Tamper,
    checkpoint_line,
    describe_problem,
    entry_line,
    parse_log,
    verify_stored,
)
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
