"""Per-site pseudonyms (issue 12 item 11): a site secret yields neither other sites' pseudonyms nor national ones."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent_wire import (
    CorePseudonyms,
    InvalidPatientKeyError,
    open_site_key,
    patient_key,
    site_patient_key,
    site_secret,
)

NATIONAL = bytes(range(32))
NHS = "9434765919"


def _nhs(stem: int) -> str | None:
    digits = f"{stem:09d}"
    check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
    check = 0 if check == 11 else check
    return None if check == 10 else digits + str(check)


valid_nhs = st.integers(min_value=100_000_000, max_value=999_999_999).map(_nhs).filter(lambda n: n is not None)


def test_each_site_gets_its_own_secret_and_its_own_pseudonyms() -> None:
    a, b = site_secret(NATIONAL, "A81001"), site_secret(NATIONAL, "B82002")
    assert a != b and NATIONAL not in (a, b) and len(a) == 32
    assert len({site_patient_key(a, NHS), site_patient_key(b, NHS), patient_key(NATIONAL, NHS)}) == 3
    assert len(site_patient_key(a, NHS)) == 32


@settings(max_examples=200)
@given(valid_nhs)
def test_a_sites_secret_cannot_produce_another_sites_pseudonym(nhs: str) -> None:
    """Whatever a site computes with its own secret (the NHS numbers it knows), it never lands on another site's
    pseudonym or the national one: those need secrets it does not hold (HKDF is one-way)."""
    mine = site_secret(NATIONAL, "A81001")
    theirs = CorePseudonyms(NATIONAL).for_site("B82002", nhs)
    national = patient_key(NATIONAL, nhs)
    assert site_patient_key(mine, nhs) not in (theirs, national)
    assert patient_key(mine, nhs) not in (theirs, national)  # nor by using its secret as if national
    with pytest.raises(InvalidPatientKeyError):
        open_site_key(mine, theirs)  # and it cannot open another site's pseudonym back to the NHS number


@settings(max_examples=200)
@given(valid_nhs)
def test_the_core_translates_a_site_pseudonym_to_the_national_one(nhs: str) -> None:
    core = CorePseudonyms(NATIONAL)
    for site in ("A81001", "VM1001", "RXX"):
        assert core.to_national(site, core.for_site(site, nhs)) == patient_key(NATIONAL, nhs)


def test_a_forged_or_foreign_pseudonym_is_invalid_patient_key() -> None:
    core = CorePseudonyms(NATIONAL)
    with pytest.raises(InvalidPatientKeyError):
        core.to_national("A81001", os.urandom(16).hex())
    with pytest.raises(InvalidPatientKeyError):
        core.to_national("A81001", patient_key(NATIONAL, NHS))  # a national key is no site key
    with pytest.raises(InvalidPatientKeyError):
        core.to_national("A81001", "not hex")


def test_a_short_national_secret_or_a_bad_site_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        site_secret(b"short", "A81001")
    with pytest.raises(ValueError, match="not an ODS code"):
        site_secret(NATIONAL, "a81001/../x")
