"""Invariants of the per-patient merge, checked with hypothesis."""

from __future__ import annotations

from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st

from consent_rules.state import PatientState, Source, Stamp, apply, classify, empty_state, merge, replay
from consent_wire.codes import ObjectionKind
from consent_wire.model import ConsentDecision, Event, Objection, ShieldingFlag

from .strategies import PATIENT, event_lists, events, lists_of_one_history

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)  # modest: keeps the unit suite fast


def state_of(evs: list[Event]) -> PatientState:
    return replay(PATIENT, evs)


def source_of(evs: list[Event]) -> dict[str, tuple[int, int]]:
    """A fixed (partition, offset) per event id, as the events topic would give."""
    return {e.event_id: (int(e.event_id[:4], 16) % 6, i) for i, e in enumerate(evs)}


@PROPERTY_SETTINGS
@given(st.data(), event_lists())
def test_any_order_with_duplicates_gives_identical_bytes(data: st.DataObject, evs: list[Event]) -> None:
    duplicates = data.draw(st.lists(st.sampled_from(evs), max_size=10)) if evs else []
    shuffled = data.draw(st.permutations(evs + duplicates))
    canonical = replay(PATIENT, sorted(evs, key=Stamp.of))
    assert replay(PATIENT, shuffled).to_bytes() == canonical.to_bytes()


@PROPERTY_SETTINGS
@given(st.data(), event_lists())
def test_sources_do_not_break_determinism_when_redelivered_without_them(data: st.DataObject, evs: list[Event]) -> None:
    sources = source_of(evs)
    deliveries: list[tuple[Event, Source | None]] = [(e, sources[e.event_id]) for e in evs]
    deliveries += [(e, None) for e in data.draw(st.lists(st.sampled_from(evs), max_size=10))] if evs else []
    expected = reduce(lambda s, d: apply(s, d[0], d[1]), deliveries, empty_state(PATIENT))
    shuffled = data.draw(st.permutations(deliveries))
    got = reduce(lambda s, d: apply(s, d[0], d[1]), shuffled, empty_state(PATIENT))
    assert got.to_bytes() == expected.to_bytes()
    assert all(p.source == sources[p.event_id] for p in got.provenance.values())


@PROPERTY_SETTINGS
@given(lists_of_one_history(3))
def test_merge_is_commutative_associative_and_idempotent(lists: list[list[Event]]) -> None:
    a, b, c = (state_of(xs) for xs in lists)
    assert merge(a, b).to_bytes() == merge(b, a).to_bytes()
    assert merge(merge(a, b), c).to_bytes() == merge(a, merge(b, c)).to_bytes()
    assert merge(a, a) == a
    assert merge(a, empty_state(PATIENT)) == a


@PROPERTY_SETTINGS
@given(lists_of_one_history(2))
def test_merge_of_states_equals_replay_of_union(lists: list[list[Event]]) -> None:
    xs, ys = lists
    assert merge(state_of(xs), state_of(ys)).to_bytes() == state_of(xs + ys).to_bytes()


@PROPERTY_SETTINGS
@given(event_lists(), events())
def test_apply_is_idempotent(evs: list[Event], event: Event) -> None:
    once = apply(state_of(evs), event)
    assert apply(once, event) == once


@PROPERTY_SETTINGS
@given(event_lists())
def test_replay_equals_fold_of_merged_singletons(evs: list[Event]) -> None:
    singletons = [apply(empty_state(PATIENT), e) for e in evs]
    folded = reduce(merge, singletons, empty_state(PATIENT))
    assert folded.to_bytes() == state_of(evs).to_bytes()


@PROPERTY_SETTINGS
@given(st.data(), event_lists(min_size=1))
def test_as_at_folds_exactly_the_events_stamped_up_to_it(data: st.DataObject, evs: list[Event]) -> None:
    cut = data.draw(st.sampled_from(evs)).hlc + data.draw(st.sampled_from([-1, 0, 1]))
    as_at = replay(PATIENT, evs, as_at_hlc=cut)
    assert as_at == state_of([e for e in evs if e.hlc <= cut])
    stamps = [r.stamp.hlc for r in as_at.consents.values()] + [r.stamp.hlc for r in as_at.objections.values()]
    stamps += [] if as_at.shielding is None else [as_at.shielding.stamp.hlc]
    assert all(h <= cut for h in stamps)


