"""Signed-note checkpoints, the witness's cosigning rules and the named findings of verify_log (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit.note import ALG_COSIGNATURE, Checkpoint, NoteError, NoteSigner, SignedNote, Verifier, parse_note
from broker.audit.tlog import Finding, WitnessPolicy, cosigners, sign_checkpoint, verify_log
from broker.audit.tree import MerkleLog
from broker.audit.witness import WitnessCore, add_checkpoint_body

ORIGIN = "consent-broker.test/audit"


class Harness:
    """An honest log, two witnesses (quorum 2), and the log's stored entries and checkpoint notes."""

    def __init__(self) -> None:
        self.log_key = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        self.witnesses = [
            WitnessCore(
                NoteSigner(f"w{i}", Ed25519PrivateKey.generate(), ALG_COSIGNATURE), {ORIGIN: self.log_key.verifier}, {}
            )
            for i in range(2)
        ]
        self.policy = WitnessPolicy(tuple(w.signer.verifier for w in self.witnesses), 2)
        self.tree = MerkleLog()
        self.entries: list[tuple[int, bytes]] = []
        self.notes: list[str] = []

    def append(self, count: int) -> None:
        for _ in range(count):
            record = f'{{"n":{len(self.entries)}}}'.encode()
            self.entries.append((self.tree.append(record), record))

    def checkpoint(self) -> str:
        note = sign_checkpoint(self.log_key, ORIGIN, self.tree.size, self.tree.root())
        for w in self.witnesses:
            held = w.state.get(ORIGIN)
            old = held.size if held else 0
            answer = w.add_checkpoint(add_checkpoint_body(old, self.tree.consistency_proof(old), note.to_text()), 1000)
            assert answer.status == 200, answer.body
            w.adopt(answer)
            note = note.with_signatures(parse_note(note.text + "\n" + answer.body.decode()).signatures)
        self.notes.append(note.to_text())
        return note.to_text()

    def latest(self) -> list[str]:
        return [w.state[ORIGIN].note for w in self.witnesses if ORIGIN in w.state]

    def verify(self, entries: list[tuple[int, bytes]] | None = None, notes: list[str] | None = None,
               key: Verifier | None = None, external: list[str] | None = None) -> set[Finding]:  # fmt: skip
        result = verify_log(
            ORIGIN,
            self.entries if entries is None else entries,
            self.notes if notes is None else notes,
            key or self.log_key.verifier,
            self.policy,
            self.latest() if external is None else external,
        )
        return result.findings()


@pytest.fixture
def h() -> Harness:
    h = Harness()
    h.append(5)
    h.checkpoint()
    h.append(6)
    h.checkpoint()
    return h


def test_checkpoint_note_is_c2sp_format_and_round_trips(h: Harness) -> None:
    note = parse_note(h.notes[-1])
    assert note.text.split("\n")[:2] == [ORIGIN, "11"]
    assert Checkpoint.parse(note.text).root == h.tree.root()
    assert note.to_text() == h.notes[-1]
    assert note.verified_by(h.log_key.verifier) == 0
    assert sorted(cosigners(note, h.policy)) == ["w0", "w1"]
    assert h.notes[-1].count("\u2014 ") == 3
    assert Verifier.parse(h.log_key.verifier.vkey()) == h.log_key.verifier


def test_vkey_with_a_wrong_key_id_is_refused(h: Harness) -> None:
    name, _, blob = h.log_key.verifier.vkey().split("+", 2)
    with pytest.raises(NoteError, match="key id"):
        Verifier.parse(f"{name}+00000000+{blob}")


def test_honest_log_verifies(h: Harness) -> None:
    assert h.verify() == set()


def test_truncated_and_resigned_with_a_new_key_is_named(h: Harness) -> None:
    forger = Harness()
    forger.entries, forger.tree = [], MerkleLog()
    forger.append(4)
    forged = sign_checkpoint(forger.log_key, ORIGIN, 4, forger.tree.root()).to_text()
    found = h.verify(entries=forger.entries, notes=[forged])
    assert {Finding.BAD_SIGNATURE, Finding.TRUNCATION} <= found


def test_tail_cut_with_its_checkpoints_is_named_from_the_witnesses(h: Harness) -> None:
    assert h.verify(entries=h.entries[:5], notes=h.notes[:1]) == {Finding.TRUNCATION}


def test_entry_appended_after_the_last_checkpoint_is_named(h: Harness) -> None:
    h.append(1)
    assert h.verify() == {Finding.UNWITNESSED_ENTRIES}


def test_rewritten_entry_is_named(h: Harness) -> None:
    entries = list(h.entries)
    entries[3] = (3, b'{"n":"forged"}')
    assert Finding.REWRITE in h.verify(entries=entries)


def test_reordered_entries_are_named(h: Harness) -> None:
    entries = list(h.entries)
    entries[2], entries[3] = entries[3], entries[2]
    assert Finding.REORDERING in h.verify(entries=entries)


