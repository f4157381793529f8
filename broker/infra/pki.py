"""The deployment's private certificate authority and one X.509 certificate per principal (mTLS everywhere).

Layout under ``<infra root>/pki`` (directories 0700, private keys 0600, PKCS#8 PEM, unencrypted)::

    ca.pem  ca-key.pem                       the CA (ECDSA P-256; Java's TLS does not take Ed25519 everywhere)
    <principal>/cert.pem  key.pem            a principal's certificate (CN = principal name) and key
    <principal>/keystore.pem                 key + certificate in one file (Kafka's PEM keystore, KIP-651)

Idempotent: a valid CA and certificates are reused; a certificate expiring within ``RENEW_BEFORE`` or not
signed by the current CA is reissued. Revocation is "stop issuing": certificates are short-lived
(``CERT_VALIDITY``), so a principal that is no longer issued loses access when its certificate expires.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.infra.errors import InfraError
from consent_io.tls import KeyFileModeError, check_key_file_mode

__all__ = [
    "CA_VALIDITY",
    "CERT_VALIDITY",
    "RENEW_BEFORE",
    "KeyFileModeError",
    "Pki",
    "PrincipalFiles",
    "check_key_file_mode",
]

CA_VALIDITY = dt.timedelta(days=3650)  # the CA outlives many rotations of the leaf certificates
CERT_VALIDITY = dt.timedelta(days=30)  # short: revocation is "stop issuing" (no CRL or OCSP to run)
RENEW_BEFORE = dt.timedelta(days=7)  # reissue a week before expiry so a weekly restart never sees an expired one
# Principal names become certificate CNs, Kafka principals (User:<name>), MQTT usernames and ACL topic levels:
# no '/', '+', '#', ',', '=' or spaces (each would break one of those).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class PrincipalFiles:
    """Where one principal's credentials are; pass these to a ``KafkaConnection``/``MqttConnection``."""

    name: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    keystore_file: Path  # key + certificate chain in one PEM file (what Kafka's PEM keystore reads)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file that is 0600 from its creation (never briefly world-readable)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Pki:
    """A CA in ``directory`` and the certificates it issues; ``now`` is injectable for the expiry tests."""

    def __init__(self, directory: Path, *, now: dt.datetime | None = None) -> None:
        self.directory = directory
        self._now = now

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.directory / "ca-key.pem"

    def files(self, name: str) -> PrincipalFiles:
        d = self.directory / name
        return PrincipalFiles(name, self.ca_file, d / "cert.pem", d / "key.pem", d / "keystore.pem")

    def now(self) -> dt.datetime:
        return self._now or _now()

    def _mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)

    def _fresh(self, cert: x509.Certificate) -> bool:
        now = self.now()
        return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now

    def ensure_ca(self) -> x509.Certificate:
        """Load the CA, or create it (again) when missing, expired or close to expiry."""
        self._mkdir(self.directory)
        if self.ca_file.exists() and self.ca_key_file.exists():
            check_key_file_mode(self.ca_key_file)
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            if self._fresh(cert):
                return cert
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"consent-broker CA {self.now():%Y%m%d%H%M%S}")])
        now = self.now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )  # key_cert_sign, crl_sign
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.ca_key_file, _key_pem(key))
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = self.ensure_ca()
        key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InfraError(f"CA key {self.ca_key_file} is not an ECDSA key; delete {self.directory} to start over")
        return cert, key

    def _valid(self, files: PrincipalFiles, ca: x509.Certificate) -> bool:
        if not (files.cert_file.exists() and files.key_file.exists() and files.keystore_file.exists()):
            return False
        check_key_file_mode(files.key_file)
        check_key_file_mode(files.keystore_file)
        cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
        key = serialization.load_pem_private_key(files.key_file.read_bytes(), password=None)
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return False
        # a crash between writing the new key and the new certificate leaves a pair that does not match
        return cert.public_key() == key.public_key() and self._fresh(cert)

    def issue(self, name: str, *, server: bool = False) -> PrincipalFiles:
        """The credentials of ``name`` (CN = name); ``server`` adds SANs 127.0.0.1 and localhost. Idempotent."""
        if _NAME.fullmatch(name) is None:
            raise InfraError(
                f"principal name {name!r} is not usable: letters, digits, '.', '_' and '-' only (max 64 chars)"
            )
        ca_cert, ca_key = self._ca()
        files = self.files(name)
        if self._valid(files, ca_cert):
            return files
        self._mkdir(files.cert_file.parent)
        key = ec.generate_private_key(ec.SECP256R1())
        now = self.now()
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + CERT_VALIDITY, ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, True, False, False, False, False), critical=True
            )  # digital_signature, key_agreement (ECDHE)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if server:
            sans: list[x509.GeneralName] = [
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost"),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        _write_private(files.key_file, _key_pem(key))
        _write_private(files.keystore_file, _key_pem(key) + cert_pem)
        files.cert_file.write_bytes(cert_pem)
        return files
