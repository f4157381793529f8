"""The scratchpad one decision is built on; internal to :mod:`consent_rules.decision`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from consent_rules.decision._proxies import permission_binds, why_not_binding
from consent_rules.decision.notice import patient_notice
from consent_rules.decision.outcome import Code, Decision, Obligation, Outcome
from consent_rules.decision.policy import DEFAULT_POLICY, DecisionPolicy
from consent_rules.decision.purposes import is_direct_care
from consent_rules.decision.request import DecisionRequest, Gateway
from consent_rules.decision.statutory import allowed, withhold_obligation
from consent_rules.state import ConsentRegister, PatientState, effective_consent
from consent_wire.codes import ConsentDirective, DataClass, LegalBasis

__all__ = ["Draft", "requested"]

_OVERRIDES = frozenset({LegalBasis.STATUTORY_MANDATE, LegalBasis.SAFEGUARDING})


@dataclass(slots=True)
class Draft:
    """Mutable scratchpad for one decision; never leaves the decision package."""

    request: DecisionRequest
    state: PatientState
    policy: DecisionPolicy = DEFAULT_POLICY
    codes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)
    withheld: list[DataClass] = field(default_factory=list)

    def note(self, code: Code, text: str) -> None:
        self.codes.append(code.value)
        self.reasons.append(text)

    def oblige(self, obligation: Obligation) -> None:
        if obligation not in self.obligations:
            self.obligations.append(obligation)

    def withhold(self, data_class: DataClass) -> None:
        if data_class not in self.withheld:
            self.withheld.append(data_class)

    def consent(self, data_class: DataClass) -> ConsentDirective | None:
        reg = self.consent_register(data_class)
        return None if reg is None else reg.directive

    def consent_register(self, data_class: DataClass) -> ConsentRegister | None:
        """The register governing ``data_class``; beyond direct care an any-purpose permit does not count,
        nor does a proxy's permission whose authority no longer speaks for the patient (issue 14)."""
        reg = self._effective(self.state, data_class)
        if reg is None or reg.directive is not ConsentDirective.OPTIN or reg.proxy is None:
            return reg
        if permission_binds(reg.proxy, self.request.subject):
            return reg
        if Code.PROXY_CONSENT_NOT_BINDING.value not in self.codes:
            self.note(Code.PROXY_CONSENT_NOT_BINDING, why_not_binding(reg.proxy, self.request.subject))
        return self._effective(self._binding_state(), data_class)

    def _effective(self, state: PatientState, data_class: DataClass) -> ConsentRegister | None:
        req = self.request
        return effective_consent(
            state,
            req.purpose,
            data_class,
            req.requester.organisation,
            req.at_ms,
            any_purpose_permits=is_direct_care(req),
        )

    def _binding_state(self) -> PatientState:
        """The state without the proxies' permissions that no longer bind (their refusals stay)."""
        subject = self.request.subject
        kept = {
            key: reg
            for key, reg in self.state.consents.items()
            if reg.directive is not ConsentDirective.OPTIN or permission_binds(reg.proxy, subject)
        }
        return replace(self.state, consents=kept)

    def deny(self) -> Decision:
        return self.finish(None, [])

    def evidence_text(self) -> str:
        """The override's evidence in one sentence (rule 4), or "" when no override is claimed."""
        req = self.request
        if req.evidence is None or req.legal_basis is None:
            return ""
        return req.evidence.describe(req.legal_basis)

    def gateway_text(self) -> str:
        """The gateway and flow relied on in one sentence (rule 5), or "" when none is named."""
        req = self.request
        if req.gateway is Gateway.COPI_REG3:
            return (
                f" Gateway: COPI regulation 3 (communicable disease and public health), notice {req.flow_ref};"
                " the national data opt-out does not apply to it."
            )
        if req.flow_ref in self.policy.ndop_exempt_flows:
            return f" Gateway: s251 approval {req.flow_ref}, whose conditions set the national data opt-out aside."
        if req.gateway in (Gateway.COPI_REG2, Gateway.COPI_REG5):
            number = 2 if req.gateway is Gateway.COPI_REG2 else 5
            return f" Gateway: COPI regulation {number}, approval {req.flow_ref}."
        return ""

    def _restrict_statutory(self, basis: LegalBasis | None) -> None:
        """Withhold the statutorily restricted classes the route taken does not open (issue 14)."""
        closed = [c for c in dict.fromkeys(self.request.statutory_classes) if not allowed(c, basis, self.codes)]
        if not closed:
            return
        self.note(
            Code.STATUTORY_RESTRICTION,
            f"The law restricts {', '.join(c.value.lower().replace('_', ' ') for c in closed)} information beyond "
            "the usual duty of confidence; it is withheld without the person's consent, a court order or "
            "another legal requirement.",
        )
        for c in closed:
            self.oblige(withhold_obligation(c))

    def finish(self, basis: LegalBasis | None, permitted: list[DataClass]) -> Decision:
        obligations: tuple[Obligation, ...] = ()
        if not permitted:
            outcome, basis = Outcome.DENY, None
            self.withheld = list(dict.fromkeys([*self.request.data_classes, *self.withheld]))
        else:
            self._restrict_statutory(basis)
            if basis in _OVERRIDES:  # recorded and alerted as break-glass is (issue 14, rule 4)
                self.oblige(Obligation.ALERT_PRIVACY_OFFICER)
                self.oblige(Obligation.RECORD_ACCESS)
            if self.withheld:
                self.oblige(Obligation.WITHHOLD_DATA_CLASSES)
            obligations = tuple(self.obligations)
            outcome = Outcome.PERMIT_WITH_OBLIGATIONS if obligations else Outcome.PERMIT
        req = self.request
        notice = patient_notice(self.codes, req.purpose, req.requester.organisation, permitted=bool(permitted))
        return Decision(
            outcome,
            obligations,
            tuple(self.reasons),
            basis,
            tuple(self.codes),
            self.state.version,
            tuple(permitted),
            tuple(self.withheld),
            notice,
        )


def requested(request: DecisionRequest) -> list[DataClass]:
    """The requested data classes, duplicates dropped, in request order."""
    return list(dict.fromkeys(request.data_classes))
