"""The core's Prometheus counters, summed per stage and differenced between two scrapes."""

from __future__ import annotations

from loadtests.scrape import StageCounters, parse_stage_counters

EXPOSITION = """\
# HELP broker_stage_batch_seconds Process + transaction time per partition batch
broker_stage_batch_seconds_bucket{le="0.001",stage="verifier"} 0.0
broker_stage_batch_seconds_count{stage="verifier"} 12.0
broker_stage_batch_seconds_sum{stage="verifier"} 0.5
broker_stage_records_in_total{stage="verifier"} 40.0
broker_stage_records_in_total{stage="reconciler"} 4000.0
broker_stage_transaction_aborts_total{stage="reconciler"} 1.0
broker_stage_records_out_total{stage="verifier",topic="x.events"} 4000.0
"""


def test_counters_are_read_per_stage() -> None:
    counters = parse_stage_counters(EXPOSITION)
    assert counters == {
        "verifier": StageCounters(batch_seconds=0.5, batches=12.0, records_in=40.0),
        "reconciler": StageCounters(records_in=4000.0, aborts=1.0),
    }


def test_counters_add_and_subtract_fieldwise() -> None:
    a = StageCounters(1.0, 2.0, 3.0, 4.0)
    b = StageCounters(0.5, 1.0, 1.0, 1.0)
    assert a.plus(b) == StageCounters(1.5, 3.0, 4.0, 5.0)
    assert a.minus(b) == StageCounters(0.5, 1.0, 2.0, 3.0)
