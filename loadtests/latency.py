"""Latency recording: an HDR histogram (``hdrh``) when installed, else exact percentiles over all samples."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["HDR_AVAILABLE", "LatencyRecorder", "LatencySummary"]

try:
    from hdrh.histogram import HdrHistogram

    HDR_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    HDR_AVAILABLE = False

# Track 1 us .. 10 min with 3 significant digits (HdrHistogram's usual precision: 0.1% error).
_LOWEST_US = 1
_HIGHEST_US = 600_000_000
_SIGNIFICANT_DIGITS = 3


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    mean: float | None
    method: str  # "hdr" or "exact"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _exact_percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile (the smallest value with at least pct% of samples at or below it)."""
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


class LatencyRecorder:
    """Record latencies in milliseconds; summarise as p50/p95/p99/max."""

    def __init__(self, use_hdr: bool = HDR_AVAILABLE) -> None:
        self._hdr: Any = HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIGNIFICANT_DIGITS) if use_hdr else None
        self._samples: list[float] = []
        self._count = 0
        self._sum = 0.0
        self._max = 0.0

    @property
    def count(self) -> int:
        return self._count

    def record(self, latency_ms: float) -> None:
        value = max(0.0, latency_ms)
        self._count += 1
        self._sum += value
        self._max = max(self._max, value)
        if self._hdr is not None:
            self._hdr.record_value(min(_HIGHEST_US, max(_LOWEST_US, round(value * 1000))))
        else:
            self._samples.append(value)

    def summary(self) -> LatencySummary:
        method = "hdr" if self._hdr is not None else "exact"
        if self._count == 0:
            return LatencySummary(0, None, None, None, None, None, method)
        if self._hdr is not None:
            # HDR buckets round up by at most 0.1%; never report a percentile above the exact maximum
            p50, p95, p99 = (min(self._max, self._hdr.get_value_at_percentile(p) / 1000.0) for p in (50.0, 95.0, 99.0))
        else:
            ordered = sorted(self._samples)
            p50, p95, p99 = (_exact_percentile(ordered, p) for p in (50.0, 95.0, 99.0))
        return LatencySummary(
            self._count,
            round(p50, 3),
            round(p95, 3),
            round(p99, 3),
            round(self._max, 3),
            round(self._sum / self._count, 3),
            method,
        )
