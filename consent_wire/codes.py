"""Published code systems used on the wire, as enums.

Values are the codes themselves so they can be written to Avro enums and to
FHIR ``Coding.code`` unchanged. Sources:

- Purpose of use: HL7 v3 ActReason (2.16.840.1.113883.5.8), subset
  ``PurposeOfUse``: http://terminology.hl7.org/CodeSystem/v3-ActReason
- Consent directive: HL7 v3 ActCode consent directives
  (OPTIN, OPTOUT, OPTINR, OPTOUTE): http://terminology.hl7.org/CodeSystem/v3-ActCode
- Confidentiality: HL7 v3 Confidentiality (U, L, M, N, R, V)
- Sensitivity / data class: HL7 v3 ActCode ``InformationSensitivityPolicy`` codes
  (PSY, HIV, SDV, STD, SUD, ETH, GDIS, SEX, PATLOC = patient location, LOCIS =
  location information sensitivity) plus ``ALL``.
- NHS objections: GP "type 1" opt-out (NHS Digital code 827241000000103 "Dissent
  from secondary use of general practitioner patient identifiable data"),
  National Data Opt-out, legacy "type 2" opt-out, local dissent.
- Capabilities: what an agent's key may record, named by the operator-signed key
  registration (KeyEvent v2; see ``consent_wire.authority``). Local codes.
- Breach severity: HSCIC IG SIRI scale introduced June 2013 (seed text 4.10):
  level 0 (near miss / not reportable), level 1 (confirmed, not reportable to
  the ICO), level 2 (reportable to the ICO and the Department).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACT_CODE_SYSTEM",
    "ACT_REASON_SYSTEM",
    "BreachSeverity",
    "Capability",
    "ConsentDirective",
    "DataClass",
    "HiddenField",
    "KeyAction",
    "LegalBasis",
    "ObjectionAction",
    "ObjectionKind",
    "ProxyAuthorityKind",
    "PurposeOfUse",
    "Relationship",
    "ShieldingAction",
]

ACT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


class PurposeOfUse(StrEnum):
    """HL7 v3 ActReason PurposeOfUse codes, plus ``ANY`` (= every purpose)."""

    TREAT = "TREAT"  # treatment (direct care)
    ETREAT = "ETREAT"  # emergency treatment
    COC = "COC"  # coordination of care (direct care)
    HOPERAT = "HOPERAT"  # healthcare operations
    HPAYMT = "HPAYMT"  # healthcare payment
    HRESCH = "HRESCH"  # healthcare research
    PUBHLTH = "PUBHLTH"  # public health
    HQUALIMP = "HQUALIMP"  # quality improvement (audit)
    BTG = "BTG"  # break the glass
    ANY = "ANY"  # wildcard in a consent scope, not an HL7 code

    @property
    def is_direct_care(self) -> bool:
        return self in (PurposeOfUse.TREAT, PurposeOfUse.ETREAT, PurposeOfUse.COC, PurposeOfUse.BTG)


class ConsentDirective(StrEnum):
    """HL7 v3 ActCode consent directives."""

    OPTIN = "OPTIN"  # permit
    OPTOUT = "OPTOUT"  # deny


class DataClass(StrEnum):
    """Sensitivity labels (HL7 v3 InformationSensitivityPolicy) plus ALL and GENERAL."""

    ALL = "ALL"
    GENERAL = "GENERAL"  # ordinary clinical record, no special sensitivity
    PSY = "PSY"  # psychiatry
    HIV = "HIV"
    SDV = "SDV"  # sexual assault, abuse or domestic violence
    STD = "STD"  # sexually transmitted disease
    SUD = "SUD"  # substance use disorder
    # substance abuse. HL7 ties ETH to US law (42 CFR part 2), which does not apply here: in the UK these
    # are health data, special category under UK GDPR art 9, held under the common-law duty of
    # confidence like the rest of the record, with no statute of their own; the general rules apply and
    # a patient may refuse the class (OPTOUT) - issue 14
    ETH = "ETH"
    GDIS = "GDIS"  # genetic disease
    SEX = "SEX"  # sexuality and reproductive health
    PATLOC = "PATLOC"  # patient location (address)
    CONTACT = "CONTACT"  # contact details (phone, email); local code


class ObjectionKind(StrEnum):
    TYPE1 = "TYPE1"  # GP type 1 opt-out: no identifiable data leaves the practice beyond direct care
    NDOP = "NDOP"  # national data opt-out: research and planning
    TYPE2 = "TYPE2"  # legacy type 2 (replaced by NDOP in 2018), still honoured
    LOCAL_DISSENT = "LOCAL_DISSENT"  # dissent recorded locally, e.g. to a shared care record


class ObjectionAction(StrEnum):
    REGISTER = "REGISTER"
    WITHDRAW = "WITHDRAW"


class LegalBasis(StrEnum):
    """Bases on which data may be shared without, or despite, consent."""

    CONSENT = "CONSENT"
    IMPLIED_CONSENT_DIRECT_CARE = "IMPLIED_CONSENT_DIRECT_CARE"
    S251 = "S251"  # NHS Act 2006 s251 approval (Confidentiality Advisory Group)
    STATUTORY_MANDATE = "STATUTORY_MANDATE"  # legal requirement / court order
    SAFEGUARDING = "SAFEGUARDING"  # overriding public interest / safeguarding
    BREAK_GLASS = "BREAK_GLASS"


class ProxyAuthorityKind(StrEnum):
    """The legal authority of someone recording a consent or objection on a person's behalf (issue 14).

    ConsentDecision v3 / Objection v3; the Avro enum has the default ``UNRECOGNISED``, so a later
    version may add a kind without breaking FULL_TRANSITIVE (an older reader resolves it to the default).
    """

    PARENTAL_RESPONSIBILITY = "PARENTAL_RESPONSIBILITY"  # Children Act 1989 s3
    LPA_HEALTH_WELFARE = "LPA_HEALTH_WELFARE"  # Mental Capacity Act 2005 s9(1)(a), registered with the OPG
    LPA_PROPERTY_FINANCIAL = "LPA_PROPERTY_FINANCIAL"  # MCA 2005 s9(1)(b): no authority over health decisions
    DEPUTY_PERSONAL_WELFARE = "DEPUTY_PERSONAL_WELFARE"  # MCA 2005 ss16(2)(b), 17: Court of Protection deputy
    DEPUTY_PROPERTY_AFFAIRS = "DEPUTY_PROPERTY_AFFAIRS"  # MCA 2005 s18: no authority over health decisions
    UNRECOGNISED = "UNRECOGNISED"  # a kind a later schema version added: not relied on


class Relationship(StrEnum):
    LEGITIMATE = "LEGITIMATE"  # member of the care team for this patient
    NONE = "NONE"
    BREAK_GLASS = "BREAK_GLASS"


class HiddenField(StrEnum):
    LOCATION = "LOCATION"
    IDENTITY = "IDENTITY"
    CONTACT = "CONTACT"


class ShieldingAction(StrEnum):
    SET = "SET"
    CLEAR = "CLEAR"


class BreachSeverity(StrEnum):
    """HSCIC IG SIRI severity (June 2013)."""

    LEVEL_0 = "LEVEL_0"
    LEVEL_1 = "LEVEL_1"
    LEVEL_2 = "LEVEL_2"


class KeyAction(StrEnum):
    REGISTER = "REGISTER"
    ROTATE = "ROTATE"
    REVOKE = "REVOKE"


class Capability(StrEnum):
    """What an agent's key may record (operator-signed registration, KeyEvent v2)."""

    CONSENT = "CONSENT"  # consent decisions
    OBJECTION = "OBJECTION"  # NDOP, type 2 and local dissent objections
    TYPE1_OBJECTION = "TYPE1_OBJECTION"  # GP type 1 opt-out: only a GP practice's key may carry it
    ACCESS_RECORD = "ACCESS_RECORD"  # access-log entries, for the key's own organisation only
    SHIELDING_SET = "SHIELDING_SET"
    SHIELDING_CLEAR = "SHIELDING_CLEAR"
    BREACH_REPORT = "BREACH_REPORT"  # breach reports, for the key's own organisation only
