"""Typed errors of the wire protocol, each with a stable ``reason`` code.

Every malformed or hostile input raises exactly one of these; nothing else
escapes the decoder or verifier. The reason codes are stable: they appear on
dead-letter records, in metrics labels and in HTTP error bodies, and are
documented in ``docs/reason-codes.md``.

Tree::

    WireError                      (reason: varies; retriable = False)
    +-- DecodeError                bytes that are not a valid record
    |   +-- TruncatedError         TRUNCATED
    |   +-- BadMagicError          BAD_MAGIC
    |   +-- UnknownSchemaError     UNKNOWN_FINGERPRINT
    |   +-- OversizeError          OVERSIZE
    |   +-- BadUtf8Error           BAD_UTF8
    |   +-- SchemaMismatchError    SCHEMA_MISMATCH
    |   +-- MalformedBatchError    MALFORMED_BATCH
    +-- TrustError                 authenticity failures
    |   +-- BadSignatureError      BAD_SIGNATURE
    |   +-- PayloadTypeError       WRONG_PAYLOAD_TYPE
    |   +-- UnknownKeyError        UNKNOWN_KEY
    |   +-- RevokedKeyError        REVOKED_KEY
    |   |   +-- RotatedOutKeyError ROTATED_OUT_KEY
    |   +-- BadProofError          BAD_PROOF
    |   +-- ClockSkewError         CLOCK_SKEW
    |   +-- SiteMismatchError      SITE_MISMATCH (an event for a site its key is not for)
    |   +-- CapabilityDeniedError  CAPABILITY_DENIED (a capability its key does not carry)
    |   +-- DeceasedStatusDeniedError DECEASED_STATUS_NOT_GP (a death stamped by a key not a GP practice's)
    +-- SequenceError              per-agent chain failures
    |   +-- ReplayError            REPLAY
    |   +-- SequenceRegressionError SEQUENCE_REGRESSION
    |   +-- ChainBreakError        CHAIN_BREAK
    |   +-- SequenceGapError       SEQUENCE_GAP (retriable: may be filled later)
    +-- ValidationError            well-formed but semantically invalid
        +-- InvalidNhsNumberError  INVALID_NHS_NUMBER
        +-- InvalidPatientKeyError INVALID_PATIENT_KEY
        +-- InvalidCodeError       INVALID_CODE
        +-- InvalidFhirError       INVALID_FHIR (never raised itself since FHIR import names the kind:)
        |   +-- FhirInvalidError       FHIR_INVALID (the resource breaks FHIR itself)
        |   +-- FhirUnsupportedError   FHIR_UNSUPPORTED (valid FHIR this product refuses by policy)
        |       +-- FhirExpansionError FHIR_TOO_MANY_EVENTS (expands into more than MAX_FHIR_EVENTS events)
        +-- InvalidKeyEventError   INVALID_KEY_EVENT
        +-- OutOfRangeError        OUT_OF_RANGE
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadMagicError",
    "BadProofError",
    "BadSignatureError",
    "BadUtf8Error",
    "CapabilityDeniedError",
    "ChainBreakError",
    "ClockSkewError",
    "DeceasedStatusDeniedError",
    "DecodeError",
    "FhirExpansionError",
    "FhirInvalidError",
    "FhirUnsupportedError",
    "InvalidCodeError",
    "InvalidFhirError",
    "InvalidKeyEventError",
    "InvalidNhsNumberError",
    "InvalidPatientKeyError",
    "MalformedBatchError",
    "OutOfRangeError",
    "OversizeError",
    "PayloadTypeError",
    "ReplayError",
    "RevokedKeyError",
    "RotatedOutKeyError",
    "SchemaMismatchError",
    "SequenceError",
    "SequenceGapError",
    "SequenceRegressionError",
    "SiteMismatchError",
    "TruncatedError",
    "TrustError",
    "UnknownKeyError",
    "UnknownSchemaError",
    "ValidationError",
    "WireError",
]


# Messages are one sentence; one that quotes input (an agent id, a key id) is cut here, so no error
# message, log line or dead-letter header repeats unbounded input.
_MAX_MESSAGE_CHARS = 512


class WireError(Exception):
    """Base of every wire-protocol error. ``reason`` is a stable code."""

    reason: ClassVar[str] = "WIRE_ERROR"
    retriable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        if len(message) > _MAX_MESSAGE_CHARS:  # a message that quotes hostile input (a 600 KB agent id)
            message = f"{message[:_MAX_MESSAGE_CHARS]}... [cut, {len(message)} characters]"
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class DecodeError(WireError):
    reason = "DECODE_ERROR"


class TruncatedError(DecodeError):
    reason = "TRUNCATED"


class BadMagicError(DecodeError):
    reason = "BAD_MAGIC"


class UnknownSchemaError(DecodeError):
    reason = "UNKNOWN_FINGERPRINT"


class OversizeError(DecodeError):
    reason = "OVERSIZE"


class BadUtf8Error(DecodeError):
    reason = "BAD_UTF8"


class SchemaMismatchError(DecodeError):
    reason = "SCHEMA_MISMATCH"


class MalformedBatchError(DecodeError):
    """A batch that decodes but is not a valid batch: empty, too many events, or events
    that do not carry the batch's agent id and consecutive sequence numbers."""

    reason = "MALFORMED_BATCH"


