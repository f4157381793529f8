"""Consistency proofs (RFC 6962 2.1.2, RFC 9162 2.1.4): known roots, every size pair, and tampering."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent_wire import (
    BadProofError,
    consistency_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    subtree_root,
    verify_consistency,
)

# The eight leaf inputs and the tree heads of sizes 1..8 used by Certificate Transparency's reference
# implementation (google/certificate-transparency, merkle_tree_test.cc; also Trillian's merkle testonly).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(i.to_bytes(4, "big")).digest()) for i in range(n)]


@pytest.mark.parametrize("size", range(1, 9))
def test_tree_heads_match_certificate_transparency_reference(size: int) -> None:
    leaves = [leaf_hash(d) for d in CT_LEAVES[:size]]
    assert subtree_root(leaves, 0, size).hex() == CT_ROOTS[size - 1]
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]


def test_rfc6962_example_proof_from_3_to_7_is_c_d_g_l() -> None:
    """RFC 6962 2.1.3's worked example: PROOF(3, D[7]) = [c, d, g, l]."""
    leaves = [leaf_hash(d) for d in CT_LEAVES[:7]]
    c, d = leaves[2], leaves[3]
    g = node_hash(leaves[0], leaves[1])
    l_ = subtree_root(leaves, 4, 7)
    assert consistency_proof(leaves, 3, 7) == (c, d, g, l_)
    assert consistency_proof(leaves, 4, 7) == (l_,)
    assert consistency_proof(leaves, 6, 7) == (subtree_root(leaves, 4, 6), leaves[6], subtree_root(leaves, 0, 4))


def test_every_size_pair_up_to_40_verifies_and_every_flipped_bit_fails() -> None:
    leaves = _leaves(40)
    roots = [b""] + [subtree_root(leaves, 0, n) for n in range(1, 41)]
    for n in range(1, 41):
        for m in range(n + 1):
            proof = consistency_proof(leaves, m, n)
            verify_consistency(m, n, roots[m] if m else b"", roots[n], proof)
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
                with pytest.raises(BadProofError):
                    verify_consistency(m, n, roots[m], roots[n], tuple(bad))
            if 0 < m < n:
                with pytest.raises(BadProofError):  # a different old root (a rewritten history) fails
                    verify_consistency(m, n, roots[m - 1] if m > 1 else leaves[1], roots[n], proof)


@given(st.integers(1, 300), st.data())
def test_proof_length_is_logarithmic_and_wrong_sizes_fail(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    m = data.draw(st.integers(1, n))
    proof = consistency_proof(leaves, m, n)
    assert len(proof) <= 2 * n.bit_length()
    old, new = subtree_root(leaves, 0, m), subtree_root(leaves, 0, n)
    verify_consistency(m, n, old, new, proof)
    if m < n:
        with pytest.raises(BadProofError):
            verify_consistency(m, n, old, new, (*proof, new))  # too long
        if proof:
            with pytest.raises(BadProofError):
                verify_consistency(m, n, old, new, proof[:-1])  # too short


def test_a_shrinking_tree_and_a_second_root_for_one_size_are_refused() -> None:
    leaves = _leaves(5)
    r4, r5 = subtree_root(leaves, 0, 4), subtree_root(leaves, 0, 5)
    with pytest.raises(BadProofError, match="never shrinks"):
        verify_consistency(5, 4, r5, r4, ())
    with pytest.raises(BadProofError, match="same tree size"):
        verify_consistency(5, 5, r5, r4, ())
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(leaves, 3, 6)
