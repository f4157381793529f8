"""The mirror's lead lane (issue 18): shielding and events read first, published and fed before state records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import TopicPartition

from broker.mirror import MirrorPlanner
from broker.mirror.service import _BULK_RECORDS, _IDLE_WAIT_MS, ReplicaMirror, lanes, poll
from broker.topics import TopicNames
from tests.factories import patient, shielded_state_bytes
from tests.fakes import FakeMqttLink, FakeRecordSink
from tests.unit.mirror.test_mirror import _event_records
from tests.unit.mirror.test_mirror_publish import NOW, RecordingFeeds, _config

P, Q = patient(1), patient(2)
STATE0, STATE1 = TopicPartition("state", 0), TopicPartition("state", 1)
SHIELD0, SHIELD1 = TopicPartition("shielding", 0), TopicPartition("shielding", 1)
EVENTS0 = TopicPartition("events", 0)


@dataclass(frozen=True)
class Rec:
    offset: int
    key: bytes | None
    value: bytes | None


class ScriptedConsumer:
    """Answers each ``getmany`` from a script and records how it was asked (wait, max_records)."""

    def __init__(self, *answers: dict[TopicPartition, list[Any]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int, int | None]] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        self.calls.append((timeout_ms, max_records))
        return self.answers.pop(0)


def _shielding(key: str) -> bytes:
    return orjson.dumps(
        {"active": True, "hides": ["LOCATION"], "patient_key": key, "reason": "DOMESTIC_ABUSE",
         "stamp": {"agent_id": "a", "event_id": "e", "hlc": 5}},
        option=orjson.OPT_SORT_KEYS,
    )  # fmt: skip


def _mirror() -> ReplicaMirror:
    return ReplicaMirror(_config(TopicNames("pfx")), now_ms=lambda: NOW)


async def test_a_poll_takes_the_shielding_lane_first_without_waiting_then_a_bounded_bulk() -> None:
    urgent = ScriptedConsumer({SHIELD0: [Rec(7, P.encode(), b"s7")], SHIELD1: []})
    bulk = ScriptedConsumer({STATE0: [Rec(1, P.encode(), b"a")], EVENTS0: [Rec(3, None, b"e")]})
    polled = await poll(urgent, bulk)
    assert urgent.calls == [(0, None)]
    assert bulk.calls == [(0, _BULK_RECORDS)]  # no wait: the shielding lane held something
    assert list(polled) == [SHIELD0, STATE0, EVENTS0]  # shielding first; empty partitions dropped
    assert [r.offset for r in polled[SHIELD0]] == [7]


async def test_with_nothing_urgent_the_bulk_read_waits_briefly_for_records() -> None:
    urgent, bulk = ScriptedConsumer({SHIELD0: []}), ScriptedConsumer({})
    assert await poll(urgent, bulk) == {}
    assert bulk.calls == [(_IDLE_WAIT_MS, _BULK_RECORDS)]


def test_the_lead_lane_holds_shielding_and_events_in_poll_order_and_state_comes_after() -> None:
    a, b, c = [Rec(1, None, None)], [Rec(2, None, None)], [Rec(3, None, None)]
    lead, bulk = lanes({STATE0: a, EVENTS0: b, SHIELD1: c, STATE1: []}, "state")
    assert lead == [("events", b), ("shielding", c)]
    assert bulk == [("state", a)]  # empty partitions dropped


async def test_a_shielding_record_polled_after_bulk_state_is_published_and_fed_first() -> None:
    mirror, link, sink = _mirror(), FakeMqttLink(), FakeRecordSink()
    planner = MirrorPlanner()
    planner.add_site("A81001", P)
    planner.add_site("A81001", Q)
    batches = {
        STATE0: [Rec(1, Q.encode(), shielded_state_bytes(Q, NOW)), Rec(2, P.encode(), shielded_state_bytes(P, NOW))],
        SHIELD0: [Rec(5, P.encode(), _shielding(P))],
    }
    await mirror._mirror_pass(planner, batches, link, sink, RecordingFeeds())
    assert [t for t, *_ in link.published] == [
        f"consent/shielding/A81001/{P}",
        f"consent/state/A81001/{Q}",
        f"consent/state/A81001/{P}",
    ]
    assert [k for _, k, _ in sink.sent] == [b"shielding/" + P.encode(), b"state/" + Q.encode(), b"state/" + P.encode()]


async def test_a_shielding_record_for_a_site_learnt_later_in_the_same_poll_reaches_it_in_the_lead_lane() -> None:
    mirror, link, sink = _mirror(), FakeMqttLink(), FakeRecordSink()
    planner = MirrorPlanner()
    (event,) = _event_records("B82002", [P])
    batches = {
        SHIELD0: [Rec(5, P.encode(), _shielding(P))],
        STATE0: [Rec(2, P.encode(), shielded_state_bytes(P, NOW))],
        EVENTS0: [Rec(1, None, event)],
    }
    await mirror._mirror_pass(planner, batches, link, sink, RecordingFeeds())
    site_key = planner.site_key("B82002", P)
    assert site_key  # the site's own pseudonym, learnt from its event
    # held while no site was known, then sent to the new site when its event was read: both in the lead lane,
    # before the state record polled with them
    assert [t for t, *_ in link.published] == [
        f"consent/shielding/B82002/{site_key}",
        f"consent/state/B82002/{site_key}",
    ]
    assert len(sink.sent) == 2