def test_split_view_is_named_as_a_fork() -> None:
    """The log shows reader B another history, log-signed, but the witnesses cosigned reader A's."""
    a = Harness()
    a.append(4)
    a.checkpoint()
    b_tree, b_entries = MerkleLog(), [(i, f"other-{i}".encode()) for i in range(4)]
    for _, r in b_entries:
        b_tree.append(r)
    b_note = sign_checkpoint(a.log_key, ORIGIN, 4, b_tree.root()).to_text()
    found = a.verify(entries=b_entries, notes=[b_note])
    assert Finding.FORK in found
    assert Finding.NO_QUORUM in found  # no witness would cosign B


def test_checkpoint_not_consistent_with_an_earlier_one_is_named(h: Harness) -> None:
    bogus = sign_checkpoint(h.log_key, ORIGIN, 3, bytes(32)).to_text()
    assert Finding.INCONSISTENT_CHECKPOINT in h.verify(notes=[bogus, *h.notes], external=[])
    assert Finding.INCONSISTENT_CHECKPOINT in h.verify(notes=[h.notes[1], h.notes[0]])


def test_witness_refuses_rollback_size_mismatch_bad_proof_foreign_key_and_unknown_origin(h: Harness) -> None:
    w = h.witnesses[0]
    old_note = sign_checkpoint(h.log_key, ORIGIN, 5, h.tree.root(5)).to_text()
    rollback = w.add_checkpoint(add_checkpoint_body(11, (), old_note), 1)
    assert rollback.status == 400
    assert w.add_checkpoint(add_checkpoint_body(5, (), old_note), 1).status == 409
    assert w.add_checkpoint(add_checkpoint_body(5, (), old_note), 1).body == b"11\n"
    h.append(2)
    new_note = sign_checkpoint(h.log_key, ORIGIN, 13, h.tree.root()).to_text()
    bad = w.add_checkpoint(add_checkpoint_body(11, (bytes(32),), new_note), 1)
    assert bad.status == 422
    foreign = sign_checkpoint(NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN, 13, h.tree.root()).to_text()
    assert w.add_checkpoint(add_checkpoint_body(11, h.tree.consistency_proof(11), foreign), 1).status == 403
    other = sign_checkpoint(NoteSigner("other.log", Ed25519PrivateKey.generate()), "other.log", 1, bytes(32))
    assert w.add_checkpoint(add_checkpoint_body(0, (), other.to_text()), 1).status == 404
    assert w.add_checkpoint(b"not a request", 1).status == 400
    assert w.state[ORIGIN].size == 11  # nothing was adopted
    good = w.add_checkpoint(add_checkpoint_body(11, h.tree.consistency_proof(11), new_note), 1)
    assert good.status == 200


def test_quorum_policy_is_checked() -> None:
    with pytest.raises(NoteError, match="quorum"):
        WitnessPolicy((), 1)


def test_cosignature_covers_the_timestamp(h: Harness) -> None:
    note = parse_note(h.notes[-1])
    cosig = note.signatures[1]
    tampered = type(cosig)(cosig.name, cosig.key_id, cosig.blob[:4] + (5).to_bytes(8, "big") + cosig.blob[12:])
    assert SignedNote(note.text, (tampered,)).verified_by(h.policy.witnesses[0]) is None


async def test_the_witness_counts_each_refused_checkpoint_for_the_disagreement_alert(
    h: Harness, tmp_path: Path
) -> None:
    """deploy/prometheus AuditWitnessDisagreement watches audit_witness_disagreements_total: a bad proof (422)
    and a rollback (400) count, the protocol's normal resynchronisation (409) does not."""
    from aiohttp.test_utils import TestClient, TestServer
    from prometheus_client import REGISTRY

    from broker.witness.server import WitnessServer
    from broker.witness.store import StateFile

    def count(status: str) -> float:
        return REGISTRY.get_sample_value("audit_witness_disagreements_total", {"status": status}) or 0.0

    before = {s: count(s) for s in ("400", "409", "422")}
    server = WitnessServer(h.witnesses[0], StateFile(tmp_path / "w.json"), [], insecure=True)
    old_note = sign_checkpoint(h.log_key, ORIGIN, 5, h.tree.root(5)).to_text()
    h.append(2)
    new_note = sign_checkpoint(h.log_key, ORIGIN, 13, h.tree.root()).to_text()
    async with TestClient(TestServer(server.app())) as client:
        bodies = {
            400: add_checkpoint_body(11, (), old_note),  # a rollback
            409: add_checkpoint_body(5, (), old_note),  # stale old size: resynchronise
            422: add_checkpoint_body(11, (bytes(32),), new_note),  # a proof that does not verify
        }
        for status, body in bodies.items():
            assert (await client.post("/add-checkpoint", data=body)).status == status
    assert {s: count(s) - before[s] for s in before} == {"400": 1.0, "409": 0.0, "422": 1.0}
