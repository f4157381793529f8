"""The purpose-of-use hierarchy: which purposes are kinds of which (pure table).

From HL7 v3 ActReason (``_PurposeOfUse``; THO code system ``v3-ActReason``), restricted to the
codes the wire carries (:class:`consent_wire.codes.PurposeOfUse`)::

    ANY (every purpose; a consent-scope wildcard, not an HL7 code)
    +-- TREAT      treatment
    |   +-- ETREAT emergency treatment
    |   |   +-- BTG    break the glass
    |   +-- COC    coordination of care
    +-- HOPERAT    healthcare operations
    |   +-- HQUALIMP   health quality improvement
    |   +-- HLEGAL     legal (request only)
    |   +-- HDECD      decedent (request only)
    +-- HPAYMT     healthcare payment
    +-- HRESCH     healthcare research
    +-- PUBHLTH    public health
        +-- THREAT     serious threat to health or safety (request only)

Issue 14, rule 3: a refusal (or objection) for a purpose covers every descendant, and a
permission for a narrower code never implies the broader one. A code added to the wire must be
added here (a unit test checks that every code has a place).

HLEGAL, HDECD and THREAT (issue 14, vocabulary) are :class:`RequestOnlyPurpose` codes: a decision
request may name them, and it is then decided as a request for their parent (the nearest purpose the
wire carries) with the extra conditions the code brings (``consent_rules.decision``); they are never
recorded in a consent scope. ``PurposeOfUse`` is an Avro enum without a default on the wire, so a
new symbol would break FULL_TRANSITIVE compatibility (a reader of an older schema version cannot
resolve it); and a patient's consent or refusal scoped to one of them would, read by an older
reader, become one to the whole parent purpose (see ``docs/decision-rules.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from consent_wire.codes import PurposeOfUse

__all__ = ["PARENT", "REQUEST_ONLY_PARENT", "RequestOnlyPurpose", "ancestors", "depth", "descendants", "is_a"]

P = PurposeOfUse

PARENT: Mapping[PurposeOfUse, PurposeOfUse | None] = {
    P.ANY: None,
    P.TREAT: P.ANY,
    P.ETREAT: P.TREAT,
    P.BTG: P.ETREAT,
    P.COC: P.TREAT,
    P.HOPERAT: P.ANY,
    P.HQUALIMP: P.HOPERAT,
    P.HPAYMT: P.ANY,
    P.HRESCH: P.ANY,
    P.PUBHLTH: P.ANY,
}


class RequestOnlyPurpose(StrEnum):
    """HL7 v3 ActReason codes a decision request may name but the wire does not carry (issue 14)."""

    HLEGAL = "HLEGAL"  # legal: operations required by legal proceedings (court order, statute)
    HDECD = "HDECD"  # decedent: operations on a deceased person's information
    THREAT = "THREAT"  # threat: to prevent or lessen a serious threat to health or safety


# Each one's parent in ActReason: HLEGAL and HDECD are kinds of HOPERAT, THREAT a kind of PUBHLTH.
REQUEST_ONLY_PARENT: Mapping[RequestOnlyPurpose, PurposeOfUse] = {
    RequestOnlyPurpose.HLEGAL: P.HOPERAT,
    RequestOnlyPurpose.HDECD: P.HOPERAT,
    RequestOnlyPurpose.THREAT: P.PUBHLTH,
}


def ancestors(purpose: PurposeOfUse) -> tuple[PurposeOfUse, ...]:
    """``purpose`` and every purpose it is a kind of, nearest first (ends with ``ANY``)."""
    out = [purpose]
    parent = PARENT[purpose]
    while parent is not None:
        out.append(parent)
        parent = PARENT[parent]
    return tuple(out)


def is_a(purpose: PurposeOfUse, ancestor: PurposeOfUse) -> bool:
    """Whether ``purpose`` is ``ancestor`` or a kind of it (every purpose is a kind of ``ANY``)."""
    return ancestor in ancestors(purpose)


def depth(purpose: PurposeOfUse) -> int:
    """How specific a purpose is: ``ANY`` 0, ``TREAT`` 1, ``ETREAT`` 2, ``BTG`` 3."""
    return len(ancestors(purpose)) - 1


def descendants(purpose: PurposeOfUse) -> frozenset[PurposeOfUse]:
    """``purpose`` and every purpose that is a kind of it."""
    return frozenset(p for p in PARENT if is_a(p, purpose))
