"""Latency summaries: HDR and exact percentiles agree with a known distribution."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.latency import HDR_AVAILABLE, LatencyRecorder


def test_exact_percentiles_use_nearest_rank() -> None:
    rec = LatencyRecorder(use_hdr=False)
    for v in range(1, 101):
        rec.record(float(v))
    s = rec.summary()
    assert (s.count, s.p50, s.p95, s.p99, s.max, s.mean, s.method) == (100, 50.0, 95.0, 99.0, 100.0, 50.5, "exact")


@pytest.mark.skipif(not HDR_AVAILABLE, reason="hdrh not installed")
def test_hdr_percentiles_are_within_a_tenth_of_a_percent() -> None:
    rec = LatencyRecorder(use_hdr=True)
    for v in range(1, 1001):
        rec.record(float(v))
    s = rec.summary()
    assert s.method == "hdr"
    assert s.p50 == pytest.approx(500.0, rel=1e-3)
    assert s.p99 == pytest.approx(990.0, rel=1e-3)
    assert s.max == 1000.0


def test_empty_recorder_reports_no_percentiles() -> None:
    s = LatencyRecorder(use_hdr=False).summary()
    assert (s.count, s.p50, s.p99, s.max) == (0, None, None, None)


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=0.001, max_value=100_000.0), min_size=1, max_size=200), st.booleans())
def test_percentiles_are_ordered_and_never_above_max(values: list[float], hdr: bool) -> None:
    rec = LatencyRecorder(use_hdr=hdr and HDR_AVAILABLE)
    for v in values:
        rec.record(v)
    s = rec.summary()
    assert s.p50 is not None and s.p95 is not None and s.p99 is not None and s.max is not None
    assert s.p50 <= s.p95 <= s.p99 <= s.max
    assert s.max == pytest.approx(max(values), abs=1e-3)
