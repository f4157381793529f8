"""Where an audit appender stopped, kept on local disk so that its successor on this host resumes (issue 16).

Before this, every activation read the whole audit log again to rebuild and check the Merkle tree (23 s for
1.6 M entries, growing with the log). Now the appender keeps its tree's hashes in files
(:mod:`broker.audit.tree_files`) and, about once a second and when it stops, writes an :class:`AppenderState`
beside them: the offset and exact text of the newest log-signed head it committed (``tlog-head``), the tree
size and root that head signs, the hash chain's position, the newest cosigned checkpoint and the access-record
cursor. A successor on the same disk opens the files at that size, checks their root, and reads the log only
from that offset: the first record must be that very head (else the log was rewritten or truncated below what
this host wrote, and it is refused), and what follows is checked as a full restore checks it (entries in index
order; every entry under a head signed by the log key; the witnesses' checkpoints consistent with the tree).

The file is derived data: a missing, unreadable or mismatching one (other topic, files behind it, a different
root) means a full restore from the log's start, never a refusal. It holds no personal data (hashes, sizes,
offsets, signed notes). It is written to a temporary file and renamed, so a crash leaves the old one or the new.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from broker.audit.log import ChainPosition

__all__ = ["STATE_VERSION", "AppenderState", "load_state", "save_state"]

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class AppenderState:
    topic: str
    head_offset: int  # the audit topic's offset of ``head``
    head: str  # the newest tlog-head note this appender committed (signs ``size`` and ``root``)
    size: int
    root: bytes
    chain: ChainPosition  # next_index == size; head_hash is the last entry's chain hash
    checkpoint: str | None  # the newest cosigned checkpoint note known when saved
    checkpoint_size: int
    cursor: dict[int, int]  # events partition -> first offset whose access record is not yet in the log

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": STATE_VERSION,
                "topic": self.topic,
                "head_offset": self.head_offset,
                "head": self.head,
                "size": self.size,
                "root": self.root.hex(),
                "chain": {
                    "next_index": self.chain.next_index,
                    "head_hash": self.chain.head_hash.hex(),
                    "last_checkpoint": self.chain.last_checkpoint,
                },
                "checkpoint": self.checkpoint,
                "checkpoint_size": self.checkpoint_size,
                "cursor": {str(p): o for p, o in sorted(self.cursor.items())},
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> AppenderState:
        """Raises ``ValueError`` naming what is wrong."""
        try:
            o: dict[str, Any] = orjson.loads(data)
            if o.get("version") != STATE_VERSION:
                raise ValueError(f"version {o.get('version')!r}, expected {STATE_VERSION}")  # noqa: TRY301
            chain = o["chain"]
            state = cls(
                topic=str(o["topic"]),
                head_offset=int(o["head_offset"]),
                head=str(o["head"]),
                size=int(o["size"]),
                root=bytes.fromhex(o["root"]),
                chain=ChainPosition(
                    int(chain["next_index"]), bytes.fromhex(chain["head_hash"]), int(chain["last_checkpoint"])
                ),
                checkpoint=None if o["checkpoint"] is None else str(o["checkpoint"]),
                checkpoint_size=int(o["checkpoint_size"]),
                cursor={int(p): int(off) for p, off in dict(o["cursor"]).items()},
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not an appender state: {exc}") from exc
        if state.size < 1 or state.head_offset < 0 or state.chain.next_index != state.size or len(state.root) != 32:
            raise ValueError("not an appender state: inconsistent sizes")
        return state


def save_state(path: Path, state: AppenderState) -> None:
    """Write ``state`` to ``path`` (0600) through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, state.to_json())
    finally:
        os.close(fd)
    tmp.replace(path)


def load_state(path: Path, topic: str) -> tuple[AppenderState | None, str]:
    """The state saved at ``path`` for ``topic``, or None and why not (the caller restores from the start)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "no saved state"
    except OSError as exc:
        return None, f"the saved state is unreadable ({exc.strerror})"
    try:
        state = AppenderState.from_json(data)
    except ValueError as exc:
        return None, str(exc)
    if state.topic != topic:
        return None, f"the saved state is for topic {state.topic!r}"
    return state, ""
