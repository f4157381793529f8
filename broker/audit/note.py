"""C2SP signed notes and tlog checkpoints with Ed25519 signatures and witness cosignatures (pure).

- signed-note (https://c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank line, then one
  signature line per signer: ``— <key name> <base64(key id (4 bytes) || signature)>``. The key id is
  ``SHA-256(name || 0x0A || type || public key)[:4]``; type 0x01 is Ed25519 over the note text.
- tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the note text is ``<origin>\\n<tree size>\\n<base64
  root hash>\\n`` (then optional extension lines, which we never write).
- tlog-cosignature (https://c2sp.org/tlog-cosignature): type 0x04; a witness signs
  ``cosignature/v1\\ntime <t>\\n`` + the checkpoint text, the line carries ``key id || t (8 bytes BE) || sig``.

A verifier key is written as ``<name>+<hex key id>+<base64(type || public key)>`` (the vkey format of
signed-note), so one string pins a key's name, id and bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.audit.errors import AuditError

__all__ = [
    "ALG_COSIGNATURE",
    "ALG_ED25519",
    "Checkpoint",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "SignedNote",
    "Verifier",
    "cosignature_message",
    "format_note",
    "parse_note",
]

ALG_ED25519 = 0x01  # signed-note signature type for Ed25519 (c2sp.org/signed-note)
ALG_COSIGNATURE = 0x04  # tlog-cosignature/v1 with Ed25519 (c2sp.org/tlog-cosignature)
_DASH = "\u2014"  # the EM DASH that starts every signature line
_MAX_NOTE_BYTES = 1 << 20  # a checkpoint is a few hundred bytes; refuse absurd inputs early
_MAX_SIGNATURES = 100  # signed-note: verifiers may reject notes with too many signatures


class NoteError(AuditError):
    reason = "BAD_NOTE"


def _key_id(name: str, alg: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")


def cosignature_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


@dataclass(frozen=True, slots=True)
class Verifier:
    """A pinned public key: name, type (Ed25519 log key or witness cosignature key) and bytes."""

    name: str
    alg: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.alg, self.public)

    def vkey(self) -> str:
        blob = base64.b64encode(bytes([self.alg]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @staticmethod
    def parse(vkey: str) -> Verifier:
        try:
            name, hex_id, blob = vkey.strip().split("+", 2)
            raw = base64.b64decode(blob, validate=True)
            v = Verifier(name, raw[0], raw[1:])
            ok = len(v.public) == 32 and v.alg in (ALG_ED25519, ALG_COSIGNATURE) and v.key_id.hex() == hex_id
        except (ValueError, IndexError, binascii.Error) as exc:
            raise NoteError(f"not a verifier key (name+hexid+base64): {exc}") from exc
        if not ok:
            raise NoteError(f"verifier key {vkey.strip()!r} has a wrong type, length or key id")
        _check_name(name)
        return v

    def verify(self, text: str, sig: NoteSignature) -> int | None:
        """The signature's timestamp (0 for a plain Ed25519 signature) if it verifies, else None."""
        if sig.name != self.name or sig.key_id != self.key_id:
            return None
        body, stamp = sig.blob[4:], 0
        if self.alg == ALG_COSIGNATURE:
            if len(body) != 72:
                return None
            stamp, body = int.from_bytes(body[:8], "big"), body[8:]
            message = cosignature_message(text, stamp)
        else:
            message = text.encode()
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(body, message)
        except (InvalidSignature, ValueError):
            return None
        return stamp


@dataclass(frozen=True, slots=True)
class NoteSigner:
    name: str
    key: Ed25519PrivateKey
    alg: int = ALG_ED25519

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.alg, _raw(self.key.public_key()))

    def sign(self, text: str, timestamp: int = 0) -> NoteSignature:
        kid = self.verifier.key_id
        if self.alg == ALG_COSIGNATURE:
            blob = kid + timestamp.to_bytes(8, "big") + self.key.sign(cosignature_message(text, timestamp))
        else:
            blob = kid + self.key.sign(text.encode())
        return NoteSignature(self.name, kid, blob)


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes
    blob: bytes  # key id || signature (|| timestamp for cosignatures, before the signature)

    def line(self) -> str:
        return f"{_DASH} {self.name} {base64.b64encode(self.blob).decode()}\n"


@dataclass(frozen=True, slots=True)
class SignedNote:
    text: str  # ends with "\n"
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        return format_note(self.text, self.signatures)

    def with_signatures(self, extra: tuple[NoteSignature, ...]) -> SignedNote:
        seen = {(s.name, s.key_id) for s in self.signatures}
        return SignedNote(self.text, self.signatures + tuple(s for s in extra if (s.name, s.key_id) not in seen))

    def verified_by(self, verifier: Verifier) -> int | None:
        for sig in self.signatures:
            stamp = verifier.verify(self.text, sig)
            if stamp is not None:
                return stamp
        return None


def format_note(text: str, signatures: tuple[NoteSignature, ...]) -> str:
    return text + "\n" + "".join(s.line() for s in signatures)


def parse_note(data: str | bytes) -> SignedNote:
    """Split a signed note into text and signature lines; raises :class:`NoteError` on any malformation."""
    if isinstance(data, bytes):
        if len(data) > _MAX_NOTE_BYTES:
            raise NoteError(f"note is {len(data)} bytes; at most {_MAX_NOTE_BYTES}")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"note is not UTF-8: {exc}") from exc
    split = data.rfind("\n\n")
    if split < 0 or not data.endswith("\n"):
        raise NoteError("a signed note needs its text, a blank line and at least one signature line")
    text, sig_block = data[: split + 1], data[split + 2 :]
    sigs: list[NoteSignature] = []
    for line in sig_block.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise NoteError(f"malformed signature line {line[:80]!r}")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature line is not base64: {exc}") from exc
        if len(blob) < 5:
            raise NoteError("signature line too short")
        sigs.append(NoteSignature(parts[1], blob[:4], blob))
    if not sigs or len(sigs) > _MAX_SIGNATURES:
        raise NoteError(f"a signed note carries 1..{_MAX_SIGNATURES} signatures, got {len(sigs)}")
    return SignedNote(text, tuple(sigs))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The body of a tlog checkpoint: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @staticmethod
    def parse(text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint has an origin, a size and a root hash line, each ending in a newline")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError(f"bad checkpoint origin or size line {size[:24]!r}")
        try:
            raw = base64.b64decode(root, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"checkpoint root is not base64: {exc}") from exc
        if len(raw) != 32:
            raise NoteError(f"checkpoint root is {len(raw)} bytes, not 32")
        return Checkpoint(origin, int(size), raw)
