from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent_wire import (
    BadProofError,
    build_levels,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_proof,
    verify_inclusion,
)


def _h(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(4, "big")).digest()


def _rfc6962_root(hashes: list[bytes]) -> bytes:
    """MTH from RFC 6962 section 2.1, recursively: split at the largest power of two below n."""
    if len(hashes) == 1:
        return leaf_hash(hashes[0])
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(_rfc6962_root(hashes[:k]), _rfc6962_root(hashes[k:]))


@pytest.mark.parametrize("n", [*range(1, 70), 127, 128, 129, 255, 256, 257])
def test_root_equals_the_recursive_rfc6962_definition(n: int) -> None:
    hashes = [_h(i) for i in range(n)]
    assert merkle_root(hashes) == _rfc6962_root(hashes)


def test_rfc6962_domain_separation_prefixes() -> None:
    a, b = _h(1), _h(2)
    assert leaf_hash(a) == hashlib.sha256(b"\x00" + a).digest()
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle_root([a, b]) == node_hash(leaf_hash(a), leaf_hash(b))


def test_inclusion_proofs_verify_for_every_batch_size_up_to_1000() -> None:
    rng = random.Random(6962)
    hashes = [_h(i) for i in range(1000)]
    for n in range(1, 1001):
        levels = build_levels(hashes[:n])
        root = levels[-1][0]
        indices = range(n) if n <= 64 else {0, n - 1, n // 2, *rng.sample(range(n), 6)}
        for i in indices:
            proof = inclusion_proof(levels, i)
            assert len(proof) <= (n - 1).bit_length()
            verify_inclusion(hashes[i], i, n, proof, root)


@given(st.integers(min_value=2, max_value=300), st.data())
def test_proof_for_one_leaf_does_not_verify_another_leaf_or_position(n: int, data: st.DataObject) -> None:
    hashes = [_h(i) for i in range(n)]
    levels = build_levels(hashes)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    j = data.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda j: j != i))
    proof = inclusion_proof(levels, i)
    with pytest.raises(BadProofError):
        verify_inclusion(hashes[j], i, n, proof, levels[-1][0])
    with pytest.raises(BadProofError):
        verify_inclusion(hashes[i], j, n, proof, levels[-1][0])


def test_tampered_proof_element_is_rejected() -> None:
    hashes = [_h(i) for i in range(10)]
    levels = build_levels(hashes)
    proof = list(inclusion_proof(levels, 3))
    proof[1] = bytes(32)
    with pytest.raises(BadProofError, match="does not lead to the signed root"):
        verify_inclusion(hashes[3], 3, 10, tuple(proof), levels[-1][0])


def test_proof_of_wrong_length_is_rejected() -> None:
    hashes = [_h(i) for i in range(8)]
    levels = build_levels(hashes)
    proof = inclusion_proof(levels, 5)
    with pytest.raises(BadProofError, match="shorter"):
        root_from_proof(hashes[5], 5, 8, proof[:-1])
    with pytest.raises(BadProofError, match="longer"):
        root_from_proof(hashes[5], 5, 8, (*proof, bytes(32)))


def test_index_outside_tree_is_rejected() -> None:
    with pytest.raises(BadProofError, match="outside a tree of 4"):
        root_from_proof(_h(0), 4, 4, ())


def test_empty_tree_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one leaf"):
        build_levels([])
