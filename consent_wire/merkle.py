"""RFC 6962-style Merkle tree over SHA-256, with inclusion (RFC 9162 2.1.3) and consistency (2.1.4) proofs.

Leaves are event hashes (SHA-256 of the exact event bytes); the tree is
domain-separated as in RFC 6962 section 2.1: a leaf node is
``SHA-256(0x00 || event_hash)`` and an interior node ``SHA-256(0x01 || left || right)``,
so a leaf can never be passed off as an interior node (second-preimage attack).

The tree is built level by level, promoting an unpaired last node unchanged to
the next level; this gives exactly the RFC 6962 ``MTH`` (split at the largest
power of two below n), as a test checks against the recursive definition.
"""

from __future__ import annotations

from hashlib import sha256

from consent_wire.errors import BadProofError

__all__ = [
    "HASH_BYTES",
    "build_levels",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "root_from_proof",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_BYTES = 32  # SHA-256 digest size (FIPS 180-4)
_LEAF = b"\x00"  # RFC 6962 2.1 leaf prefix
_NODE = b"\x01"  # RFC 6962 2.1 interior node prefix


def leaf_hash(event_hash: bytes) -> bytes:
    return sha256(_LEAF + event_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(_NODE + left + right).digest()


def build_levels(event_hashes: list[bytes]) -> list[list[bytes]]:
    """All levels of the tree, leaves first, root level (one hash) last. Needs >= 1 leaf."""
    if not event_hashes:
        raise ValueError("a Merkle tree needs at least one leaf")
    level = [sha256(_LEAF + h).digest() for h in event_hashes]
    levels = [level]
    while len(level) > 1:
        paired = len(level) - (len(level) & 1)
        nxt = [sha256(_NODE + level[i] + level[i + 1]).digest() for i in range(0, paired, 2)]
        if paired != len(level):
            nxt.append(level[-1])  # unpaired node moves up unchanged
        levels.append(nxt)
        level = nxt
    return levels


def merkle_root(event_hashes: list[bytes]) -> bytes:
    return build_levels(event_hashes)[-1][0]


def inclusion_proof(levels: list[list[bytes]], index: int) -> tuple[bytes, ...]:
    """Sibling hashes from leaf ``index`` up to the root (the RFC 6962 audit path)."""
    if not 0 <= index < len(levels[0]):
        raise IndexError(f"leaf index {index} outside a tree of {len(levels[0])} leaves")
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index >>= 1
    return tuple(path)


def root_from_proof(event_hash: bytes, index: int, size: int, proof: tuple[bytes, ...]) -> bytes:
    """The root implied by a proof (RFC 9162 2.1.3.2); raises BadProofError if the proof is malformed."""
    if not 0 <= index < size:
        raise BadProofError(f"leaf index {index} outside a tree of {size} leaves")
    fn, sn = index, size - 1
    r = leaf_hash(event_hash)
    for p in proof:
        if sn == 0 or len(p) != HASH_BYTES:
            raise BadProofError("inclusion proof is longer than the tree is deep or has a malformed hash")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise BadProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(event_hash: bytes, index: int, size: int, proof: tuple[bytes, ...], root: bytes) -> None:
    """Raise BadProofError unless ``event_hash`` is leaf ``index`` of the tree with ``root``."""
    if root_from_proof(event_hash, index, size, proof) != root:
        raise BadProofError(f"inclusion proof for leaf {index} of {size} does not lead to the signed root")


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (RFC 6962 2.1, ``k``); ``n >= 2``."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(leaves: list[bytes], lo: int, hi: int) -> bytes:
    """``MTH(D[lo:hi])`` over leaf *hashes* (already ``leaf_hash``-ed), by the recursive definition."""
    if hi - lo == 1:
        return leaves[lo]
    k = _split(hi - lo)
    return node_hash(subtree_root(leaves, lo, lo + k), subtree_root(leaves, lo + k, hi))


def consistency_proof(leaves: list[bytes], old_size: int, new_size: int) -> tuple[bytes, ...]:
    """``PROOF(m, D[n])`` of RFC 6962 2.1.2 over leaf hashes; empty when ``old_size`` is 0 or equals ``new_size``."""
    if not 0 <= old_size <= new_size <= len(leaves):
        raise ValueError(f"no consistency proof from size {old_size} to {new_size} over {len(leaves)} leaves")
    if old_size in (0, new_size):
        return ()
    return tuple(_subproof(leaves, old_size, 0, new_size, complete=True))


def _subproof(leaves: list[bytes], m: int, lo: int, hi: int, *, complete: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if complete else [subtree_root(leaves, lo, hi)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves, m, lo, lo + k, complete=complete), subtree_root(leaves, lo + k, hi)]
    return [*_subproof(leaves, m - k, lo + k, hi, complete=False), subtree_root(leaves, lo, lo + k)]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: tuple[bytes, ...]
) -> None:
    """Raise BadProofError unless the tree ``new_root`` of ``new_size`` extends ``old_root`` (RFC 9162 2.1.4.2).

    Size 0 is consistent with anything (an empty proof); equal sizes need equal roots and an empty proof.
    """
    if not 0 <= old_size <= new_size:
        raise BadProofError(f"tree size went from {old_size} to {new_size}: a log never shrinks")
    if any(len(p) != HASH_BYTES for p in proof):
        raise BadProofError("consistency proof holds a malformed hash")
    if old_size == 0 or old_size == new_size:
        if proof:
            raise BadProofError(f"a consistency proof from size {old_size} to {new_size} must be empty")
        if old_size == new_size and old_root != new_root:
            raise BadProofError(f"two different roots for the same tree size {new_size}")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # old tree is a complete subtree: its root is the first node
        path.insert(0, old_root)
    if not path:
        raise BadProofError("consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise BadProofError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise BadProofError("consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise BadProofError(f"consistency proof does not lead to the old root of size {old_size}")
    if sr != new_root:
        raise BadProofError(f"consistency proof does not lead to the new root of size {new_size}")
