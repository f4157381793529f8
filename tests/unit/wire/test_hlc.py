from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent_wire import HybridClock, pack, unpack

WALL = st.integers(min_value=0, max_value=2**40)


class _Wall:
    def __init__(self, readings: list[int]) -> None:
        self.readings = readings
        self.i = 0

    def __call__(self) -> int:
        value = self.readings[self.i % len(self.readings)]
        self.i += 1
        return value


def test_pack_and_unpack_are_inverse() -> None:
    assert unpack(pack(1_700_000_000_000, 7)) == (1_700_000_000_000, 7)
    assert pack(1, 0) == 1 << 16
    with pytest.raises(ValueError, match="logical=65536"):
        pack(1, 1 << 16)


def test_tick_follows_the_wall_clock_when_it_advances() -> None:
    clock = HybridClock(_Wall([10, 20]))
    assert [unpack(clock.tick()), unpack(clock.tick())] == [(10, 0), (20, 0)]


def test_tick_counts_logically_when_the_wall_clock_stalls_or_goes_back() -> None:
    clock = HybridClock(_Wall([10, 10, 5]))
    assert [unpack(clock.tick()) for _ in range(3)] == [(10, 0), (10, 1), (10, 2)]


def test_observe_jumps_past_a_remote_stamp_from_the_future() -> None:
    clock = HybridClock(_Wall([10]))
    assert unpack(clock.observe(pack(50, 3))) == (50, 4)
    assert unpack(clock.tick()) == (50, 5)


def test_logical_overflow_borrows_a_millisecond() -> None:
    clock = HybridClock(_Wall([10]), last=pack(10, 0xFFFF))
    assert unpack(clock.tick()) == (11, 0)


@given(
    st.lists(WALL, min_size=1, max_size=30),
    st.lists(st.one_of(st.none(), st.tuples(WALL, st.integers(0, 0xFFFF))), min_size=1, max_size=60),
)
def test_stamps_strictly_increase_under_skew_and_backwards_wall_clocks(
    walls: list[int], ops: list[tuple[int, int] | None]
) -> None:
    clock = HybridClock(_Wall(walls))
    last = -1
    for op in ops:
        if op is None:
            stamp = clock.tick()
        else:
            remote = pack(*op)
            stamp = clock.observe(remote)
            assert stamp > remote
        assert stamp > last
        last = stamp


@given(st.lists(st.tuples(st.integers(0, 2**40), st.integers(-5_000, 5_000)), min_size=2, max_size=20))
def test_two_skewed_clocks_exchanging_messages_keep_causal_order(steps: list[tuple[int, int]]) -> None:
    """A message's receive stamp is always after its send stamp, whatever the skew."""
    t = {"now": 0, "skew": 0}
    a = HybridClock(lambda: t["now"])
    b = HybridClock(lambda: max(0, t["now"] + t["skew"]))
    for now, skew in steps:
        t["now"], t["skew"] = now, skew
        sent = a.tick()
        assert b.observe(sent) > sent
        back = b.tick()
        assert a.observe(back) > back
