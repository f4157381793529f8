from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.submission import parse_submission_list
from loadtests.edge_bench import DRAIN_GOAL_EVENTS, _batch_body, projected_goal_drain_s


def test_projection_of_the_goal_backlog_is_linear_in_the_measured_rate() -> None:
    assert projected_goal_drain_s(200_000, 10.0) == 50.0


def test_projection_of_a_full_size_run_is_the_measured_time() -> None:
    assert projected_goal_drain_s(DRAIN_GOAL_EVENTS, 6.5) == 6.5


@pytest.mark.parametrize(("events", "seconds"), [(0, 1.0), (10, 0.0), (-1, 1.0)])
def test_projection_refuses_an_empty_measurement(events: int, seconds: float) -> None:
    with pytest.raises(ValueError, match="positive drain measurement"):
        projected_goal_drain_s(events, seconds)


@given(st.integers(1, 10_000_000), st.floats(0.001, 1_000.0), st.floats(1.1, 10.0))
def test_a_faster_drain_projects_a_shorter_time(events: int, seconds: float, speedup: float) -> None:
    assert projected_goal_drain_s(events, seconds / speedup) < projected_goal_drain_s(events, seconds)


def test_bench_batches_pass_the_real_intake_validation() -> None:
    subs = parse_submission_list(orjson.loads(_batch_body(7)), lambda nhs: "pk-" + nhs)
    assert len(subs) == 7
    assert {s.patient_key for s in subs} == {"pk-9434765919", "pk-9434765870", "pk-4010232137"}