class TrustError(WireError):
    reason = "TRUST_ERROR"


class BadSignatureError(TrustError):
    reason = "BAD_SIGNATURE"


class PayloadTypeError(TrustError):
    reason = "WRONG_PAYLOAD_TYPE"


class UnknownKeyError(TrustError):
    reason = "UNKNOWN_KEY"


class RevokedKeyError(TrustError):
    reason = "REVOKED_KEY"


class RotatedOutKeyError(RevokedKeyError):
    """A batch signed with a key the agent rotated away from, arriving after the rotation's grace."""

    reason = "ROTATED_OUT_KEY"


class ClockSkewError(TrustError):
    """An event time (HLC or recorded_ms) too far from the batch's arrival time at the broker."""

    reason = "CLOCK_SKEW"


class SiteMismatchError(TrustError):
    """An event (or its access record's or breach report's organisation) for a site its key is not for."""

    reason = "SITE_MISMATCH"


class CapabilityDeniedError(TrustError):
    """An event exercising a capability its key's operator-signed registration does not carry."""

    reason = "CAPABILITY_DENIED"


class DeceasedStatusDeniedError(TrustError):
    """An event stating the person's death (or withdrawing it) signed by a key that is not a GP practice's."""

    reason = "DECEASED_STATUS_NOT_GP"


class BadProofError(TrustError):
    reason = "BAD_PROOF"


class SequenceError(WireError):
    reason = "SEQUENCE_ERROR"


class ReplayError(SequenceError):
    reason = "REPLAY"


class SequenceRegressionError(SequenceError):
    reason = "SEQUENCE_REGRESSION"


class ChainBreakError(SequenceError):
    reason = "CHAIN_BREAK"


class SequenceGapError(SequenceError):
    reason = "SEQUENCE_GAP"
    retriable = True


class ValidationError(WireError):
    reason = "VALIDATION_ERROR"


class InvalidNhsNumberError(ValidationError):
    reason = "INVALID_NHS_NUMBER"


class InvalidPatientKeyError(ValidationError):
    """A site pseudonym that was not made with that site's secret (consent_wire.site_pseudonyms)."""

    reason = "INVALID_PATIENT_KEY"


class InvalidCodeError(ValidationError):
    reason = "INVALID_CODE"


class InvalidFhirError(ValidationError):
    reason = "INVALID_FHIR"


class FhirInvalidError(InvalidFhirError):
    """Not valid FHIR: JSON, structure, cardinality, a datatype, or an invariant (e.g. ppc-1) is broken."""

    reason = "FHIR_INVALID"


class FhirUnsupportedError(InvalidFhirError):
    """Valid FHIR refused by product policy: it cannot carry the meaning faithfully (the message names the element)."""

    reason = "FHIR_UNSUPPORTED"


class FhirExpansionError(FhirUnsupportedError):
    """A FHIR Consent whose provisions expand into more events than ``consent_wire.fhir.MAX_FHIR_EVENTS``."""

    reason = "FHIR_TOO_MANY_EVENTS"


class InvalidKeyEventError(ValidationError):
    """A well-signed key event that cannot apply: e.g. ROTATE of an agent with no key."""

    reason = "INVALID_KEY_EVENT"


class OutOfRangeError(ValidationError):
    """An integer outside what the protocol can carry (an Avro long, -2**63..2**63-1) or outside
    its field's documented domain (e.g. a breach affecting more people than exist)."""

    reason = "OUT_OF_RANGE"
