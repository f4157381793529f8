"""Log and witness signing keys on disk: hex of a raw 32-byte Ed25519 private key, mode 0600 (I/O shell)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from broker.audit.errors import AuditError
from broker.audit.note import NoteSigner
from consent_io.secrets import SecretFileError, read_secret, write_secret

__all__ = ["generate_key_file", "load_signer"]


def load_signer(path: str | Path, name: str, alg: int, what: str) -> NoteSigner:
    """The signer named ``name`` whose key is in ``path``; refuses a missing, wide-open or malformed file."""
    if not str(path):
        raise AuditError(f"{what} is required: point it at a 0600 file holding a hex Ed25519 key")
    try:
        raw = bytes.fromhex(read_secret(path, what).decode("ascii", "replace"))
        return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(raw), alg)
    except (SecretFileError, ValueError) as exc:
        raise AuditError(f"{what} {path}: {exc}; it must hold a raw 32-byte Ed25519 private key in hex") from exc


def generate_key_file(path: str | Path, name: str, alg: int) -> NoteSigner:
    """Create a new key at ``path`` (0600 from the start) and return its signer; never overwrites."""
    if Path(path).exists():
        raise AuditError(f"{path} already exists; a signing key is generated once and kept")
    key = Ed25519PrivateKey.generate()
    write_secret(path, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex().encode() + b"\n")
    return NoteSigner(name, key, alg)
