"""Checkpoints of the audit Merkle log and their verification against a pinned key and a witness quorum (pure).

The log signs C2SP checkpoints (:mod:`broker.audit.note`) with its key, named after the log's origin;
witnesses cosign them (:mod:`broker.audit.witness`). :func:`verify_log` rebuilds the Merkle tree from
the stored entries and names each problem it finds (:class:`Finding`):

- ``REORDERING``: entries stored out of index order;
- ``REWRITE``: an entry index missing or repeated, or the entries no longer match a cosigned checkpoint;
- ``TRUNCATION``: a cosigned checkpoint covers more entries than the log holds;
- ``FORK``: a checkpoint signed by the log key and held outside the log (by a witness or a reader)
  differs from the history this log shows, while the log's own checkpoints match it (a split view);
- ``INCONSISTENT_CHECKPOINT``: a checkpoint in the log that is not an extension of an earlier one
  (smaller, or a different tree at a size both cover);
- ``UNWITNESSED_ENTRIES``: entries beyond the newest cosigned checkpoint (not yet endorsed by anyone);
- ``BAD_SIGNATURE``: a checkpoint not signed by the pinned log key (e.g. re-signed with a new key);
- ``NO_QUORUM``: a checkpoint with fewer valid witness cosignatures than the policy requires.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from broker.audit.note import Checkpoint, NoteError, NoteSigner, SignedNote, Verifier, parse_note
from broker.audit.tree import MerkleLog

__all__ = [
    "Finding",
    "InclusionProof",
    "LogVerification",
    "Problem",
    "WitnessPolicy",
    "cosigners",
    "restore_problems",
    "restore_tree_problems",
    "sign_checkpoint",
    "verify_log",
    "verify_tree",
]


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Entry ``index`` is in the tree of ``tree_size`` whose root the cosigned ``checkpoint`` names."""

    index: int
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: str  # the cosigned checkpoint note (log signature and witness cosignatures)


class Finding(StrEnum):
    REORDERING = "REORDERING"
    REWRITE = "REWRITE"
    TRUNCATION = "TRUNCATION"
    FORK = "FORK"
    INCONSISTENT_CHECKPOINT = "INCONSISTENT_CHECKPOINT"
    UNWITNESSED_ENTRIES = "UNWITNESSED_ENTRIES"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    NO_QUORUM = "NO_QUORUM"


@dataclass(frozen=True, slots=True)
class Problem:
    finding: Finding
    size: int  # the tree size (or entry index) the finding is about
    detail: str

    def describe(self) -> str:
        return f"{self.finding.value} at {self.size}: {self.detail}"


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """Which witnesses count and how many of them must cosign a checkpoint."""

    witnesses: tuple[Verifier, ...]
    quorum: int

    def __post_init__(self) -> None:
        if not 1 <= self.quorum <= len(self.witnesses):
            count = len(self.witnesses)
            raise NoteError(f"witness quorum {self.quorum} must be between 1 and the {count} witness key(s)")


@dataclass(frozen=True, slots=True)
class LogVerification:
    problems: tuple[Problem, ...]
    entries: int
    cosigned_size: int  # the newest cosigned checkpoint that matches the entries (0 = none)

    @property
    def ok(self) -> bool:
        return not self.problems

    def findings(self) -> set[Finding]:
        return {p.finding for p in self.problems}


def sign_checkpoint(signer: NoteSigner, origin: str, size: int, root: bytes) -> SignedNote:
    text = Checkpoint(origin, size, root).text()
    return SignedNote(text, (signer.sign(text),))


def cosigners(note: SignedNote, policy: WitnessPolicy) -> list[str]:
    return [w.name for w in policy.witnesses if note.verified_by(w) is not None]


@dataclass(frozen=True, slots=True)
class _Signed:
    cp: Checkpoint
    cosigned: bool
    external: bool


