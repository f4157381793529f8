"""Load generators: agents that build chained, signed batches of consent events as an edge agent does.

Like ``tests.factories.SimAgent`` but tuned for volume: a seeded RNG picks patients and directives,
event ids come from that RNG (no uuid4 system calls), and nothing is kept beyond the chain head.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from hashlib import sha256

from consent_wire.authority import grantable
from consent_wire.avro_codec import encode_event
from consent_wire.codes import ConsentDirective, DataClass, PurposeOfUse
from consent_wire.dsse import AgentSigner
from consent_wire.keys import OperatorRoot
from consent_wire.model import ConsentDecision, Event
from consent_wire.signing import sign_batch

__all__ = ["LoadAgent", "patient_keys"]

BASE_MS = 1_790_000_000_000  # a fixed instant (2026-09): reproducible runs
PURPOSES = (PurposeOfUse.TREAT, PurposeOfUse.HRESCH, PurposeOfUse.HOPERAT, PurposeOfUse.COC)
DIRECTIVES = tuple(ConsentDirective)


def patient_keys(count: int) -> list[str]:
    """Stand-in pseudonymous patient keys (32 hex characters), as the edge agent would derive."""
    return [sha256(f"patient-{n}".encode()).hexdigest()[:32] for n in range(count)]


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
        event = Event(event_id, self.agent_id, self.site, self.seq, self.last_hash, hlc, at_ms, patient_key, payload)
        data = encode_event(event)
        self.last_hash = sha256(data).digest()
        return data
