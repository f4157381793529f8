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
    +-- HPAYMT     healthcare payment
    +-- HRESCH     healthcare research
    +-- PUBHLTH    public health

Issue 14, rule 3: a refusal (or objection) for a purpose covers every descendant, and a
permission for a narrower code never implies the broader one. A code added to the wire must be
added here (a unit test checks that every code has a place).
"""

from __future__ import annotations

from collections.abc import Mapping

from consent_wire.codes import PurposeOfUse

__all__ = ["PARENT", "ancestors", "depth", "descendants", "is_a"]

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
