"""Per-agent hash chain check (pure state machine).

Each agent numbers its events 1, 2, 3, ... without gaps and puts the SHA-256
of its previous event's encoded bytes in ``prev_hash``. The verifier keeps one
:class:`AgentChain` per agent and calls :meth:`AgentChain.check` with each
event in arrival order:

- ``seq == next``: ``prev_hash`` must equal the last accepted hash, else
  :class:`ChainBreakError`; on success the chain advances.
- ``seq < next``: the same bytes again is a :class:`ReplayError` (benign
  redelivery, drop it); different bytes is a :class:`SequenceRegressionError`
  (the agent forked or rewound its history: alert).
- ``seq > next``: :class:`SequenceGapError` (retriable): the caller holds the
  event until the gap is filled or a timeout dead-letters it (GAP_TIMEOUT).

``event_hash`` is SHA-256 of the encoded event bytes
(:attr:`consent_wire.signing.VerifiedEvent.event_hash`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from consent_wire.errors import ChainBreakError, ReplayError, SequenceGapError, SequenceRegressionError
from consent_wire.model import Event

__all__ = ["GENESIS_HASH", "REPLAY_WINDOW", "AgentChain", "ChainState", "ChainStatus"]

GENESIS_HASH = bytes(32)  # prev_hash of seq 1 (model.Event: 32 zero bytes)
# Hashes remembered per agent to tell a replay from a regression: four of the
# largest batch an agent sends (1000 events), so a redelivered batch is recognised.
REPLAY_WINDOW = 4096


class ChainStatus(StrEnum):
    OK = "OK"


@dataclass(frozen=True, slots=True)
class ChainState:
    """What survives a restart: the next expected seq and the last accepted hash."""

    agent_id: str
    next_seq: int = 1
    last_hash: bytes = GENESIS_HASH


class AgentChain:
    def __init__(self, state: ChainState) -> None:
        self._agent_id = state.agent_id
        self._next_seq = state.next_seq
        self._last_hash = state.last_hash
        self._recent: OrderedDict[int, bytes] = OrderedDict()
        if state.next_seq > 1:
            self._recent[state.next_seq - 1] = state.last_hash

    @classmethod
    def new(cls, agent_id: str) -> AgentChain:
        return cls(ChainState(agent_id))

    @property
    def state(self) -> ChainState:
        return ChainState(self._agent_id, self._next_seq, self._last_hash)

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def check(self, event: Event, event_hash: bytes) -> ChainStatus:
        """Accept the next event of this agent's chain or raise a SequenceError."""
        seq = event.seq
        if seq == self._next_seq:
            if event.prev_hash != self._last_hash:
                raise ChainBreakError(
                    f"agent {self._agent_id!r} seq {seq}: prev_hash {event.prev_hash.hex()[:16]} does not "
                    f"match the hash of seq {seq - 1} ({self._last_hash.hex()[:16]})"
                )
            self._advance(seq, event_hash)
            return ChainStatus.OK
        if seq > self._next_seq:
            raise SequenceGapError(
                f"agent {self._agent_id!r} seq {seq} arrived while {self._next_seq} is expected; hold it"
            )
        return self._behind(seq, event_hash)

    def _behind(self, seq: int, event_hash: bytes) -> ChainStatus:
        seen = self._recent.get(seq)
        if seen == event_hash:
            raise ReplayError(f"agent {self._agent_id!r} seq {seq} was already accepted with the same hash")
        if seen is None:
            raise SequenceRegressionError(
                f"agent {self._agent_id!r} seq {seq} is below the high-water mark {self._next_seq - 1} "
                f"and older than the {REPLAY_WINDOW}-event replay window"
            )
        raise SequenceRegressionError(
            f"agent {self._agent_id!r} seq {seq} was already accepted with a different hash (history rewritten)"
        )

    def _advance(self, seq: int, event_hash: bytes) -> None:
        self._recent[seq] = event_hash
        if len(self._recent) > REPLAY_WINDOW:
            self._recent.popitem(last=False)
        self._next_seq = seq + 1
        self._last_hash = event_hash
