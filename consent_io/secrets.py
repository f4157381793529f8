"""Secrets on disk: private keys, passwords and tokens are read only from files no one else can read.

Every secret file the product reads (TLS private keys, the pseudonym secret, the audit and token signing keys,
the edge agent's API token) goes through :func:`read_secret`, which refuses a file that group or others may
read or write, and names the file, its mode and the fix. Secrets never come from the environment or the
command line, where other local users can see them (``/proc/<pid>/environ``, ``ps``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["SECRET_FILE_MODE", "SecretFileError", "check_secret_mode", "read_secret", "write_secret"]

SECRET_FILE_MODE = 0o600


class SecretFileError(Exception):
    reason = "BAD_SECRET_FILE"
    retriable = False


def check_secret_mode(path: Path, what: str) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SecretFileError(f"cannot read {what} from {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(
            f"{what} file {path} is accessible by group or others (mode {oct(mode & 0o777)}); run: chmod 600 {path}"
        )


def read_secret(path: str | Path, what: str, *, min_bytes: int = 1) -> bytes:
    """The contents of a secret file (surrounding whitespace stripped), after checking its mode."""
    p = Path(path)
    check_secret_mode(p, what)
    try:
        data = p.read_bytes().strip()
    except OSError as exc:
        raise SecretFileError(f"cannot read {what} from {p}: {exc.strerror or exc}") from exc
    if len(data) < min_bytes:
        raise SecretFileError(f"{what} in {p} is {len(data)} bytes; at least {min_bytes} are needed")
    return data


def write_secret(path: str | Path, data: bytes) -> None:
    """Create (or replace) a secret file with mode 0600 from the start (never briefly world-readable)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(p)
