"""Who may set or clear a shielding flag."""

from __future__ import annotations

import pytest

from consent_rules.shielding import (
    SHIELDING_ROLES,
    ShieldingPolicyError,
    check_shielding,
    shielding_rejection,
)
from consent_wire.codes import HiddenField, ShieldingAction
from consent_wire.model import ShieldingFlag


@pytest.mark.parametrize("role", sorted(SHIELDING_ROLES))
@pytest.mark.parametrize("action", list(ShieldingAction))
def test_authorised_roles_may_set_and_clear(role: str, action: ShieldingAction) -> None:
    flag = ShieldingFlag(action, (HiddenField.LOCATION,), role)
    check_shielding(flag)
    assert shielding_rejection(flag) is None


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (ShieldingAction.SET, "UNAUTHORISED_SHIELDING_SET"),
        (ShieldingAction.CLEAR, "UNAUTHORISED_SHIELDING_CLEAR"),
    ],
)
@pytest.mark.parametrize("role", ["NURSE", "", "gp"])
def test_other_roles_are_refused_with_a_reason_per_action(role: str, action: ShieldingAction, reason: str) -> None:
    flag = ShieldingFlag(action, (HiddenField.LOCATION,), role)
    with pytest.raises(ShieldingPolicyError) as info:
        check_shielding(flag)
    assert info.value.reason == reason
    assert shielding_rejection(flag) == reason


def test_shielding_roles_are_the_contracted_three() -> None:
    assert frozenset({"CALDICOTT_GUARDIAN", "SAFEGUARDING_LEAD", "GP"}) == SHIELDING_ROLES
