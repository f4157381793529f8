from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.audit.tree import MerkleLog
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
