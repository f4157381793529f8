"""Per-site patient pseudonyms: a compromised site cannot re-identify another site's patients (issue 12 item 11).

The national pseudonym (:func:`consent_wire.identity.patient_key`, HMAC-SHA256 under the national
secret) is what every core topic, the state, the audit and the API use. With that secret at every
site, any one compromised site could pseudonymise all ~10^9 valid NHS numbers and so re-identify
every pseudonym it ever sees. Design:

- **The national secret stays in the core.** Each site holds only its own *site secret*,
  ``HKDF-SHA256(national secret, info = "consent-broker site pseudonym v1:" + ODS code)``
  (RFC 5869), derived and handed out by the operator (:func:`site_secret`). HKDF is one-way: a
  site secret yields neither the national secret nor another site's secret.
- **A site pseudonymises with its own secret**: :func:`site_patient_key` is one AES-256 block
  (a keyed pseudorandom permutation) over ``"NHS" + the 10 digits + 3 zero bytes``, 32 hex
  characters like the national key. A site can compute pseudonyms of its own namespace only:
  another site's pseudonym of the same person is unrelated, and the national one needs the
  national secret.
- **Only the core translates.** It derives any site's secret from the national one, so it can open
  a site pseudonym (:func:`open_site_key`: the block must decrypt to ``"NHS"``, ten ASCII digits
  with a valid modulus 11 check and three zero bytes, or it is ``INVALID_PATIENT_KEY``, 2^-24 odds
  for a forgery at most) and map it to the national pseudonym (:meth:`CorePseudonyms.to_national`);
  the other way (national -> a site's pseudonym) it uses what it learnt from that site's own events
  (the mirror sends a site only patients it has a relationship with, learnt from the site's events),
  or the NHS number when the API is asked (:meth:`CorePseudonyms.for_site`).

A site could always pseudonymise the NHS numbers of its *own* patients (it has them); what it can
no longer do is reverse the national pseudonyms (events, state, audit, reports) or any other site's.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from consent_wire.errors import InvalidNhsNumberError, InvalidPatientKeyError
from consent_wire.identity import MIN_SECRET_BYTES, PATIENT_KEY_HEX, Pseudonymiser, validate_nhs_number

__all__ = [
    "SITE_SECRET_BYTES",
    "SITE_SECRET_INFO",
    "CorePseudonyms",
    "SitePseudonymiser",
    "open_site_key",
    "site_patient_key",
    "site_secret",
]

SITE_SECRET_INFO = b"consent-broker site pseudonym v1:"  # HKDF info prefix; the ODS code follows
SITE_SECRET_BYTES = 32  # AES-256 key
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")  # as consent_wire.authority and the edge agent's configuration
_PREFIX, _PAD = b"NHS", bytes(3)  # 3 + 10 digits + 3 = one 16-byte AES block
_KEY_HEX = re.compile(r"^[0-9a-f]{32}$")


def site_secret(national_secret: bytes, site: str) -> bytes:
    """The site's own pseudonym secret: HKDF-SHA256 of the national secret for this ODS code (core/operator only)."""
    if len(national_secret) < MIN_SECRET_BYTES:
        raise ValueError(f"national secret must be at least {MIN_SECRET_BYTES} bytes, got {len(national_secret)}")
    if not _ODS_CODE.fullmatch(site):
        raise ValueError(f"site {site[:32]!r} is not an ODS code (3-10 of A-Z, 0-9)")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=SITE_SECRET_BYTES, salt=None, info=SITE_SECRET_INFO + site.encode())
    return hkdf.derive(national_secret)


def _cipher(secret: bytes) -> Cipher[modes.ECB]:
    if len(secret) != SITE_SECRET_BYTES:
        raise ValueError(f"site secret must be {SITE_SECRET_BYTES} bytes, got {len(secret)}")
    # ECB over exactly one block is the block cipher itself: a keyed permutation, deterministic by design
    return Cipher(algorithms.AES(secret), modes.ECB())  # noqa: S305 - one block, a PRP, never a message mode


