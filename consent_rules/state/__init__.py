"""Per-patient consent state and its deterministic merge (pure).

- :mod:`~consent_rules.state.registers` - the last-writer-wins registers, their stamps and :class:`PatientState`.
- :mod:`~consent_rules.state.merge` - :func:`apply`, :func:`merge`, :func:`replay` (a join: commutative,
  associative, idempotent) and :func:`effective_consent`.
- :mod:`~consent_rules.state.ledger` - the bounded record of the events folded in (recent ids, per-agent marks).
- :mod:`~consent_rules.state.codec` - the canonical JSON of a state (the state topic's record).
"""

from consent_rules.state.codec import STATE_FORMAT, StateDecodeError
from consent_rules.state.ledger import Applied, Mark
from consent_rules.state.merge import (
    QUARANTINED_REASONS,
    REASON_INVALID_DECEASED_STATUS,
    REASON_INVALID_PERIOD,
    REASON_MISSING_PATIENT_KEY,
    PatientMismatchError,
    affects_state,
    apply,
    classify,
    effective_consent,
    empty_state,
    merge,
    replay,
)
from consent_rules.state.registers import (
    ANY_RECIPIENT,
    NATIONAL,
    PER_ORGANISATION,
    ConsentKey,
    ConsentRegister,
    DeceasedRegister,
    ObjectionKey,
    ObjectionRegister,
    PatientState,
    Provenance,
    QuarantinedShielding,
    ShieldingRegister,
    Source,
    Stamp,
    objection_key,
)

__all__ = [
    "ANY_RECIPIENT",
    "NATIONAL",
    "PER_ORGANISATION",
    "QUARANTINED_REASONS",
    "REASON_INVALID_DECEASED_STATUS",
    "REASON_INVALID_PERIOD",
    "REASON_MISSING_PATIENT_KEY",
    "STATE_FORMAT",
    "Applied",
    "ConsentKey",
    "ConsentRegister",
    "DeceasedRegister",
    "Mark",
    "ObjectionKey",
    "ObjectionRegister",
    "PatientMismatchError",
    "PatientState",
    "Provenance",
    "QuarantinedShielding",
    "ShieldingRegister",
    "Source",
    "Stamp",
    "StateDecodeError",
    "affects_state",
    "apply",
    "classify",
    "effective_consent",
    "empty_state",
    "merge",
    "objection_key",
    "replay",
]
