"""The appender's way of driving the chain: resume a log from the stored position, retain nothing.

:class:`broker.audit.appender.AuditAppender` keeps no chain logic of its own: it restores a
:class:`ChainPosition` from the stored lines (:func:`position_of`) and drives an
:class:`AuditLog` with ``retain=False``. These properties pin that this produces the very
entries and checkpoints an uninterrupted in-memory log would.
"""

from __future__ import annotations

import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

import broker.audit
from broker.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditLog,
    AuditRecord,
    ChainPosition,
    Checkpoint,
    RecordKind,
    checkpoint_line,
    entry_line,
    parse_log,
    position_of,
)
from consent_wire.codes import DataClass, PurposeOfUse

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # fixed test key
T0 = 1_790_000_000_000


def record(i: int) -> AuditRecord:
    return AuditRecord(RecordKind.DECISION, T0 + i, f"p{i % 3}", f"staff-{i}", "RX1", "GP", PurposeOfUse.TREAT,
                       (DataClass.GENERAL,), "PERMIT", state_version=i)  # fmt: skip


def drive(log: AuditLog, first: int, count: int, lines: list[bytes]) -> list[AuditEntry | Checkpoint]:
    """Append records ``first..first+count-1`` as the appender does, writing lines; final checkpoint."""
    made: list[AuditEntry | Checkpoint] = []
    for i in range(first, first + count):
        entry = log.append(record(i))
        made.append(entry)
        lines.append(entry_line(entry))
        if log.checkpoint_due:
            made.append(cp := log.checkpoint(KEY))
            lines.append(checkpoint_line(cp, KEY.public_key()))
    if log.unsigned:
        made.append(cp := log.checkpoint(KEY))
        lines.append(checkpoint_line(cp, KEY.public_key()))
    return made


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.lists(st.integers(0, 12), min_size=1, max_size=4))
def test_a_log_resumed_from_its_stored_lines_continues_the_same_chain(every: int, runs: list[int]) -> None:
    lines: list[bytes] = []
    resumed: list[AuditEntry | Checkpoint] = []
    first = 0
    for count in runs:  # one appender run per element: restore from the lines, append, stop
        log = AuditLog(every, start=position_of(parse_log(lines)), retain=False)
        resumed += drive(log, first, count, lines)
        assert (log.entries, log.checkpoints) == ((), ())
        first += count
    whole = AuditLog(every)
    for i in range(first):
        whole.append(record(i))
    assert [m for m in resumed if isinstance(m, AuditEntry)] == list(whole.entries)
    assert position_of(parse_log(lines)).next_index == first


def test_checkpoints_fall_every_n_entries_and_on_each_stop() -> None:
    lines: list[bytes] = []
    drive(AuditLog(4, retain=False), 0, 6, lines)
    drive(AuditLog(4, start=position_of(parse_log(lines)), retain=False), 6, 5, lines)
    stored = parse_log(lines)
    assert [c.checkpoint.index for c in stored.checkpoints] == [3, 5, 7, 10]


def test_position_of_an_empty_log_is_the_genesis() -> None:
    assert position_of(parse_log([])) == ChainPosition(0, GENESIS_HASH, -1)


def test_position_of_stored_lines_is_after_the_last_entry_and_newest_checkpoint() -> None:
    log = AuditLog(3)
    lines: list[bytes] = []
    drive(log, 0, 5, lines)
    assert position_of(parse_log(lines)) == log.position == ChainPosition(5, log.entries[-1].hash, 4)


def test_a_stopped_log_with_every_entry_signed_needs_no_final_checkpoint() -> None:
    log = AuditLog(2)
    log.append(record(0))
    log.append(record(1))
    assert log.checkpoint_due and log.unsigned
    log.checkpoint(KEY)
    assert not log.checkpoint_due and not log.unsigned


def test_public_names_are_sorted_and_importing_the_package_does_not_import_kafka() -> None:
    names = broker.audit.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))
    assert all(hasattr(broker.audit, n) for n in names)
    modules = (broker.audit.errors, broker.audit.lines, broker.audit.log, broker.audit.records)
    assert set(names) == {n for m in modules for n in m.__all__}  # the pure modules, all of them
    code = "import sys, broker.audit; print('aiokafka' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
