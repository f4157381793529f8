"""The canonical byte form of a patient state (state topic records)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from consent_rules.state import STATE_FORMAT, PatientState, StateDecodeError, apply, empty_state
from consent_rules.state.ledger import LEGACY_AGENT, Mark
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
    ShieldingAction,
)
from consent_wire.model import ConsentDecision, Objection, ProxyAuthority, ShieldingFlag

from .strategies import BASE_MS, PATIENT, hlc_of, make_event


def sample_state() -> PatientState:
    grant = make_event(
        ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.GENERAL, "RX1", BASE_MS, None),
        hlc=hlc_of(BASE_MS),
        event_id="a" * 32,
    )
    flag = make_event(
        ShieldingFlag(ShieldingAction.SET, (HiddenField.LOCATION,), "GP", "CHILD_PROTECTION"),
        hlc=hlc_of(BASE_MS, 1),
        event_id="b" * 32,
    )
    return apply(apply(empty_state(PATIENT), grant, (4, 100)), flag)


def test_state_bytes_are_sorted_json_with_version_applied_and_provenance() -> None:
    data = sample_state().to_bytes()
    obj = orjson.loads(data)
    assert data == orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    assert obj["format"] == STATE_FORMAT
    assert (obj["version"], obj["applied"]) == (2, [["agent-a", 1, "a" * 32], ["agent-a", 1, "b" * 32]])
    assert obj["marks"] == []
    assert obj["consents"] == [
        {
            "purpose": "TREAT",
            "data_class": "GENERAL",
            "recipient": "RX1",
            "directive": "OPTIN",
            "period_start_ms": BASE_MS,
            "period_end_ms": None,
            "stamp": {"hlc": hlc_of(BASE_MS), "agent_id": "agent-a", "event_id": "a" * 32},
            "source": [4, 100],
            "policy_ref": None,
            "proxy": None,
        }
    ]
    assert obj["quarantine"] is None
    assert obj["deceased"] is None
    assert obj["shielding"]["hides"] == ["LOCATION"]
    assert obj["shielding"]["source"] is None


def test_state_round_trips_through_bytes() -> None:
    state = sample_state()
    assert PatientState.from_bytes(state.to_bytes()) == state


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.update(version=5),
        lambda o: o.update(format=99),
        lambda o: o.pop("applied"),
        lambda o: o["consents"][0].update(directive="MAYBE"),
        lambda o: o["consents"][0]["stamp"].update(hlc="1"),
        lambda o: o["shielding"].update(active=1),
        lambda o: o.update(consents=o["consents"] * 2),
    ],
    ids=["version", "format", "missing", "bad_enum", "hlc_str", "active_int", "duplicate_scope"],
)
def test_malformed_or_non_canonical_state_record_is_rejected(mutate: object) -> None:
    obj = orjson.loads(sample_state().to_bytes())
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(StateDecodeError) as info:
        PatientState.from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    assert info.value.reason == "BAD_STATE"


def test_non_json_state_record_is_rejected() -> None:
    for data in (b"", b"\xff\xfe", b"[]", b"null"):
        with pytest.raises(StateDecodeError):
            PatientState.from_bytes(data)


def _format_2(state: PatientState) -> dict[str, object]:
    """The same state as format 2 wrote it: every applied id, no policy_ref, exempt_flows or quarantine."""
    obj = orjson.loads(_all_ids_bytes(state))
    obj["format"] = 2
    del obj["quarantine"]
    for c in obj["consents"]:
        del c["policy_ref"]
    for o in obj["objections"]:
        del o["exempt_flows"]
    return obj


def _legacy_bytes(state: PatientState, reason: str) -> bytes:
    """The same state as format 1 wrote it: shielding with its reason, every applied id."""
    obj = _format_2(state)
    obj["format"] = 1
    obj["shielding"]["reason"] = reason  # type: ignore[index]
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def test_a_stored_format_2_record_is_read_with_format_3_defaults_and_its_ids_counted() -> None:
    state = sample_state()
    old = orjson.dumps(_format_2(state), option=orjson.OPT_SORT_KEYS)
    assert PatientState.from_bytes(old) == _counted(state)
    assert orjson.loads(PatientState.from_bytes(old).to_bytes())["format"] == STATE_FORMAT


def test_a_format_2_record_with_a_format_3_field_is_rejected() -> None:
    obj = _format_2(sample_state())
    obj["quarantine"] = None
    with pytest.raises(StateDecodeError):
        PatientState.from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


def _format_5(state: PatientState) -> dict[str, Any]:
    """The same state as format 5 wrote it: no deceased register."""
    obj = orjson.loads(state.to_bytes())
    assert obj["deceased"] is None
    obj["format"] = 5
    del obj["deceased"]
    return obj  # type: ignore[no-any-return]


def test_a_stored_format_5_record_is_read_with_no_death_stated_and_rewritten_as_format_6() -> None:
    """Issue 14, deceased: a record written before the deceased register existed states no death."""
    state = sample_state()
    read = PatientState.from_bytes(orjson.dumps(_format_5(state), option=orjson.OPT_SORT_KEYS))
    assert read == state
    assert read.deceased is None and not read.is_deceased
    assert orjson.loads(read.to_bytes())["format"] == STATE_FORMAT == 6


def test_a_format_5_record_with_a_deceased_register_is_rejected() -> None:
    obj = _format_5(sample_state())
    obj["deceased"] = None
    with pytest.raises(StateDecodeError):
        PatientState.from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


@pytest.mark.parametrize(("deceased_ms", "deceased"), [(BASE_MS, True), (0, False)])
def test_the_deceased_register_round_trips_with_only_yes_or_no_and_its_stamp(deceased_ms: int, deceased: bool) -> None:
    event = replace(
        make_event(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER), hlc=hlc_of(BASE_MS, 5), event_id="d" * 32),
        subject_deceased_ms=deceased_ms,
    )
    state = apply(sample_state(), event, (2, 7))
    obj = orjson.loads(state.to_bytes())
    assert obj["deceased"] == {
        "deceased": deceased,
        "stamp": {"hlc": hlc_of(BASE_MS, 5), "agent_id": "agent-a", "event_id": "d" * 32},
        "source": [2, 7],
    }  # no date of death: only whether, and which event said so
    assert PatientState.from_bytes(state.to_bytes()) == state
    assert state.is_deceased is deceased


def _format_4(state: PatientState) -> dict[str, object]:
    """The same state as format 4 wrote it: no proxy on its consent and objection registers."""
    obj = _format_5(state)
    obj["format"] = 4
    for reg in [*obj["consents"], *obj["objections"]]:
        del reg["proxy"]
    return obj


def test_a_stored_format_4_record_is_read_with_no_proxy_and_rewritten_as_format_6() -> None:
    """Issue 14, proxies: a record written before the proxy existed reads as recorded by the person."""
    state = sample_state()
    read = PatientState.from_bytes(orjson.dumps(_format_4(state), option=orjson.OPT_SORT_KEYS))
    assert read == state
    assert all(reg.proxy is None for reg in read.consents.values())
    assert orjson.loads(read.to_bytes())["format"] == STATE_FORMAT


def test_a_format_4_record_with_a_proxy_is_rejected() -> None:
    obj = _format_4(sample_state())
    obj["consents"][0]["proxy"] = None  # type: ignore[index]
    with pytest.raises(StateDecodeError):
        PatientState.from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


def test_a_proxy_round_trips_through_the_state_bytes() -> None:
    attorney = ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, "7000-1234-5678")
    event = make_event(
        Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, proxy=attorney),
        hlc=hlc_of(BASE_MS, 5),
        event_id="c" * 32,
    )
    state = apply(sample_state(), event)
    obj = orjson.loads(state.to_bytes())
    assert obj["objections"][0]["proxy"] == {"authority": "LPA_HEALTH_WELFARE", "reference": "7000-1234-5678"}
    assert PatientState.from_bytes(state.to_bytes()) == state


def _all_ids_bytes(state: PatientState) -> bytes:
    """The same state as format 3 wrote it: the sorted list of every applied id."""
    obj = _format_4(state)
    obj["format"] = 3
    obj["applied"] = sorted(e[2] for e in obj["applied"])  # type: ignore[attr-defined]
    del obj["marks"]
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _counted(state: PatientState) -> PatientState:
    """``state`` as read from an older format: its ids counted into the legacy mark."""
    return replace(state, marks={LEGACY_AGENT: Mark(0, state.version)}, recent=frozenset())


def test_a_stored_format_3_record_is_read_with_its_ids_counted_and_rewritten_as_format_4() -> None:
    state = sample_state()
    read = PatientState.from_bytes(_all_ids_bytes(state))
    assert read == _counted(state)
    assert read.version == 2
    assert orjson.loads(read.to_bytes())["format"] == STATE_FORMAT


def test_the_shielding_reason_is_never_written_to_the_state_record() -> None:
    data = sample_state().to_bytes()
    assert b"CHILD_PROTECTION" not in data
    assert "reason" not in orjson.loads(data)["shielding"]


def test_a_stored_format_1_record_is_read_with_its_reason_dropped_and_rewritten_as_format_2() -> None:
    state = sample_state()
    legacy = _legacy_bytes(state, "DOMESTIC_ABUSE")
    assert PatientState.from_bytes(legacy) == _counted(state)
    assert b"DOMESTIC_ABUSE" not in PatientState.from_bytes(legacy).to_bytes()


@pytest.mark.parametrize(
    "mutate",
    [lambda o: o["shielding"].update(reason=7), lambda o: o["shielding"].pop("reason"), lambda o: o.update(version=9)],
    ids=["reason_not_str", "reason_missing", "version"],
)
def test_a_bad_format_1_record_is_rejected(mutate: object) -> None:
    obj = orjson.loads(_legacy_bytes(sample_state(), "X"))
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(StateDecodeError):
        PatientState.from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


def test_a_non_canonical_format_1_record_is_rejected() -> None:
    legacy = _legacy_bytes(sample_state(), "X")
    with pytest.raises(StateDecodeError):
        PatientState.from_bytes(orjson.dumps(orjson.loads(legacy), option=orjson.OPT_INDENT_2))


def test_a_format_2_record_carrying_a_reason_is_rejected() -> None:
    obj = orjson.loads(sample_state().to_bytes())
    obj["shielding"]["reason"] = "DOMESTIC_ABUSE"
    with pytest.raises(StateDecodeError):
        PatientState.from_bytes(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
