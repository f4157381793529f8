"""The answer to a decision request and its JSON form, one shape for the core and the agent (pure).

The core answers live (``as_at_ms`` null, ``audit_index`` the decision's audit entry) or as at a
past time (``as_at_ms`` that time, not recorded). An edge agent answers from its replica:
``offline`` true, ``audit_index`` null and ``as_at_ms`` the time as at which the state it decided
on is known (null when it holds no state for the patient). The core's answers also carry
``audit_request`` (issue 16, many API instances): ``{partition, offset}`` of the audit request an instance
that is not the audit log's appender wrote (``audit_index`` then null until appended), else null.
``docs/openapi.yaml``, ``Decision``.
"""

from __future__ import annotations

from dataclasses import dataclass

from consent_rules.decision.outcome import Decision

__all__ = ["DecisionAnswer"]


@dataclass(frozen=True, slots=True)
class DecisionAnswer:
    decision: Decision
    decided_at_ms: int  # when the answer was given
    as_at_ms: int | None  # the state decided on is the state as at this time; None = current
    audit_index: int | None = None  # index of the decision's audit entry (live core decisions only)
    offline: bool = False  # answered by an edge agent from its replica, not by the core
    # the core only (issue 16): the audit request (partition, offset) the record went through, when this API
    # instance was not the audit log's appender (``audit_index`` null until the entry is appended)
    audit_request: tuple[int, int] | None = None

    def to_json(self) -> dict[str, object]:
        d = self.decision
        out: dict[str, object] = {
            "outcome": d.outcome.value,
            "obligations": [o.value for o in d.obligations],
            "reasons": list(d.reasons),
            "legal_basis": None if d.legal_basis is None else d.legal_basis.value,
            "codes": list(d.codes),
            "state_version": d.state_version,
            "permitted": [c.value for c in d.permitted],
            "withheld": [c.value for c in d.withheld],
            "decided_at_ms": self.decided_at_ms,
            "as_at_ms": self.as_at_ms,
            "audit_index": self.audit_index,
            "offline": self.offline,
            "patient_notice": d.notice,
        }
        if not self.offline:  # the core's answers name the audit request (null: appended directly, or not audited)
            r = self.audit_request
            out["audit_request"] = None if r is None else {"partition": r[0], "offset": r[1]}
        return out
