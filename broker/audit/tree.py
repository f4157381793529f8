"""The audit trail as an append-only Merkle log (RFC 6962 hashing), with inclusion and consistency proofs (pure).

Leaf ``i`` is ``SHA-256(0x00 || record_i)`` over the canonical bytes of entry ``i``
(:class:`broker.audit.records.AuditRecord`), so a patient holding one record, its index, the tree size
and the inclusion proof can recompute the checkpoint's root with any RFC 6962 implementation
(:func:`consent_wire.verify_inclusion`).

Storage (issue 16: the log outgrows memory). Complete subtrees never change in an append-only log, and every
subtree RFC 6962's recursion visits whose size is a power of two is *aligned* (it starts at a multiple of its
size), so the log keeps exactly one 32-byte hash per complete aligned subtree: level ``k`` holds node ``j`` =
the hash of leaves ``[j * 2**k, (j + 1) * 2**k)``, appended as soon as it is complete (about two hashes per
leaf). A root or a proof then reads ``O(log n)`` of them. The levels live in a :class:`HashLevels`:
:class:`MemoryLevels` (compact bytearrays: 64 bytes a leaf) or :class:`broker.audit.tree_files.FileLevels`
(one append-only file per level: memory ``O(log n)``, whatever the size of the log).
"""

from __future__ import annotations

from typing import Protocol

from consent_wire import leaf_hash, node_hash

__all__ = ["HASH_BYTES", "HashLevels", "MemoryLevels", "MerkleLog", "level_sizes"]

HASH_BYTES = 32


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def level_sizes(size: int) -> list[int]:
    """How many complete aligned subtrees each level holds in a log of ``size`` leaves (level 0 first)."""
    out: list[int] = []
    while size:
        out.append(size)
        size >>= 1
    return out


class HashLevels(Protocol):
    """Where a :class:`MerkleLog` keeps its hashes: per level, a sequence that only grows at its end."""

    def count(self, level: int) -> int: ...

    def get(self, level: int, index: int) -> bytes: ...

    def put(self, level: int, digest: bytes) -> None:
        """Append ``digest`` as node ``count(level)`` of ``level``."""

    def truncate(self, size: int) -> None:
        """Keep only what a log of ``size`` leaves holds (``level_sizes(size)``)."""


class MemoryLevels:
    """Every level in one bytearray (32 bytes a node, no object per hash)."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    def count(self, level: int) -> int:
        return len(self._levels[level]) // HASH_BYTES if level < len(self._levels) else 0

    def get(self, level: int, index: int) -> bytes:
        start = index * HASH_BYTES
        return bytes(self._levels[level][start : start + HASH_BYTES])

    def put(self, level: int, digest: bytes) -> None:
        if level == len(self._levels):
            self._levels.append(bytearray())
        self._levels[level] += digest

    def truncate(self, size: int) -> None:
        sizes = level_sizes(size)
        del self._levels[len(sizes) :]
        for level, n in enumerate(sizes):
            del self._levels[level][n * HASH_BYTES :]


class MerkleLog:
    """An append-only Merkle log over ``levels`` (in memory unless given); ``append`` and ``truncate`` mutate."""

    def __init__(self, levels: HashLevels | None = None) -> None:
        self.levels: HashLevels = MemoryLevels() if levels is None else levels
        self._size = self.levels.count(0)

    @property
    def size(self) -> int:
        return self._size

    def append(self, record: bytes) -> int:
        """Add one record (its canonical bytes); returns its leaf index."""
        return self.append_leaf(leaf_hash(record))

    def append_leaf(self, digest: bytes) -> int:
        """Add one already hashed leaf; returns its index. Completes every subtree the leaf closes."""
        index = self._size
        levels = self.levels
        levels.put(0, digest)
        level, node = 0, index
        while node & 1:  # a right child: its parent is complete now
            digest = node_hash(levels.get(level, node - 1), digest)
            level, node = level + 1, node >> 1
            levels.put(level, digest)
        self._size = index + 1
        return index

    def truncate(self, size: int) -> None:
        """Back to the first ``size`` leaves (an aborted append rolled back)."""
        if not 0 <= size <= self._size:
            raise ValueError(f"cannot truncate a log of {self._size} leaves to {size}")
        self.levels.truncate(size)
        self._size = size

    def tail_consistent(self) -> bool:
        """Each level's newest node is the hash of its two children: what a crash or a lost write of the stored
        levels breaks first (their ends are the last written). With the root, checks a reopened log."""
        levels = self.levels
        for level in range(1, len(level_sizes(self._size))):
            last = levels.count(level) - 1
            children = node_hash(levels.get(level - 1, 2 * last), levels.get(level - 1, 2 * last + 1))
            if levels.get(level, last) != children:
                return False
        return True

    def leaf(self, index: int) -> bytes:
        return self.levels.get(0, index)

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
            raise ValueError(f"tree size {n} outside {least}..{self.size} (the log holds {self.size} leaves)")

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0:  # complete, hence aligned (module docstring): stored
            level = n.bit_length() - 1
            return self.levels.get(level, lo >> level)
        k = _split(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))


# RFC 6962 2.1: the hash of an empty list is the hash of an empty string, SHA-256("")
_EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