def _signed(notes: Sequence[str], origin: str, log_key: Verifier, policy: WitnessPolicy, *, external: bool,
            problems: list[Problem]) -> list[_Signed]:  # fmt: skip
    out: list[_Signed] = []
    where = "held by a witness or reader" if external else "in the log"
    for raw in notes:
        try:
            note = parse_note(raw)
            cp = Checkpoint.parse(note.text)
        except NoteError as exc:
            problems.append(Problem(Finding.BAD_SIGNATURE, 0, f"unreadable checkpoint {where}: {exc}"))
            continue
        if cp.origin != origin:
            continue  # another log's checkpoint
        if note.verified_by(log_key) is None:
            detail = f"checkpoint of size {cp.size} {where} is not signed by the pinned log key {log_key.name}"
            problems.append(Problem(Finding.BAD_SIGNATURE, cp.size, detail))
            continue
        count = len(cosigners(note, policy))
        need = 1 if external else policy.quorum  # a witness's own answer carries its own cosignature
        if count < need:
            detail = f"checkpoint of size {cp.size} {where} has {count} witness cosignature(s), {need} required"
            problems.append(Problem(Finding.NO_QUORUM, cp.size, detail))
        out.append(_Signed(cp, count >= need, external))
    return out


def _entry_problems(indexes: Sequence[int]) -> list[Problem]:
    problems: list[Problem] = []
    if list(indexes) != sorted(indexes):
        first = next(i for i in range(1, len(indexes)) if indexes[i] < indexes[i - 1])
        detail = f"entry {indexes[first]} is stored after entry {indexes[first - 1]}"
        problems.append(Problem(Finding.REORDERING, indexes[first], detail))
    present = sorted(indexes)
    for k, index in enumerate(present):
        if index != k:
            detail = f"entry index {k} is {'repeated' if index < k else 'missing'} (found {index} in its place)"
            problems.append(Problem(Finding.REWRITE, k, detail))
            break
    return problems


def verify_log(
    origin: str,
    entries: Sequence[tuple[int, bytes]],
    notes: Sequence[str],
    log_key: Verifier,
    policy: WitnessPolicy,
    external: Sequence[str] = (),
) -> LogVerification:
    """Verify ``entries`` ((index, record bytes) in stored order) against the checkpoints.

    ``notes`` are the checkpoints stored with the log, in stored order; ``external`` are cosigned
    checkpoints obtained elsewhere (each witness's latest, or one a reader kept).
    """
    return verify_tree(origin, _tree_of(entries), _entry_problems([i for i, _ in entries]), notes, log_key, policy,
                       external)  # fmt: skip


def _tree_of(entries: Sequence[tuple[int, bytes]]) -> MerkleLog:
    tree = MerkleLog()
    for _, record in sorted(entries, key=lambda e: e[0]):
        tree.append(record)
    return tree


def verify_tree(
    origin: str,
    tree: MerkleLog,
    entry_problems: Sequence[Problem],
    notes: Sequence[str],
    log_key: Verifier,
    policy: WitnessPolicy,
    external: Sequence[str] = (),
) -> LogVerification:
    """:func:`verify_log` for a log whose tree is already built (in index order) and whose entries' indexes were
    already checked (``entry_problems``): a restore streams the entries into the tree, never all in memory."""
    problems = list(entry_problems)
    n = tree.size
    roots: dict[int, bytes] = {}

    def root(size: int) -> bytes:  # each checkpoint's size once (a tree on files reads its hashes from disk)
        found = roots.get(size)
        if found is None:
            found = roots[size] = tree.root(size)
        return found

    own = _signed(notes, origin, log_key, policy, external=False, problems=problems)
    held = _signed(external, origin, log_key, policy, external=True, problems=problems)

    def matches(cp: Checkpoint) -> bool:
        return cp.size <= n and root(cp.size) == cp.root

    problems.extend(_ordering_problems(own, matches))
    own_match = max((s.cp.size for s in own if matches(s.cp)), default=-1)
    cosigned_ok = 0
    for s in [*own, *held]:
        if not s.cosigned:
            continue
        cp = s.cp
        if cp.size > n:
            detail = f"a cosigned checkpoint covers {cp.size} entries but the log holds {n}"
            problems.append(Problem(Finding.TRUNCATION, n, detail))
        elif not matches(cp):
            if not s.external and own_match >= cp.size:
                pass  # an earlier checkpoint the later ones contradict: INCONSISTENT_CHECKPOINT above
            elif s.external and own_match >= cp.size:
                detail = f"the log key signed a different tree of size {cp.size} than the one this log shows"
                problems.append(Problem(Finding.FORK, cp.size, detail))
            else:
                detail = f"the entries do not hash to the cosigned root of size {cp.size}"
                problems.append(Problem(Finding.REWRITE, cp.size, detail))
        else:
            cosigned_ok = max(cosigned_ok, cp.size)
    if n > cosigned_ok:
        detail = f"entries {cosigned_ok}..{n - 1} are beyond the last cosigned checkpoint (size {cosigned_ok})"
        problems.append(Problem(Finding.UNWITNESSED_ENTRIES, cosigned_ok, detail))
    return LogVerification(tuple(_dedupe(problems)), n, cosigned_ok)