def site_patient_key(secret: bytes, nhs_number: str) -> str:
    """The site's pseudonym of a person: AES-256 of one block holding the NHS number, 32 hex characters."""
    return _seal(_Blocks(secret), nhs_number)


def open_site_key(secret: bytes, key: str) -> str:
    """The NHS number inside a site pseudonym made with ``secret``; INVALID_PATIENT_KEY if it was not."""
    return _open(_Blocks(secret), key)


class _Blocks:
    """AES-256 on single blocks under one key, its key schedule and contexts made once.

    In ECB each 16-byte block is enciphered on its own, so one encryption and one decryption context
    serve every call (``update`` of exactly one block returns exactly that block; never finalised).
    Not for concurrent use from several threads (the verifier and the mirror each own theirs).
    """

    __slots__ = ("_decrypt", "_encrypt")

    def __init__(self, secret: bytes) -> None:
        cipher = _cipher(secret)
        self._encrypt = cipher.encryptor()
        self._decrypt = cipher.decryptor()

    def encrypt(self, block: bytes) -> bytes:
        return self._encrypt.update(block)

    def decrypt(self, block: bytes) -> bytes:
        return self._decrypt.update(block)


class SitePseudonymiser:
    """:func:`site_patient_key` under one site secret with the AES key schedule computed once (an agent's)."""

    __slots__ = ("_blocks",)

    def __init__(self, secret: bytes) -> None:
        self._blocks = _Blocks(secret)

    def __call__(self, nhs_number: str) -> str:
        return _seal(self._blocks, nhs_number)


def _seal(blocks: _Blocks, nhs_number: str) -> str:
    return blocks.encrypt(_PREFIX + validate_nhs_number(nhs_number).encode("ascii") + _PAD).hex()


def _open(blocks: _Blocks, key: str) -> str:
    if not isinstance(key, str) or not _KEY_HEX.fullmatch(key):
        raise InvalidPatientKeyError(f"a site pseudonym is {PATIENT_KEY_HEX} lowercase hex characters")
    block = blocks.decrypt(bytes.fromhex(key))
    digits = block[3:13]
    if block[:3] != _PREFIX or block[13:] != _PAD or not digits.isdigit():
        raise InvalidPatientKeyError("patient key is not a pseudonym made with this site's secret")
    try:
        return validate_nhs_number(digits.decode("ascii"))
    except InvalidNhsNumberError as exc:
        raise InvalidPatientKeyError("patient key is not a pseudonym made with this site's secret") from exc


class CorePseudonyms:
    """The core's translations between site pseudonyms and national ones (holds the national secret).

    Each site's secret and AES key schedule, and the national HMAC key schedule, are computed once
    and kept (one entry per site: a few thousand at most), so a translation is one AES block
    decryption and one HMAC. Not for concurrent use from several threads (see :class:`_Blocks`).
    """

    __slots__ = ("_ciphers", "_national", "national_secret")

    def __init__(self, national_secret: bytes) -> None:
        self.national_secret = national_secret
        self._national = Pseudonymiser(national_secret)
        self._ciphers: dict[str, _Blocks] = {}

    def site_secret(self, site: str) -> bytes:
        return site_secret(self.national_secret, site)

    def _cipher_for(self, site: str) -> _Blocks:
        blocks = self._ciphers.get(site)
        if blocks is None:
            blocks = self._ciphers[site] = _Blocks(self.site_secret(site))
        return blocks

    def to_national(self, site: str, site_key: str) -> str:
        """The national pseudonym of the person behind ``site``'s pseudonym ``site_key``."""
        return self._national.of_digits(_open(self._cipher_for(site), site_key))

    def national(self, nhs_number: str) -> str:
        """The national pseudonym of a person (:func:`consent_wire.identity.patient_key`)."""
        return self._national(nhs_number)

    def for_site(self, site: str, nhs_number: str) -> str:
        """``site``'s pseudonym of a person, from the NHS number (e.g. an API request naming the site)."""
        return _seal(self._cipher_for(site), nhs_number)
