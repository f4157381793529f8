"""A deployment's decision policy from its document (TOML, parsed by the caller), pure.

The document (``decision_policy_file`` on the core and the edge agent; ``deploy/decision-policy.toml``
is an annotated example)::

    break_glass_roles = ["ED_DOCTOR", "CONSULTANT"]     # rule 9; omitted = DEFAULT_BREAK_GLASS_ROLES
    ndop_exempt_flows = ["20/CAG/0123"]                 # rule 5: flows CAG advised are outside the opt-out
    agreements_required = true                          # rec 20: unregistered staff and secondary uses name one

    [[agreements]]
    reference = "DSA-2026-014"
    parties = ["RX1", "B82018"]                         # ODS codes
    purposes = ["TREAT", "HOPERAT"]                     # HL7 ActReason; a purpose covers its kinds
    data_classes = ["GENERAL", "CONTACT"]               # ALL covers every class
    expires = 2027-03-31                                # a TOML date: in force until the end of that day (UK time)

Every error names the key and the agreement it is in (:class:`PolicyDocumentError`, a ``ValueError``);
unknown keys are refused, so a misspelt ``agreements_requried`` cannot silently leave the check off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from consent_rules.decision.agreements import DataSharingAgreement
from consent_rules.decision.policy import DEFAULT_BREAK_GLASS_ROLES, DecisionPolicy
from consent_wire.codes import DataClass, PurposeOfUse

__all__ = ["PolicyDocumentError", "parse_policy"]

_UK = ZoneInfo("Europe/London")
_TOP = {"break_glass_roles", "ndop_exempt_flows", "agreements_required", "agreements"}
_AGREEMENT = {"reference", "parties", "purposes", "data_classes", "expires"}


class PolicyDocumentError(ValueError):
    """The decision policy document is not valid; the message names the key."""


def parse_policy(doc: Mapping[str, Any]) -> DecisionPolicy:
    """The :class:`DecisionPolicy` a document describes (see the module docstring)."""
    _known(doc, _TOP, "decision policy")
    roles = _strings(doc, "break_glass_roles", "decision policy") if "break_glass_roles" in doc else None
    flows = _strings(doc, "ndop_exempt_flows", "decision policy")
    required = doc.get("agreements_required", False)
    if not isinstance(required, bool):
        raise PolicyDocumentError("agreements_required must be true or false")
    raw = doc.get("agreements", [])
    if not isinstance(raw, list):
        raise PolicyDocumentError("agreements must be an array of tables ([[agreements]])")
    agreements: dict[str, DataSharingAgreement] = {}
    for i, entry in enumerate(raw):
        agreement = _agreement(entry, f"agreements[{i}]")
        if agreement.reference in agreements:
            raise PolicyDocumentError(f"agreements[{i}]: reference {agreement.reference!r} appears twice")
        agreements[agreement.reference] = agreement
    if required and not agreements:
        raise PolicyDocumentError("agreements_required = true with no [[agreements]]: every such request would fail")
    return DecisionPolicy(
        break_glass_roles=DEFAULT_BREAK_GLASS_ROLES if roles is None else frozenset(roles),
        ndop_exempt_flows=frozenset(flows),
        agreements=agreements,
        agreements_required=required,
    )


def _agreement(entry: Any, where: str) -> DataSharingAgreement:
    if not isinstance(entry, Mapping):
        raise PolicyDocumentError(f"{where} must be a table")
    _known(entry, _AGREEMENT, where)
    reference = entry.get("reference")
    if not isinstance(reference, str) or not reference.strip():
        raise PolicyDocumentError(f"{where}.reference must be a non-empty string")
    where = f"agreement {reference!r}"
    parties = _strings(entry, "parties", where, required=True)
    purposes = [_code(PurposeOfUse, p, f"{where}.purposes") for p in _strings(entry, "purposes", where, required=True)]
    classes = [
        _code(DataClass, c, f"{where}.data_classes") for c in _strings(entry, "data_classes", where, required=True)
    ]
    return DataSharingAgreement(reference, frozenset(parties), frozenset(purposes), frozenset(classes),
                                _expires_ms(entry.get("expires"), where))  # fmt: skip


def _expires_ms(value: Any, where: str) -> int | None:
    """A date is in force to the end of that day in UK time (the bound is exclusive: the next midnight)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise PolicyDocumentError(f"{where}.expires: a date-time needs its offset (or give a date)")
        return int(value.timestamp() * 1000)
    if isinstance(value, dt.date):
        end = dt.datetime.combine(value + dt.timedelta(days=1), dt.time(), tzinfo=_UK)
        return int(end.timestamp() * 1000)
    raise PolicyDocumentError(f"{where}.expires must be a TOML date (2027-03-31) or offset date-time")


def _strings(doc: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> Sequence[str]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PolicyDocumentError(f"{where}.{key} must be an array of non-empty strings")
    if required and not value:
        raise PolicyDocumentError(f"{where}.{key} must name at least one")
    return value


def _code(kind: type[PurposeOfUse] | type[DataClass], value: str, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise PolicyDocumentError(f"{where}: {value[:32]!r} is not a {kind.__name__} code") from None


def _known(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PolicyDocumentError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
