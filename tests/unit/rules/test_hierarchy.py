"""The purpose-of-use hierarchy table (HL7 v3 ActReason, issue 14 rule 3)."""

from __future__ import annotations

from consent_rules.hierarchy import PARENT, REQUEST_ONLY_PARENT, RequestOnlyPurpose, ancestors, depth, descendants, is_a
from consent_wire.codes import PurposeOfUse as P


def test_every_wire_purpose_has_a_place_under_any() -> None:
    assert set(PARENT) == set(P)
    assert all(ancestors(p)[-1] is P.ANY for p in P)


def test_hl7_kinds_of_treatment_and_operations() -> None:
    assert descendants(P.TREAT) == {P.TREAT, P.ETREAT, P.COC, P.BTG}
    assert descendants(P.HOPERAT) == {P.HOPERAT, P.HQUALIMP}
    assert ancestors(P.BTG) == (P.BTG, P.ETREAT, P.TREAT, P.ANY)


def test_a_narrower_code_is_a_kind_of_the_broader_never_the_reverse() -> None:
    assert is_a(P.COC, P.TREAT) and not is_a(P.TREAT, P.COC)
    assert is_a(P.HQUALIMP, P.HOPERAT) and not is_a(P.HOPERAT, P.HQUALIMP)
    assert not is_a(P.HRESCH, P.HOPERAT)
    assert (depth(P.ANY), depth(P.TREAT), depth(P.ETREAT), depth(P.BTG)) == (0, 1, 2, 3)


def test_the_request_only_codes_sit_under_their_actreason_parents_and_are_not_wire_codes() -> None:
    """Issue 14, vocabulary (HL7 v3 ActReason): HLEGAL and HDECD are kinds of HOPERAT, THREAT of PUBHLTH;
    none is a symbol of the wire's PurposeOfUse enum, so none can be recorded in a consent scope."""
    assert dict(REQUEST_ONLY_PARENT) == {
        RequestOnlyPurpose.HLEGAL: P.HOPERAT,
        RequestOnlyPurpose.HDECD: P.HOPERAT,
        RequestOnlyPurpose.THREAT: P.PUBHLTH,
    }
    assert not {c.value for c in RequestOnlyPurpose} & {p.value for p in P}
