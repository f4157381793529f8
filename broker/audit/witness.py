"""The witness's rules (C2SP tlog-witness ``add-checkpoint``), pure: request in, answer and new state out.

A witness keeps, per log origin, the latest checkpoint it cosigned. It cosigns a new checkpoint only if
the log's signature verifies with the pinned log key, the request's ``old`` size is the size it holds
(else ``409`` with its size, so an honest log can retry), and the consistency proof from the tree it
holds to the new one verifies (else ``422``). A checkpoint smaller than the one held is a rollback and
is never signed (``400``: old size larger than the checkpoint). The request body
(https://c2sp.org/tlog-witness)::

    old <size>\\n
    <base64 proof hash>\\n   (zero or more)
    \\n
    <signed checkpoint note>

Statuses: 200 (body: the cosignature line), 400 malformed or rollback, 403 not signed by the log key,
404 unknown origin, 409 old size mismatch (body: ``<size>\\n``, ``text/x.tlog.size``), 422 bad proof.
The I/O shell (:mod:`broker.commands.witness`) persists the new state *before* sending the 200.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace

from broker.audit.note import Checkpoint, NoteError, NoteSigner, SignedNote, Verifier, parse_note
from consent_wire import BadProofError, verify_consistency

__all__ = ["WitnessAnswer", "WitnessCore", "WitnessedLog", "add_checkpoint_body", "parse_add_checkpoint"]

_MAX_PROOF_LINES = 63  # a consistency proof of a tree of at most 2^63 leaves is at most 2*63 - 1 hashes; we allow 63


@dataclass(frozen=True, slots=True)
class WitnessedLog:
    """The latest checkpoint this witness cosigned for one origin (size 0: none yet)."""

    size: int = 0
    root: bytes = b""
    note: str = ""  # the cosigned note (log signature + this witness's cosignature)


@dataclass(frozen=True, slots=True)
class WitnessAnswer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    origin: str = ""
    updated: WitnessedLog | None = None  # the state to persist before answering (200 only)


def add_checkpoint_body(old_size: int, proof: tuple[bytes, ...], note: str) -> bytes:
    lines = [f"old {old_size}"] + [base64.b64encode(p).decode() for p in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()


def parse_add_checkpoint(body: bytes) -> tuple[int, tuple[bytes, ...], SignedNote]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(f"request is not UTF-8: {exc}") from exc
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("old ") or len(lines) - 1 > _MAX_PROOF_LINES:
        raise NoteError("expected 'old <size>', at most 63 proof lines, a blank line, then the checkpoint")
    size = lines[0][4:]
    if not size.isdigit():
        raise NoteError(f"old size {size[:24]!r} is not a number")
    try:
        proof = tuple(base64.b64decode(p, validate=True) for p in lines[1:])
    except binascii.Error as exc:
        raise NoteError(f"proof line is not base64: {exc}") from exc
    return int(size), proof, parse_note(note)


class WitnessCore:
    """Cosigning rules over in-memory state; the caller persists ``answer.updated`` then adopts it."""

    def __init__(self, signer: NoteSigner, logs: dict[str, Verifier], state: dict[str, WitnessedLog]) -> None:
        self.signer, self.logs, self.state = signer, logs, dict(state)

    def add_checkpoint(self, body: bytes, now_s: int) -> WitnessAnswer:
        try:
            old, proof, note = parse_add_checkpoint(body)
            cp = Checkpoint.parse(note.text)
        except NoteError as exc:
            return WitnessAnswer(400, f"{exc}\n".encode())
        log_key = self.logs.get(cp.origin)
        if log_key is None:
            return WitnessAnswer(404, b"unknown log origin\n", origin=cp.origin)
        if note.verified_by(log_key) is None:
            return WitnessAnswer(403, b"checkpoint is not signed by the log's key\n", origin=cp.origin)
        held = self.state.get(cp.origin, WitnessedLog())
        if old != held.size:
            return WitnessAnswer(409, f"{held.size}\n".encode(), "text/x.tlog.size", cp.origin)
        if cp.size < old:
            rollback = b"old size is larger than the checkpoint: a rollback is never cosigned\n"
            return WitnessAnswer(400, rollback, origin=cp.origin)
        try:
            verify_consistency(old, cp.size, held.root, cp.root, proof)
        except BadProofError as exc:
            return WitnessAnswer(422, f"{exc}\n".encode(), origin=cp.origin)
        cosig = self.signer.sign(note.text, now_s)
        cosigned = SignedNote(note.text, tuple(s for s in note.signatures if log_key.verify(note.text, s) is not None))
        updated = replace(held, size=cp.size, root=cp.root, note=cosigned.with_signatures((cosig,)).to_text())
        return WitnessAnswer(200, cosig.line().encode(), origin=cp.origin, updated=updated)

    def adopt(self, answer: WitnessAnswer) -> None:
        if answer.updated is not None:
            self.state[answer.origin] = answer.updated
