"""The witness's state file: per origin, the latest checkpoint it cosigned (JSON, replaced atomically)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import orjson

from broker.audit.errors import AuditError
from broker.audit.witness import WitnessedLog

__all__ = ["StateFile"]


class StateFile:
    """Load once at start; :meth:`save` writes a temporary file, fsyncs it and renames it over the old one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, WitnessedLog]:
        if not self.path.exists():
            return {}
        try:
            raw: dict[str, Any] = orjson.loads(self.path.read_bytes())
            return {
                origin: WitnessedLog(int(o["size"]), base64.b64decode(o["root"]), str(o["note"]))
                for origin, o in raw.items()
            }
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AuditError(f"witness state file {self.path} is unreadable ({exc}); restore it from a backup") from exc

    def save(self, state: dict[str, WitnessedLog]) -> None:
        data = orjson.dumps(
            {o: {"size": s.size, "root": base64.b64encode(s.root).decode(), "note": s.note} for o, s in state.items()},
            option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.path)
