from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit.tree import MemoryLevels, MerkleLog
from broker.audit.tree_files import FileLevels, TreeFilesBehindError
from consent_wire import consistency_proof, leaf_hash, subtree_root, verify_consistency, verify_inclusion


def _log(n: int) -> tuple[MerkleLog, list[bytes]]:
    log, records = MerkleLog(), [f"record-{i}".encode() for i in range(n)]
    for r in records:
        log.append(r)
    return log, records


def test_empty_log_root_is_the_hash_of_nothing() -> None:
    assert MerkleLog().root() == hashlib.sha256(b"").digest()


@given(st.integers(1, 200), st.data())
def test_inclusion_and_consistency_proofs_verify_with_the_wire_checker(n: int, data: st.DataObject) -> None:
    log, records = _log(n)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    verify_inclusion(records[index], index, size, log.inclusion_proof(index, size), log.root(size))
    old = data.draw(st.integers(0, size))
    proof = log.consistency_proof(old, size)
    leaves = [leaf_hash(r) for r in records]
    assert proof == consistency_proof(leaves, old, size)  # the independent recursive definition
    assert log.root(size) == subtree_root(leaves, 0, size)
    verify_consistency(old, size, log.root(old) if old else b"", log.root(size), proof)


def test_a_size_beyond_the_log_is_refused() -> None:
    log, _ = _log(3)
    with pytest.raises(ValueError, match="outside"):
        log.root(4)
    with pytest.raises(IndexError):
        log.inclusion_proof(3, 3)


# -- storage: compact in memory, or one file per level (issue 16) ---------------------------------------------


def _file_log(tmp: Path, n: int) -> tuple[MerkleLog, FileLevels]:
    levels = FileLevels(tmp)
    log = MerkleLog(levels)
    for i in range(n):
        log.append(f"record-{i}".encode())
    return log, levels


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 140), st.data())
def test_a_log_on_files_answers_exactly_as_one_in_memory(n: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        on_files, levels = _file_log(Path(tmp), n)
        if data.draw(st.booleans()):
            levels.flush()  # some read from the files, some from the buffer
        in_memory, _ = _log(n)
        assert on_files.size == n
        for size in range(n + 1):
            assert on_files.root(size) == in_memory.root(size)
        if n:
            size = data.draw(st.integers(1, n))
            index = data.draw(st.integers(0, size - 1))
            assert on_files.inclusion_proof(index, size) == in_memory.inclusion_proof(index, size)
            old = data.draw(st.integers(0, size))
            assert on_files.consistency_proof(old, size) == in_memory.consistency_proof(old, size)
        levels.close()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 100), st.data())
def test_truncating_then_appending_again_gives_the_log_built_directly(n: int, data: st.DataObject) -> None:
    keep = data.draw(st.integers(0, n))
    with tempfile.TemporaryDirectory() as tmp:
        for log, levels in ((_log(n)[0], None), _file_log(Path(tmp), n)):
            if levels is not None and data.draw(st.booleans()):
                levels.flush()
            log.truncate(keep)
            for i in range(keep, n + 3):
                log.append(f"other-{i}".encode())
            expected = MerkleLog()
            for i in range(n + 3):
                expected.append((f"record-{i}" if i < keep else f"other-{i}").encode())
            assert log.size == n + 3
            assert [log.root(s) for s in range(n + 4)] == [expected.root(s) for s in range(n + 4)]


def test_reopened_files_resume_at_the_size_their_owner_recorded(tmp_path: Path) -> None:
    log, levels = _file_log(tmp_path, 37)
    root_30 = log.root(30)
    levels.close()  # a crash after the files were written but before the owner recorded 37: it recorded 30
    reopened = MerkleLog(FileLevels.open_at(tmp_path, 30))
    assert reopened.size == 30
    assert reopened.root() == root_30
    for i in range(30, 37):
        reopened.append(f"record-{i}".encode())
    assert reopened.root() == _log(37)[0].root()


def test_files_shorter_than_the_recorded_size_are_refused_for_a_rebuild(tmp_path: Path) -> None:
    _, levels = _file_log(tmp_path, 10)
    levels.close()
    with pytest.raises(TreeFilesBehindError, match="needs"):
        FileLevels.open_at(tmp_path, 11)


def test_the_files_and_their_folder_are_private(tmp_path: Path) -> None:
    _, levels = _file_log(tmp_path / "tree", 5)
    levels.close()
    assert (tmp_path / "tree").stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "tree").iterdir()} == {0o600}


def test_a_log_in_memory_keeps_about_64_bytes_a_leaf() -> None:
    log, _ = _log(4096)
    assert isinstance(log.levels, MemoryLevels)
    assert sum(log.levels.count(k) for k in range(13)) == 2 * 4096 - 1  # every complete aligned subtree once


def test_a_lost_write_at_the_end_of_a_level_is_noticed(tmp_path: Path) -> None:
    log, levels = _file_log(tmp_path, 10)
    assert log.tail_consistent()
    levels.close()
    (tmp_path / "level-00.bin").write_bytes(b"\x00" * 32 * 10)
    assert not MerkleLog(FileLevels.open_at(tmp_path, 10)).tail_consistent()
