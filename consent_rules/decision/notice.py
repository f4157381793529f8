"""Plain-English notices for the patient when their wish was set aside (rec 7; principle 8), pure.

When a decision shares a patient's data although they objected or limited it (a statutory mandate,
the public interest, an exemption, a gateway outside the opt-out, break-glass), the patient should be
able to read later, in plain words, what happened and why. The notice is derived from the decision's
stable codes, so the core can show it for any past decision kept on the audit trail (the patient's
access log, ``GET /v1/patients/{nhs_number}/accesses``) as well as in the decision's answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from consent_rules.decision.outcome import Code
from consent_wire.codes import PurposeOfUse

__all__ = ["patient_notice"]

_PURPOSE = {
    PurposeOfUse.TREAT: "your care",
    PurposeOfUse.ETREAT: "your emergency care",
    PurposeOfUse.COC: "coordinating your care",
    PurposeOfUse.HOPERAT: "planning and running health services",
    PurposeOfUse.HQUALIMP: "checking and improving the quality of care",
    PurposeOfUse.HPAYMT: "paying for care",
    PurposeOfUse.HRESCH: "research",
    PurposeOfUse.PUBHLTH: "protecting public health",
    PurposeOfUse.BTG: "emergency access to your record",
    PurposeOfUse.ANY: "a purpose",
}

# Each code that means the patient's wish (or a usual safeguard) was set aside, in the order checked.
_WHY = (
    (
        Code.STATUTORY_MANDATE_OVERRIDES_OBJECTION,
        "You had objected, but the law required your information to be shared.",
    ),
    (
        Code.PUBLIC_INTEREST_OVERRIDES_OBJECTION,
        "You had objected, but sharing was judged necessary to protect someone from serious harm. A senior "
        "person responsible for confidentiality approved this and it has been recorded.",
    ),
    (
        Code.SAFEGUARDING_OVERRIDES_RELATIONSHIP,
        "The people who received it are not part of your care team, but sharing was judged necessary to "
        "protect someone from serious harm. A senior person responsible for confidentiality approved this.",
    ),
    (
        Code.GATEWAY_OUTSIDE_OPT_OUT,
        "You have opted out of your information being used for research and planning, but your opt-out does "
        "not apply here: the law allows it to be used to control infectious disease and other risks to public "
        "health, or the approval for this use was given an exemption by the Confidentiality Advisory Group.",
    ),
    (
        Code.EXEMPTION_OVERRIDES_OBJECTION,
        "You had objected, but your objection was recorded with an exemption for this particular use.",
    ),
    (
        Code.BREAK_GLASS,
        "Your record was opened in an emergency without the usual checks. The access was recorded and the "
        "organisation's privacy officer was told, so it can be reviewed.",
    ),
)


def patient_notice(codes: Iterable[str], purpose: PurposeOfUse, organisation: str, *, permitted: bool) -> str | None:
    """The notice for a decision with these ``codes``, or ``None`` when no wish of the patient was set aside."""
    if not permitted:
        return None
    given = set(codes)
    for code, why in _WHY:
        if code.value in given:
            return (
                f"Your information was shared with organisation {organisation} for {_PURPOSE[purpose]}. {why} "
                "You can ask your GP practice or the organisation's data protection officer about it."
            )
    return None
