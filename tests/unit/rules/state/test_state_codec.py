"""The canonical byte form of a patient state (state topic records)."""

from __future__ import annotations

import orjson
import pytest

from consent_rules.state import STATE_FORMAT, PatientState, StateDecodeError, apply, empty_state
from consent_wire.codes import ConsentDirective, DataClass, HiddenField, PurposeOfUse, ShieldingAction
from consent_wire.model import ConsentDecision, ShieldingFlag

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
    assert (obj["version"], obj["applied"]) == (2, ["a" * 32, "b" * 32])
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
        }
    ]
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
