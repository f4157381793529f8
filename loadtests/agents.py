"""Load generators: agents that build chained, signed batches of consent events as an edge agent does.

Like ``tests.factories.SimAgent`` but tuned for volume: a seeded RNG picks patients and directives,
event ids come from that RNG (no uuid4 system calls), and nothing is kept beyond the chain head.

Pseudonyms (issue 12 item 11): every bench core holds :data:`BENCH_NATIONAL_SECRET` (the bench stacks'
``LocalDeployment``); patients are named by their national pseudonym (what the core's state is keyed
by) and an agent keys its events by its site's pseudonym of the person (:func:`site_key`), which the
core's verifier translates back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from hashlib import sha256

from consent_wire.authority import grantable
from consent_wire.avro_codec import encode_event
from consent_wire.codes import ConsentDirective, DataClass, PurposeOfUse
from consent_wire.dsse import AgentSigner
from consent_wire.identity import Pseudonymiser
from consent_wire.keys import OperatorRoot
from consent_wire.model import ConsentDecision, Event
from consent_wire.signing import sign_batch
from consent_wire.site_pseudonyms import CorePseudonyms

__all__ = [
    "BENCH_NATIONAL_SECRET",
    "BENCH_PSEUDONYMS",
    "LoadAgent",
    "bench_nhs",
    "national_key",
    "patient_keys",
    "site_key",
]

BENCH_NATIONAL_SECRET = bytes(range(7, 39))  # bench-only national pseudonym secret (32 bytes)
BENCH_PSEUDONYMS = CorePseudonyms(BENCH_NATIONAL_SECRET)
_NATIONAL = Pseudonymiser(BENCH_NATIONAL_SECRET)
_NHS_OF: dict[str, str] = {}  # national key -> NHS number, for the keys national_key() made

BASE_MS = 1_790_000_000_000  # a fixed instant (2026-09): reproducible runs
PURPOSES = (PurposeOfUse.TREAT, PurposeOfUse.HRESCH, PurposeOfUse.HOPERAT, PurposeOfUse.COC)
DIRECTIVES = tuple(ConsentDirective)


def bench_nhs(n: int) -> str:
    """A distinct valid NHS number for each ``n`` (0 <= n < 10**8): the first valid one of n's block of ten."""
    for candidate in range(10 * n, 10 * n + 10):
        digits = f"{candidate:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check != 10:  # modulus 11: a check digit of 10 makes the number invalid
            return f"{digits}{0 if check == 11 else check}"
    raise AssertionError("ten consecutive numbers always hold a valid one")


def national_key(nhs: str) -> str:
    """The national pseudonym of ``nhs`` under :data:`BENCH_NATIONAL_SECRET` (remembered for :func:`site_key`)."""
    key = _NATIONAL(nhs)
    _NHS_OF[key] = nhs
    return key


def site_key(site: str, national: str) -> str:
    """``site``'s pseudonym of the person :func:`national_key` named ``national`` (other keys as given)."""
    nhs = _NHS_OF.get(national)
    return national if nhs is None else BENCH_PSEUDONYMS.for_site(site, nhs)


def patient_keys(count: int) -> list[str]:
    """National pseudonyms of ``count`` bench patients (each agent sends its site's pseudonym of them)."""
    return [national_key(bench_nhs(n)) for n in range(count)]


@dataclass
class LoadAgent:
    """One agent's chain head: gap-free seq, previous-event hash and a monotonic HLC."""

    agent_id: str
    site: str
    signer: AgentSigner
    rng: random.Random
    seq: int = 0
    last_hash: bytes = bytes(32)
    last_hlc: int = 0

    @classmethod
    def create(cls, index: int, seed: int = 1) -> LoadAgent:
        agent_id = f"load-agent-{index:03d}"
        return cls(agent_id, f"A8{index:04d}", AgentSigner.generate(agent_id), random.Random(seed * 1000 + index))

    def register(self, root: OperatorRoot) -> bytes:
        return root.register(
            self.agent_id, self.signer.public_key_bytes, 0, site=self.site, capabilities=grantable(self.site)
        )

    def batch(self, patients: list[str], size: int, at_ms: int) -> bytes:
        """The next ``size`` events of the chain, each for a random patient, signed as one batch."""
        return sign_batch(self.signer, [self._event(self.rng.choice(patients), at_ms + i) for i in range(size)])

    def _event(self, patient_key: str, at_ms: int) -> bytes:
        self.seq += 1
        hlc = max(at_ms << 16, self.last_hlc + 1)
        self.last_hlc = hlc
        payload = ConsentDecision(
            self.rng.choice(DIRECTIVES), self.rng.choice(PURPOSES), DataClass.ALL, "*", None, None, "GP"
        )
        event_id = f"{self.rng.getrandbits(128):032x}"
        key = site_key(self.site, patient_key)
        event = Event(event_id, self.agent_id, self.site, self.seq, self.last_hash, hlc, at_ms, key, payload)
        data = encode_event(event)
        self.last_hash = sha256(data).digest()
        return data
