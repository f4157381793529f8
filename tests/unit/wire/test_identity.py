from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent_wire import InvalidNhsNumberError, patient_key, validate_nhs_number

VALID = "9434765919"  # NHS Digital's published example number
SECRET = b"k" * 32


def _check_digit(nine: str) -> int:
    check = 11 - sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True)) % 11
    return 0 if check == 11 else check


@pytest.mark.parametrize("written", ["9434765919", "943 476 5919", "943-476-5919", " 943 476 5919 "])
def test_accepted_forms_normalise_to_ten_digits(written: str) -> None:
    assert validate_nhs_number(written) == VALID


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("943476591", "must have 10 digits, got 9"),
        ("94347659190", "must have 10 digits, got 11"),
        ("9434765918", "check digit does not match"),
        ("94347659I9", "other than a digit, space or hyphen at position 9"),
        ("943 476-5919", "group the digits 3-3-4 with one kind of separator"),
        ("9434 76 5919", "group the digits 3-3-4"),
        ("", "must have 10 digits, got 0"),
        ("٩٤٣٤٧٦٥٩١٩", "other than a digit"),  # Arabic-Indic digits are not NHS number digits
    ],
)
def test_invalid_numbers_say_what_was_wrong_without_echoing_the_number(written: str, message: str) -> None:
    with pytest.raises(InvalidNhsNumberError, match=message) as info:
        validate_nhs_number(written)
    digits = written.replace(" ", "").replace("-", "")
    assert not digits or digits not in str(info.value)


def test_check_digit_of_ten_is_invalid() -> None:
    nine = next(f"{n:09d}" for n in range(100_000_000, 100_010_000) if _check_digit(f"{n:09d}") == 10)
    with pytest.raises(InvalidNhsNumberError, match="check digit 10"):
        validate_nhs_number(nine + "0")


@given(st.integers(min_value=0, max_value=999_999_999))
def test_every_nine_digit_prefix_has_exactly_one_valid_check_digit_unless_it_is_ten(n: int) -> None:
    nine = f"{n:09d}"
    valid = []
    for d in "0123456789":
        try:
            valid.append(validate_nhs_number(nine + d))
        except InvalidNhsNumberError:
            pass
    expected = _check_digit(nine)
    assert valid == ([] if expected == 10 else [nine + str(expected)])


def test_patient_key_is_truncated_hmac_sha256_of_the_normalised_number() -> None:
    expected = hmac.new(SECRET, VALID.encode(), hashlib.sha256).hexdigest()[:32]
    assert patient_key(SECRET, "943 476 5919") == expected
    assert patient_key(b"j" * 32, VALID) != expected


def test_patient_key_refuses_a_short_secret_and_an_invalid_number() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        patient_key(b"short", VALID)
    with pytest.raises(InvalidNhsNumberError):
        patient_key(SECRET, "9434765918")


def test_the_pseudonymiser_keys_exactly_as_patient_key() -> None:
    from consent_wire.identity import Pseudonymiser, patient_key

    secret = bytes(range(32))
    keyed = Pseudonymiser(secret)
    for nhs in ("9434765919", "943 476 5927", "943-476-5935"):
        assert keyed(nhs) == patient_key(secret, nhs) == keyed.of_digits(nhs.replace(" ", "").replace("-", ""))
