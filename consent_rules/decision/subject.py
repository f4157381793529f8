"""The patient's side as requester: the patient, their proxies, and what the rules need to know of
the patient (age, Gillick competence, death), pure data (issue 14).

ActReason names these requests PATRQT (the patient), FAMRQT (a family member) and PWATRNY (a power
of attorney). They are not added to the wire's ``PurposeOfUse`` enum: an Avro enum that gains a symbol
is not FULL_TRANSITIVE compatible (a v1 reader has no default for it), and these purposes are only ever
asked, never recorded in a consent scope. A request says instead by which right it is made
(:class:`AccessRight`) and the purpose is that of the use (usually TREAT).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ADULT_AGE", "AccessRight", "Subject"]

# Family Law Reform Act 1969 s8: from 16 a young person consents to their own treatment, and the NHS
# treats their confidential information as theirs to control; below 16, Gillick competence (Gillick v
# West Norfolk and Wisbech AHA [1986] AC 112) gives a child the same say.
ADULT_AGE = 16


class AccessRight(StrEnum):
    """The right a request from the patient's side is made under, with its ActReason code."""

    SELF = "SELF"  # PATRQT: the patient (UK GDPR art 15, right of access)
    PARENTAL_RESPONSIBILITY = "PARENTAL_RESPONSIBILITY"  # FAMRQT: for a child (Children Act 1989 s3)
    LASTING_POWER_OF_ATTORNEY = "LASTING_POWER_OF_ATTORNEY"  # PWATRNY: health and welfare LPA (MCA 2005 s9)
    COURT_DEPUTY = "COURT_DEPUTY"  # PWATRNY: a deputy appointed by the Court of Protection (MCA 2005 s16)
    PERSONAL_REPRESENTATIVE = "PERSONAL_REPRESENTATIVE"  # after death (Access to Health Records Act 1990 s3(1)(f))


@dataclass(frozen=True, slots=True)
class Subject:
    """What the requester's system knows of the patient, where the rules depend on it."""

    age_years: int | None = None  # None = not said
    gillick_competent: bool | None = None  # a clinician's assessment for a child under 16; None = not assessed
    deceased: bool = False  # confidentiality and every objection continue after death
