"""A Merkle log's hashes on local disk: one append-only file per level (the I/O shell of :mod:`broker.audit.tree`).

Level ``k`` is ``level-KK.bin``: node ``j`` at byte ``32 * j``. New hashes wait in a small buffer until
:meth:`FileLevels.flush` (or the buffer fills) writes them with one ``pwrite`` per level; reads of written
nodes are ``pread`` calls, so the process keeps ``O(log n)`` bytes whatever the size of the log (the kernel's
page cache is not the process's memory). The files are derived data: the owner keeps the tree's size and root
in its own durable record and opens the files with :meth:`FileLevels.open_at` that size, which cuts what a
crash left beyond it; when the files hold less than that size (or a different root) the owner rebuilds them from
its source (:meth:`FileLevels.reset`).
"""

from __future__ import annotations

import os
from pathlib import Path

from broker.audit.tree import HASH_BYTES, level_sizes

__all__ = ["FileLevels", "TreeFilesBehindError"]

_FLUSH_BYTES = 256 * 1024  # pending hashes written out once this many are buffered (bounds memory without a flush)
_MAX_LEVELS = 64


class TreeFilesBehindError(Exception):
    """The files hold fewer hashes than the size asked for: rebuild them."""


class FileLevels:
    """:class:`broker.audit.tree.HashLevels` in ``directory`` (created 0700, files 0600)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fds: list[int] = []
        self._written: list[int] = []  # nodes on disk per level
        self._pending: list[bytearray] = []  # nodes not yet written, per level
        self._pending_bytes = 0
        for level in range(_MAX_LEVELS):
            path = self._path(level)
            if not path.exists():
                break
            self._open(level)

    @classmethod
    def open_at(cls, directory: Path, size: int) -> FileLevels:
        """The files in ``directory`` cut to a log of ``size`` leaves; :class:`TreeFilesBehindError` if shorter."""
        levels = cls(directory)
        for level, need in enumerate(level_sizes(size)):
            if levels.count(level) < need:
                have = levels.count(level)
                levels.close()
                raise TreeFilesBehindError(f"level {level} holds {have} hashes, a log of {size} leaves needs {need}")
        levels.truncate(size)
        return levels

    def _path(self, level: int) -> Path:
        return self.directory / f"level-{level:02d}.bin"

    def _open(self, level: int) -> None:
        fd = os.open(self._path(level), os.O_RDWR | os.O_CREAT, 0o600)
        length = os.fstat(fd).st_size
        self._fds.append(fd)
        self._written.append(length // HASH_BYTES)
        self._pending.append(bytearray())

    def count(self, level: int) -> int:
        if level >= len(self._fds):
            return 0
        return self._written[level] + len(self._pending[level]) // HASH_BYTES

    def get(self, level: int, index: int) -> bytes:
        written = self._written[level]
        if index >= written:
            start = (index - written) * HASH_BYTES
            digest = bytes(self._pending[level][start : start + HASH_BYTES])
        else:
            digest = os.pread(self._fds[level], HASH_BYTES, index * HASH_BYTES)
        if len(digest) != HASH_BYTES:
            raise IndexError(f"no node {index} at level {level}")
        return digest

    def put(self, level: int, digest: bytes) -> None:
        if level == len(self._fds):
            self._open(level)
        self._pending[level] += digest
        self._pending_bytes += HASH_BYTES
        if self._pending_bytes >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the buffered hashes (no fsync: the owner's record of size and root decides what is valid)."""
        for level, pending in enumerate(self._pending):
            if pending:
                os.pwrite(self._fds[level], pending, self._written[level] * HASH_BYTES)
                self._written[level] += len(pending) // HASH_BYTES
                pending.clear()
        self._pending_bytes = 0

    def truncate(self, size: int) -> None:
        sizes = level_sizes(size)
        for level in range(len(self._fds)):
            need = sizes[level] if level < len(sizes) else 0
            written = self._written[level]
            if need >= written:
                pending = self._pending[level]
                keep = (need - written) * HASH_BYTES
                self._pending_bytes -= len(pending) - min(keep, len(pending))
                del pending[keep:]
            else:
                self._pending_bytes -= len(self._pending[level])
                self._pending[level].clear()
                os.ftruncate(self._fds[level], need * HASH_BYTES)
                self._written[level] = need

    def reset(self) -> None:
        """Empty every level (the owner rebuilds from its source)."""
        self.truncate(0)

    def close(self) -> None:
        if self._fds:
            self.flush()
        for fd in self._fds:
            os.close(fd)
        self._fds, self._written, self._pending = [], [], []
