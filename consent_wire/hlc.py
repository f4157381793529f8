"""Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", OPODIS 2014).

A stamp is ``(physical_ms << 16) | logical`` in one int, so stamps compare as
ints. :meth:`HybridClock.tick` stamps a local event; :meth:`HybridClock.observe`
merges a remote stamp. Stamps never go backwards, whatever the wall clock does.
The wall clock is passed in (``now_ms``), never read here.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["LOGICAL_BITS", "HybridClock", "pack", "unpack"]

LOGICAL_BITS = 16  # model.Event.hlc: (physical_ms << 16) | logical
_LOGICAL_MAX = (1 << LOGICAL_BITS) - 1


def pack(physical_ms: int, logical: int) -> int:
    if physical_ms < 0 or not 0 <= logical <= _LOGICAL_MAX:
        raise ValueError(f"HLC parts out of range: physical_ms={physical_ms} logical={logical}")
    return (physical_ms << LOGICAL_BITS) | logical


def unpack(hlc: int) -> tuple[int, int]:
    """(physical_ms, logical)."""
    return hlc >> LOGICAL_BITS, hlc & _LOGICAL_MAX


class HybridClock:
    def __init__(self, now_ms: Callable[[], int], last: int = 0) -> None:
        self._now_ms = now_ms
        self._physical, self._logical = unpack(last)

    @property
    def last(self) -> int:
        return pack(self._physical, self._logical)

    def tick(self) -> int:
        """Stamp a local or send event."""
        now = self._now_ms()
        if now > self._physical:
            self._physical, self._logical = now, 0
        else:
            self._bump()
        return self.last

    def observe(self, remote_hlc: int) -> int:
        """Merge a received stamp; the result is greater than both it and every earlier stamp."""
        now = self._now_ms()
        remote_physical, remote_logical = unpack(remote_hlc)
        top = max(now, self._physical, remote_physical)
        if top == self._physical == remote_physical:
            self._logical = max(self._logical, remote_logical)
            self._bump()
        elif top == self._physical:
            self._bump()
        elif top == remote_physical:
            self._physical, self._logical = remote_physical, remote_logical
            self._bump()
        else:
            self._physical, self._logical = now, 0
        return self.last

    def _bump(self) -> None:
        if self._logical == _LOGICAL_MAX:  # logical overflow: borrow a millisecond rather than wrap
            self._physical += 1
            self._logical = 0
        else:
            self._logical += 1
