"""Exponential backoff with full jitter (pure): the edge agent's reconnects and the core's sessions.

"Full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015): sleep a uniform
random time in ``[0, min(cap, base * 2**attempt)]``; it spreads reconnecting agents best after
a site-wide or core-wide outage.
"""

from __future__ import annotations

__all__ = ["full_jitter_delay"]

_MAX_EXPONENT = 32  # 2**32 * base is far beyond any cap; avoids float overflow on long outages


def full_jitter_delay(attempt: int, *, base_s: float, cap_s: float, unit_random: float) -> float:
    """Delay before retry number ``attempt`` (0-based); ``unit_random`` is uniform in [0, 1)."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, _MAX_EXPONENT))
    return ceiling * unit_random
