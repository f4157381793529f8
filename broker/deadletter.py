"""Dead-letter records: what a stage writes when it refuses an input, bounded whatever the input was.

A dead letter must never be the record that wedges a partition: if it could exceed the producer's
``max_request_size`` (:data:`consent_io.kafka.MAX_REQUEST_BYTES`), the transaction that carries it would
abort and the same input would be re-driven for ever. So:

- the value is the input unchanged when it is at most :data:`WHOLE_MAX_BYTES` (the largest valid
  signed batch, so a refused batch can be re-driven as it was), otherwise its first
  :data:`EXCERPT_BYTES` only (header ``value: excerpt``);
- every dead letter carries the SHA-256 and the size of the whole input (headers ``sha256``, ``size``);
- the message, the agent id and the key are cut to a few hundred bytes (an agent id inside a
  hostile batch can be 600 KB long): no header repeats unbounded input.

Headers: ``reason``, ``message``, ``source`` (topic/partition/offset), ``stage``, ``agent``, ``sha256``,
``size``, ``value`` (``whole`` or ``excerpt``). Pure: no I/O.
"""

from __future__ import annotations

from hashlib import sha256

from consent_wire.signing import MAX_BATCH_BYTES

__all__ = [
    "EXCERPT_BYTES",
    "HEADER_BUDGET_BYTES",
    "MAX_AGENT_BYTES",
    "MAX_MESSAGE_BYTES",
    "WHOLE_MAX_BYTES",
    "bounded",
    "letter_headers",
    "letter_key",
    "letter_value",
]

WHOLE_MAX_BYTES = MAX_BATCH_BYTES  # an input up to the largest valid batch is kept whole (re-drivable)
EXCERPT_BYTES = 4096  # enough to see the record's header (magic, fingerprint, agent id) in a dump
MAX_MESSAGE_BYTES = 1024  # our messages are one sentence; only repeated input makes them longer
MAX_AGENT_BYTES = 128  # agent ids are at most 64 characters (edge_agent.config); twice that in UTF-8 slack
MAX_SOURCE_BYTES = 300  # a Kafka topic name is at most 249 characters, plus /partition/offset
# Upper bound on a dead letter's headers and key together (names, values and the fields above):
# WHOLE_MAX_BYTES + HEADER_BUDGET_BYTES + Kafka's record overhead stays under MAX_REQUEST_BYTES.
HEADER_BUDGET_BYTES = 2048


def bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, marked with the length it had when cut."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    note = f"... [cut, {len(raw)} bytes]"
    return raw[: max(0, limit - len(note))].decode("utf-8", "ignore") + note


def letter_value(data: bytes, whole_max: int = WHOLE_MAX_BYTES) -> bytes:
    """The input whole if it is at most ``whole_max`` bytes, else its first EXCERPT_BYTES."""
    return data if len(data) <= whole_max else data[:EXCERPT_BYTES]


def letter_key(agent_id: str) -> bytes | None:
    """The dead letter's key (partitioning by agent), bounded; None when no agent is known."""
    return bounded(agent_id, MAX_AGENT_BYTES).encode("utf-8") if agent_id else None


def letter_headers(
    *, reason: str, message: str, source: str, stage: str, agent_id: str, data: bytes, whole_max: int = WHOLE_MAX_BYTES
) -> tuple[tuple[str, bytes], ...]:
    """Every header of a dead letter, each bounded (see the module docstring); ``whole_max`` as for the value."""
    return (
        ("reason", bounded(reason, 64).encode()),
        ("message", bounded(message, MAX_MESSAGE_BYTES).encode()),
        ("source", bounded(source, MAX_SOURCE_BYTES).encode()),
        ("stage", bounded(stage, 32).encode()),
        ("agent", bounded(agent_id, MAX_AGENT_BYTES).encode()),
        ("sha256", sha256(data).hexdigest().encode()),
        ("size", str(len(data)).encode()),
        ("value", b"whole" if len(data) <= whole_max else b"excerpt"),
    )
