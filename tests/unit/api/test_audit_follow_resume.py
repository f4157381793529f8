"""Issue 16: the audit follower keeps its Merkle tree in files and resumes from what its store recorded.

No Kafka here: ``start_at`` (where the follower would start reading) is replaced by a recorder, and entries are
handed to the follower as the topic's lines would be; the real-stack restart is in
tests/integration/api/test_api_views.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from broker.api.audit_follow import AuditFollower
from broker.audit import AuditLog, AuditRecord, RecordKind, entry_line
from broker.audit.tree import MerkleLog
from broker.views import ViewStore
from consent_io.connection import KafkaConnection
from consent_wire.codes import DataClass, PurposeOfUse

T0 = 1_790_000_000_000
TOPIC = "p.audit"


def _lines(n: int) -> list[bytes]:
    log = AuditLog()
    out = []
    for i in range(n):
        who = (f"patient-{i % 3}", f"staff-{i}", "RX1", "GP")
        record = AuditRecord(RecordKind.DECISION, T0 + i, *who, PurposeOfUse.TREAT, (DataClass.GENERAL,), "PERMIT",
                             codes=("X",), state_version=i)  # fmt: skip
        out.append(entry_line(log.append(record)))
    return out


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.store = ViewStore(tmp / "v.sqlite3")
        self.tree_dir = tmp / "tree"
        self.starts: list[dict[int, int]] = []

    def follower(self) -> AuditFollower:
        follower = AuditFollower(KafkaConnection("127.0.0.1:1"), TOPIC, self.store, self.tree_dir)

        async def start_at(positions: dict[int, int]) -> None:
            self.starts.append(dict(positions))

        follower.start_at = start_at  # type: ignore[method-assign]
        return follower


async def _feed(follower: AuditFollower, lines: list[bytes], first_offset: int) -> None:
    for offset, line in enumerate(lines, first_offset):
        await follower.handle(0, SimpleNamespace(offset=offset, value=line))
    await follower.flush()


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


async def test_a_restarted_follower_resumes_at_its_stored_position_with_the_same_tree(rig: Rig) -> None:
    lines = _lines(40)
    first = rig.follower()
    await first.start()
    assert (rig.starts, first.resumed_at) == ([{}], 0)  # nothing stored: from the log's start
    await _feed(first, lines[:25], 0)
    root_25 = first._tree.root()
    first.close()

    second = rig.follower()
    await second.start()
    assert rig.starts[-1] == {0: 25}  # where the store's transaction left the topic
    assert (second.resumed_at, second.size, second._tree.root()) == (25, 25, root_25)
    await _feed(second, lines[25:], 25)
    expected = MerkleLog()
    for line in lines:
        expected.append(_record_of(line))
    assert second._tree.root() == expected.root()
    assert len(await rig.store.audit_entries("patient-1")) == 13  # rows indexed once, by patient
    second.close()


async def test_tree_files_that_do_not_match_the_store_are_rebuilt_from_the_log_start(rig: Rig) -> None:
    first = rig.follower()
    await first.start()
    await _feed(first, _lines(10), 0)
    first.close()
    (rig.tree_dir / "level-00.bin").write_bytes(b"\x00" * 32 * 10)  # same length, other hashes (a lost write)
    second = rig.follower()
    await second.start()
    assert (rig.starts[-1], second.resumed_at, second.size) == ({}, 0, 0)
    await _feed(second, _lines(10), 0)  # read again from the start: the same tree as before
    assert second.size == 10
    second.close()

    (rig.tree_dir / "level-00.bin").write_bytes(b"")  # files shorter than the store's tree
    third = rig.follower()
    await third.start()
    assert (rig.starts[-1], third.resumed_at) == ({}, 0)
    third.close()


def _record_of(line: bytes) -> bytes:
    from broker.audit import parse_log

    return parse_log([line]).entries[0].record


async def test_entries_the_holder_indexed_itself_are_hashed_but_not_indexed_again(rig: Rig) -> None:
    """The holder puts its own decisions in the store as it answers; reading them back from the log, the follower
    adds them to its tree only. Entries it has already read are never skipped, and the rest are indexed."""
    lines = _lines(12)
    follower = rig.follower()
    await follower.start()
    await _feed(follower, lines[:3], 0)
    follower.indexed_here(1)  # already read: nothing to skip later
    for index in (4, 7):
        follower.indexed_here(index)
    await _feed(follower, lines[3:], 3)
    assert follower.size == 12
    indexed = {e.index for key in ("patient-0", "patient-1", "patient-2") for e in await rig.store.audit_entries(key)}
    assert indexed == set(range(12)) - {4, 7}  # the holder's own rows are its own write, not the follower's
    assert not follower._indexed_here  # each skip consumed its mark: the set does not grow with the log
    follower.close()
