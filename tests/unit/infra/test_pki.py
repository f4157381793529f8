"""The private CA: file modes, reuse of valid credentials, reissue near expiry, refusal of readable keys."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.infra.errors import InfraError
from broker.infra.pki import CERT_VALIDITY, RENEW_BEFORE, KeyFileModeError, Pki, check_key_file_mode

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_keys_are_0600_and_directories_0700(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki", now=T0)
    files = pki.issue("core.api")
    assert _mode(pki.directory) == 0o700
    assert _mode(files.key_file.parent) == 0o700
    assert _mode(pki.ca_key_file) == 0o600
    assert _mode(files.key_file) == 0o600
    assert _mode(files.keystore_file) == 0o600
    assert files.key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert files.cert_file == tmp_path / "pki" / "core.api" / "cert.pem"
    assert files.ca_file == tmp_path / "pki" / "ca.pem"


def test_a_certificate_names_its_principal_and_is_signed_by_the_ca_with_p256(tmp_path: Path) -> None:
    pki = Pki(tmp_path, now=T0)
    cert = _cert(pki.issue("operator").cert_file)
    ca = _cert(pki.ca_file)
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "operator"
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == CERT_VALIDITY + dt.timedelta(minutes=5)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_a_server_certificate_names_loopback(tmp_path: Path) -> None:
    cert = _cert(Pki(tmp_path, now=T0).issue("broker", server=True).cert_file)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value


def test_the_keystore_holds_the_key_then_the_certificate(tmp_path: Path) -> None:
    files = Pki(tmp_path, now=T0).issue("broker", server=True)
    assert files.keystore_file.read_bytes() == files.key_file.read_bytes() + files.cert_file.read_bytes()


def test_a_valid_certificate_is_reused(tmp_path: Path) -> None:
    first = Pki(tmp_path, now=T0).issue("core.api").cert_file.read_bytes()
    later = T0 + CERT_VALIDITY - RENEW_BEFORE - dt.timedelta(hours=1)
    assert Pki(tmp_path, now=later).issue("core.api").cert_file.read_bytes() == first


def test_a_certificate_within_seven_days_of_expiry_is_reissued(tmp_path: Path) -> None:
    first = _cert(Pki(tmp_path, now=T0).issue("core.api").cert_file)
    later = T0 + CERT_VALIDITY - RENEW_BEFORE + dt.timedelta(hours=1)
    renewed = _cert(Pki(tmp_path, now=later).issue("core.api").cert_file)
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_after_utc > first.not_valid_after_utc


def test_a_new_ca_reissues_every_certificate(tmp_path: Path) -> None:
    pki = Pki(tmp_path, now=T0)
    first = _cert(pki.issue("core.api").cert_file)
    pki.ca_file.unlink()
    second = _cert(pki.issue("core.api").cert_file)
    assert second.serial_number != first.serial_number
    second.verify_directly_issued_by(_cert(pki.ca_file))


def test_a_mismatched_key_and_certificate_are_reissued(tmp_path: Path) -> None:
    pki = Pki(tmp_path, now=T0)
    api, other = pki.issue("core.api"), pki.issue("core.mirror")
    api.key_file.write_bytes(other.key_file.read_bytes())  # as if a crash left a new key beside the old certificate
    again = pki.issue("core.api")
    assert _cert(again.cert_file).public_key() != _cert(other.cert_file).public_key()


def test_a_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    pki = Pki(tmp_path, now=T0)
    files = pki.issue("core.api")
    files.key_file.chmod(0o644)
    with pytest.raises(KeyFileModeError, match=r"mode 0o644.*chmod 600") as info:
        check_key_file_mode(files.key_file)
    assert info.value.reason == "KEY_FILE_MODE"
    with pytest.raises(KeyFileModeError):
        pki.issue("core.api")  # never silently reuses (or replaces) a key others could have read


def test_a_0600_key_file_is_accepted(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(b"k")
    key.chmod(0o600)
    check_key_file_mode(key)


def test_a_world_readable_ca_key_is_refused(tmp_path: Path) -> None:
    pki = Pki(tmp_path, now=T0)
    pki.ensure_ca()
    pki.ca_key_file.chmod(0o604)
    with pytest.raises(KeyFileModeError, match=r"ca-key\.pem"):
        pki.issue("core.api")


@pytest.mark.parametrize("name", ["", "a/b", "gw+1", "x#", "CN=x,O=y", "with space", "a" * 65])
def test_unusable_principal_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InfraError, match="principal name"):
        Pki(tmp_path, now=T0).issue(name)