@PROPERTY_SETTINGS
@given(event_lists())
def test_bytes_round_trip_to_an_equal_state(evs: list[Event]) -> None:
    state = state_of(evs)
    assert PatientState.from_bytes(state.to_bytes()) == state


@PROPERTY_SETTINGS
@given(event_lists())
def test_each_register_holds_the_latest_accepted_event_for_its_scope(evs: list[Event]) -> None:
    expected: dict[str, Stamp] = {}
    for e in evs:
        name = _register_name(e)
        if name is not None and _kept(e):
            expected[name] = max(expected.get(name, Stamp.of(e)), Stamp.of(e))
        if name is not None and classify(e) is None and e.subject_deceased_ms is not None:
            expected["deceased"] = max(expected.get("deceased", Stamp.of(e)), Stamp.of(e))  # issue 14
    state = state_of(evs)
    assert {k: p.event_id for k, p in state.provenance.items()} == {k: s.event_id for k, s in expected.items()}
    assert state.applied == {s.event_id for s in _accepted(evs)}
    assert state.version == len(state.applied)


@PROPERTY_SETTINGS
@given(st.data(), event_lists())
def test_the_deceased_register_is_the_latest_statement_whatever_the_order_of_arrival(
    data: st.DataObject, evs: list[Event]
) -> None:
    """Issue 14: a death and its withdrawal are last-writer-wins by stamp, never by arrival; the
    decision's input (``is_deceased``) is the latest applied statement (> 0 deceased, 0 withdrawn)."""
    stated = [e for e in evs if _register_name(e) is not None and classify(e) is None and e.subject_deceased_ms]
    stated += [e for e in evs if _register_name(e) is not None and classify(e) is None and e.subject_deceased_ms == 0]
    latest = max(stated, key=Stamp.of, default=None)
    expected = latest is not None and latest.subject_deceased_ms != 0
    shuffled = data.draw(st.permutations(evs))
    assert state_of(evs).is_deceased is expected
    assert state_of(shuffled).is_deceased is expected
    halves = merge(state_of(shuffled[: len(evs) // 2]), state_of(shuffled[len(evs) // 2 :]))
    assert halves.is_deceased is expected and halves.deceased == state_of(evs).deceased


def _accepted(evs: list[Event]) -> list[Stamp]:
    return [Stamp.of(e) for e in evs if _register_name(e) is not None and _kept(e)]


def _kept(e: Event) -> bool:
    """Applied, or (an unauthorised shielding SET) kept in quarantine (issue 14, rule 10)."""
    return classify(e) in (None, "UNAUTHORISED_SHIELDING_SET")


def _register_name(e: Event) -> str | None:
    """An independent statement of which register an event writes."""
    match e.payload:
        case ConsentDecision(purpose=purpose, data_class=data_class, recipient=recipient):
            return f"consent/{purpose.value}/{data_class.value}/{recipient}"
        case Objection(kind=ObjectionKind.TYPE1 | ObjectionKind.LOCAL_DISSENT as kind):
            return f"objection/{kind.value}/{e.site}"  # per organisation (issue 14, rule 6)
        case Objection(kind=kind):
            return f"objection/{kind.value}"
        case ShieldingFlag() if classify(e) == "UNAUTHORISED_SHIELDING_SET":
            return "quarantine/shielding"
        case ShieldingFlag():
            return "shielding"
    return None


@PROPERTY_SETTINGS
@given(event_lists())
def test_the_state_as_at_its_newest_stamp_is_the_state(evs: list[Event]) -> None:
    state = state_of(evs)
    newest = state.newest_stamp

    if newest is None:
        assert state.version == 0
    else:
        assert replay(PATIENT, evs, as_at_hlc=newest.hlc) == state
        assert replay(PATIENT, evs, as_at_hlc=newest.hlc - 1) != state
