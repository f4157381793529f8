"""A plain progress display on stderr: one line per step, throttled status lines while waiting."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

STATUS_EVERY_S = 1.0  # at most one status line a second keeps the display readable in CI logs


class Progress:
    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._started = time.monotonic()
        self._last_status = 0.0
        self.phase = ""

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def step(self, phase: str, message: str) -> None:
        self.phase = phase
        self._write(f"{phase}: {message}")

    def status(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            self._write(f"{self.phase}:   .. {message}")

    def _write(self, line: str) -> None:
        self._stream.write(f"[bench {self.elapsed():6.1f}s] {line}\n")
        self._stream.flush()
