"""The demo's narration: plain lines for the person watching (the demo's only output)."""

from __future__ import annotations

__all__ = ["say"]


def say(text: str = "") -> None:
    print(text, flush=True)  # noqa: T201 - the demo's output is for a person to read
