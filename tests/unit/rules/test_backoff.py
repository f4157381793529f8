from __future__ import annotations

import pytest

from consent_rules.backoff import full_jitter_delay


def test_full_jitter_delay_is_capped_and_scaled() -> None:
    assert full_jitter_delay(0, base_s=0.5, cap_s=60, unit_random=1.0) == 0.5
    assert full_jitter_delay(3, base_s=0.5, cap_s=60, unit_random=0.5) == 2.0
    assert full_jitter_delay(10_000, base_s=0.5, cap_s=60, unit_random=1.0) == 60
    assert full_jitter_delay(5, base_s=0.5, cap_s=60, unit_random=0.0) == 0.0


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 0, got -1"):
        full_jitter_delay(-1, base_s=0.5, cap_s=60, unit_random=0.5)
