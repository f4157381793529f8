"""The sharing decision: may this requester have these data, for this purpose, now? (pure).

- :mod:`~consent_rules.decision.request` / :mod:`~consent_rules.decision.outcome` - what is asked and answered.
- :mod:`~consent_rules.decision.rules` - :func:`decide` and :func:`decide_as_at` (the rules, in its docstring),
  built from internal modules per concept: direct care and break-glass, secondary use, consents,
  objections, shielding obligations.
- :mod:`~consent_rules.decision.policy` - what a deployment configures (break-glass roles, NDOP-exempt flows,
  the data-sharing agreement register of :mod:`~consent_rules.decision.agreements`), passed in.
- :mod:`~consent_rules.decision.subject` / :mod:`~consent_rules.decision.statutory` - the patient's side as
  requester, and the statutorily restricted classes; :mod:`~consent_rules.decision.notice` - patient notices.
- :mod:`~consent_rules.decision.document` - the JSON request parser shared by the core's and the agent's APIs.
- :mod:`~consent_rules.decision.answer` - the answer and its JSON form (live, as at, or offline).
"""

from consent_rules.decision.agreements import DataSharingAgreement
from consent_rules.decision.answer import DecisionAnswer
from consent_rules.decision.document import BadRequestError, ParsedRequest, parse_as_at, parse_request
from consent_rules.decision.notice import patient_notice
from consent_rules.decision.outcome import Code, Decision, Obligation, Outcome
from consent_rules.decision.policy import DEFAULT_BREAK_GLASS_ROLES, DEFAULT_POLICY, DecisionPolicy
from consent_rules.decision.purposes import DIRECT_CARE_PURPOSES, NDOP_PURPOSES, SECONDARY_BASES, SECONDARY_PURPOSES
from consent_rules.decision.request import (
    DataHolder,
    DecisionRequest,
    DecisionRequestError,
    Gateway,
    HolderKind,
    Identifiability,
    OverrideEvidence,
    Requester,
)
from consent_rules.decision.rules import decide, decide_as_at
from consent_rules.decision.statutory import StatutoryClass
from consent_rules.decision.subject import ADULT_AGE, AccessRight, Subject

__all__ = [
    "ADULT_AGE",
    "DEFAULT_BREAK_GLASS_ROLES",
    "DEFAULT_POLICY",
    "DIRECT_CARE_PURPOSES",
    "NDOP_PURPOSES",
    "SECONDARY_BASES",
    "SECONDARY_PURPOSES",
    "AccessRight",
    "BadRequestError",
    "Code",
    "DataHolder",
    "DataSharingAgreement",
    "Decision",
    "DecisionAnswer",
    "DecisionPolicy",
    "DecisionRequest",
    "DecisionRequestError",
    "Gateway",
    "HolderKind",
    "Identifiability",
    "Obligation",
    "Outcome",
    "OverrideEvidence",
    "ParsedRequest",
    "Requester",
    "StatutoryClass",
    "Subject",
    "decide",
    "decide_as_at",
    "parse_as_at",
    "parse_request",
    "patient_notice",
]