def _ordering_problems(own: Sequence[_Signed], matches: Callable[[Checkpoint], bool]) -> list[Problem]:
    """Each checkpoint in the log must extend every earlier one."""
    problems: list[Problem] = []
    seen: dict[int, bytes] = {}
    largest = 0
    for k, s in enumerate(own):
        later_match = any(t.cp.size >= s.cp.size and matches(t.cp) for t in own[k + 1 :])
        if later_match and not matches(s.cp):
            detail = f"checkpoint of size {s.cp.size} is not a prefix of a later checkpoint the entries match"
            problems.append(Problem(Finding.INCONSISTENT_CHECKPOINT, s.cp.size, detail))
        cp = s.cp
        if cp.size < largest:
            detail = f"checkpoint of size {cp.size} follows one of size {largest}: the log went back"
            problems.append(Problem(Finding.INCONSISTENT_CHECKPOINT, cp.size, detail))
        if seen.get(cp.size, cp.root) != cp.root:
            detail = f"two checkpoints of size {cp.size} with different roots"
            problems.append(Problem(Finding.INCONSISTENT_CHECKPOINT, cp.size, detail))
        seen[cp.size] = cp.root
        largest = max(largest, cp.size)
    return problems


def _dedupe(problems: list[Problem]) -> list[Problem]:
    out: dict[tuple[Finding, int], Problem] = {}
    for p in problems:
        out.setdefault((p.finding, p.size), p)
    return list(out.values())


def restore_problems(
    origin: str,
    entries: Sequence[tuple[int, bytes]],
    heads: Sequence[str],
    notes: Sequence[str],
    log_key: Verifier,
    policy: WitnessPolicy,
    external: Sequence[str] = (),
) -> list[Problem]:
    """What stops an appender from extending a stored log (empty: safe to continue).

    Everything :func:`verify_log` finds, except entries beyond the last cosigned checkpoint when a head
    signed by the log key covers exactly them: those are an appender's own writes that it had not yet
    had cosigned when it stopped (the successor gets them cosigned). A tail that no signed head
    covers was written by someone without the log key: a forgery (``REWRITE``).
    """
    tree = _tree_of(entries)
    problems = _entry_problems([i for i, _ in entries])
    return restore_tree_problems(origin, tree, problems, heads, notes, log_key, policy, external)


def restore_tree_problems(
    origin: str,
    tree: MerkleLog,
    entry_problems: Sequence[Problem],
    heads: Sequence[str],
    notes: Sequence[str],
    log_key: Verifier,
    policy: WitnessPolicy,
    external: Sequence[str] = (),
) -> list[Problem]:
    """:func:`restore_problems` for a log whose tree is already built (see :func:`verify_tree`)."""
    result = verify_tree(origin, tree, entry_problems, notes, log_key, policy, external)
    problems = [p for p in result.problems if p.finding is not Finding.UNWITNESSED_ENTRIES]
    if result.entries > result.cosigned_size:
        covered = 0
        for raw in heads:
            try:
                note = parse_note(raw)
                cp = Checkpoint.parse(note.text)
            except NoteError:
                continue
            if cp.size <= covered:
                continue  # no further than one already found (a restore reads one head per stored batch)
            if note.verified_by(log_key) is not None and cp.size <= tree.size and tree.root(cp.size) == cp.root:
                covered = max(covered, cp.size)
        if covered < result.entries:
            detail = (
                f"entries {covered}..{result.entries - 1} are covered by no checkpoint signed by the log key: "
                "written by someone else while no appender held the log"
            )
            problems.append(Problem(Finding.REWRITE, covered, detail))
    return problems
