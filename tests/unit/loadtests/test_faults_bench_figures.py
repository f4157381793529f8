"""The fault bench's catch-up arithmetic: each submission clocked from its own start, the max kept, unseen = None."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from broker.topics import TopicNames
from consent_io.connection import KafkaConnection
from loadtests.faults_bench import Ack, Bench, Observer


def _bench(seen: dict[str, float]) -> Bench:
    observer = Observer(KafkaConnection("127.0.0.1:1"), TopicNames("t"))
    for event_id, at in seen.items():
        observer.events_seen[event_id] = at
        observer.state_seen[f"p-{event_id}"] = at - 0.5  # the state shows it a little earlier: max of both counts
    unused = cast(Any, None)
    return Bench(unused, TopicNames("t"), unused, Path(), unused, observer)


def _ack(event_id: str, seq: int) -> Ack:
    return Ack(0.0, event_id, f"p-{event_id}", "agent", seq)


def test_the_lag_is_the_latest_visibility_each_from_its_own_clock() -> None:
    bench = _bench({"a": 12.0, "b": 15.0})
    acks = [_ack("a", 1), _ack("b", 2)]
    assert bench.lag(acks, lambda _: 10.0) == 5.0
    # "b" waited for its agent's first publish at 14: clocked from there, "a" (2 s) is now the longest
    assert bench.lag(acks, lambda a: 14.0 if a.event_id == "b" else 10.0) == 2.0


def test_already_visible_is_zero_and_an_unseen_submission_is_none() -> None:
    bench = _bench({"a": 5.0})
    assert bench.lag([_ack("a", 1)], lambda _: 10.0) == 0.0
    assert bench.lag([], lambda _: 10.0) == 0.0
    assert bench.lag([_ack("a", 1), _ack("missing", 2)], lambda _: 0.0) is None


def test_restores_beyond_one_per_assigned_partition_or_recovery_count_as_a_storm() -> None:
    from loadtests.coreproc import churn_of

    calm = "\n".join(
        [
            "msg=stage=reconciler partition=0 restored=10 restore=full",
            "msg=stage=reconciler partition=1 restored=12 restore=full",
            "msg=stage=reconciler assigned=[0, 1]",
            "msg=stage=reconciler partition=1 restored=0 restore=local",
            "msg=stage=reconciler partition=1 recovered in 1.2 s (close 0.0, open and restore 1.1, seek 0.1)",
        ]
    )
    assert churn_of(calm) == {
        "restores": 3, "rejoins": 0, "assigned_partitions": 2, "recoveries": 1, "excess_restores": 0,
    }  # fmt: skip
    storm = calm + "\nmsg=Heartbeat failed: local member_id was not recognized" + "\nmsg=partition=0 restored=3" * 4
    assert churn_of(storm)["excess_restores"] == 4 and churn_of(storm)["rejoins"] == 1


def test_the_restores_of_an_assignment_that_failed_part_way_are_that_assignments() -> None:
    from loadtests.coreproc import churn_of

    interrupted = "\n".join(
        [
            "msg=stage=reconciler partition=0 restored=0 restore=kept",
            "msg=stage=reconciler partition=1 restored=0 restore=kept",
            "msg=stage=reconciler assignment=[0, 1, 2] failed error=KafkaConnectionError('closed')",
            "msg=stage=reconciler partition=0 restored=0 restore=kept",
            "msg=stage=reconciler partition=1 restored=0 restore=kept",
            "msg=stage=reconciler partition=2 restored=0 restore=kept",
            "msg=stage=reconciler assigned=[0, 1, 2]",
        ]
    )
    assert churn_of(interrupted)["assigned_partitions"] == 6
    assert churn_of(interrupted)["excess_restores"] == 0
