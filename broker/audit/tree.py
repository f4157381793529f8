"""The audit trail as an append-only Merkle log (RFC 6962 hashing), with inclusion and consistency proofs (pure).

Leaf ``i`` is ``SHA-256(0x00 || record_i)`` over the canonical bytes of entry ``i``
(:class:`broker.audit.records.AuditRecord`), so a patient holding one record, its index, the tree size
and the inclusion proof can recompute the checkpoint's root with any RFC 6962 implementation
(:func:`consent_wire.verify_inclusion`). Complete subtrees never change in an append-only log, so their
hashes are cached: a root or a proof costs ``O(log n)`` hashes once the log is built.
"""

from __future__ import annotations

from consent_wire import leaf_hash, node_hash

__all__ = ["MerkleLog"]


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class MerkleLog:
    """Leaf hashes in order, with cached complete subtrees; ``append`` is the only mutation."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._complete: dict[tuple[int, int], bytes] = {}

    @property
    def size(self) -> int:
        return len(self._leaves)

    def append(self, record: bytes) -> int:
        """Add one record (its canonical bytes); returns its leaf index."""
        self._leaves.append(leaf_hash(record))
        return len(self._leaves) - 1

    def restore_leaves(self, leaf_hashes: list[bytes]) -> None:
        """Start from already hashed leaves (an aborted append rolled back); only on an empty log."""
        if self._leaves:
            raise ValueError("restore_leaves needs an empty log")
        self._leaves = list(leaf_hashes)

    def leaf(self, index: int) -> bytes:
        return self._leaves[index]

    def root(self, size: int | None = None) -> bytes:
        n = self.size if size is None else size
        self._check(0, n)
        if n == 0:
            return _EMPTY_ROOT
        return self._mth(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> tuple[bytes, ...]:
        """``PATH(index, D[size])`` of RFC 6962 2.1.1."""
        n = self.size if size is None else size
        self._check(1, n)
        if not 0 <= index < n:
            raise IndexError(f"leaf {index} outside a tree of {n} leaves")
        path: list[bytes] = []
        lo, hi = 0, n
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._mth(lo, lo + k))
                lo += k
        return tuple(reversed(path))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> tuple[bytes, ...]:
        """``PROOF(old_size, D[new_size])`` of RFC 6962 2.1.2 (empty for size 0 or equal sizes)."""
        n = self.size if new_size is None else new_size
        self._check(0, n)
        if not 0 <= old_size <= n:
            raise ValueError(f"no consistency proof from size {old_size} to {n}")
        if old_size in (0, n):
            return ()
        out: list[bytes] = []
        m, lo, hi, complete = old_size, 0, n, True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                out.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                out.append(self._mth(lo, lo + k))
                m, lo, complete = m - k, lo + k, False
        if not complete:
            out.append(self._mth(lo, hi))
        return tuple(reversed(out))

    def _check(self, least: int, n: int) -> None:
        if not least <= n <= self.size:
            raise ValueError(f"tree size {n} outside 0..{self.size} (the log holds {self.size} leaves)")

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 1:
            return self._leaves[lo]
        complete = n & (n - 1) == 0
        if complete:
            cached = self._complete.get((lo, hi))
            if cached is not None:
                return cached
        k = _split(n)
        h = node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))
        if complete:
            self._complete[(lo, hi)] = h
        return h


# RFC 6962 2.1: the hash of an empty list is the hash of an empty string, SHA-256("")
_EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
