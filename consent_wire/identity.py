"""NHS number validation and the keyed patient pseudonym used on every topic.

An NHS number is 10 digits; the 10th is a modulus 11 check digit over the
first nine (weights 10 down to 2; check = 11 - (sum mod 11), 11 -> 0, and a
result of 10 means the number is invalid). Written forms ``9434765919``,
``943 476 5919`` and ``943-476-5919`` are accepted. Only ASCII digits count as digits:
Arabic-Indic, full-width and other Unicode decimal digits are INVALID_NHS_NUMBER (they
are not how an NHS number is written, and they must not reach the ASCII pseudonym). Error messages say what
was wrong without repeating the number (it is personal data).

Topics carry :func:`patient_key` instead: HMAC-SHA256 of the normalised
number under an operator secret (Caldicott principles 2-4, minimum necessary).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from consent_wire.errors import InvalidNhsNumberError

__all__ = ["MIN_SECRET_BYTES", "PATIENT_KEY_HEX", "Pseudonymiser", "patient_key", "validate_nhs_number"]

NHS_NUMBER_DIGITS = 10  # NHS Data Dictionary, "NHS NUMBER": n10
_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)  # NHS Data Dictionary modulus 11 algorithm
_WEIGHT_SUM = sum(_WEIGHTS)
PATIENT_KEY_HEX = 32  # 128 bits of the HMAC: collision-free for any population, half the bytes
MIN_SECRET_BYTES = 32  # RFC 2104 section 3: key at least the hash output length (SHA-256: 32)
_GROUPED = re.compile(r"^[0-9]{3}([ -])[0-9]{3}\1[0-9]{4}$")  # ASCII digits only (not \d)


def validate_nhs_number(s: str) -> str:
    """The 10-digit NHS number in ``s``, or InvalidNhsNumberError saying what was wrong."""
    if not isinstance(s, str):
        raise InvalidNhsNumberError(f"NHS number must be a string, got {type(s).__name__}")
    text = s.strip()
    digits = _digits(text)
    d = digits.encode("ascii")  # ten ASCII digits: each weight times (code - 48), unrolled (the verifier's hot path)
    total = 10 * d[0] + 9 * d[1] + 8 * d[2] + 7 * d[3] + 6 * d[4] + 5 * d[5] + 4 * d[6] + 3 * d[7] + 2 * d[8]
    total -= 48 * _WEIGHT_SUM
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10:
        raise InvalidNhsNumberError("NHS number is invalid: its first nine digits give check digit 10")
    if d[9] - 48 != check:
        raise InvalidNhsNumberError("NHS number check digit does not match (modulus 11): mistyped digit?")
    return digits


def _digits(text: str) -> str:
    if text.isascii() and text.isdigit():
        if len(text) != NHS_NUMBER_DIGITS:
            raise InvalidNhsNumberError(f"NHS number must have 10 digits, got {len(text)}")
        return text
    if _GROUPED.match(text):
        return text.replace(" ", "").replace("-", "")
    for position, char in enumerate(text, start=1):
        if not (char.isascii() and char.isdigit()) and char not in " -":
            raise InvalidNhsNumberError(
                f"NHS number has a character other than a digit, space or hyphen at position {position}"
            )
    count = sum(c.isascii() and c.isdigit() for c in text)
    if count != NHS_NUMBER_DIGITS:
        raise InvalidNhsNumberError(f"NHS number must have 10 digits, got {count}")
    raise InvalidNhsNumberError(
        "NHS number separators must group the digits 3-3-4 with one kind of separator, e.g. 943 476 5919"
    )


def patient_key(secret: bytes, nhs_number: str) -> str:
    """Keyed pseudonym of a person: HMAC-SHA256(secret, normalised NHS number), first 32 hex chars."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"patient key secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")
    digits = validate_nhs_number(nhs_number)
    return hmac.new(secret, digits.encode("ascii"), hashlib.sha256).hexdigest()[:PATIENT_KEY_HEX]


class Pseudonymiser:
    """:func:`patient_key` under one secret with the HMAC key schedule computed once (a batch check keys millions)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"patient key secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")
        self._base = hmac.new(secret, digestmod=hashlib.sha256)

    def __call__(self, nhs_number: str) -> str:
        return self.of_digits(validate_nhs_number(nhs_number))

    def of_digits(self, digits: str) -> str:
        """The key of an already validated number (the 10 ASCII digits :func:`validate_nhs_number` returns)."""
        mac = self._base.copy()
        mac.update(digits.encode("ascii"))
        return mac.hexdigest()[:PATIENT_KEY_HEX]
