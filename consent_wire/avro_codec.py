"""Avro single-object encoding of events and other wire records.

Frame (Avro specification, "Single-object encoding")::

    0xC3 0x01 | CRC-64-AVRO fingerprint of the writer schema (8 bytes, little-endian) | Avro binary body

Reading is hardened for hostile input: the size limit is checked before any
decoding; the body is read from an in-memory buffer, so a length prefix can
never make the reader allocate more than the bytes actually present (fastavro
checks every short read and raises ``EOFError``); every library exception is
wrapped into one typed :class:`~consent_wire.errors.DecodeError`; trailing
bytes after the record are rejected. The writer schema is found by fingerprint
among every committed version and resolved to the current (reader) version.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from consent_wire._records import event_to_record, record_to_event
from consent_wire.errors import (
    BadMagicError,
    BadUtf8Error,
    DecodeError,
    OutOfRangeError,
    OversizeError,
    SchemaMismatchError,
    TruncatedError,
    UnknownSchemaError,
    ValidationError,
)
from consent_wire.model import Event
from consent_wire.schemas import SchemaStore, SchemaVersion, default_store

__all__ = [
    "HEADER_BYTES",
    "MAGIC",
    "MAX_EVENT_BYTES",
    "decode",
    "decode_event",
    "encode",
    "encode_event",
    "fingerprint_of",
    "leading_bytes_field",
    "leading_fields",
    "leading_strings",
]

MAGIC = b"\xc3\x01"  # Avro specification, single-object encoding marker (format version 1)
HEADER_BYTES = 10  # 2 magic + 8 fingerprint
# The largest legitimate event is a breach report with a few paragraphs of explanation
# (~4 KiB); 64 KiB leaves 16x headroom yet stays far below Kafka's default 1 MiB
# message.max.bytes, so a batch of typical events always fits one Kafka record.
MAX_EVENT_BYTES = 64 * 1024

# Everything fastavro (C or pure-Python reader) was seen to raise on malformed bodies.
_DECODE_FAILURES = (
    EOFError,
    ValueError,
    IndexError,
    KeyError,
    TypeError,
    OverflowError,
    MemoryError,
    RecursionError,
    StopIteration,
    struct.error,
    AttributeError,
)


def fingerprint_of(data: bytes) -> bytes:
    """The 8-byte writer fingerprint of a single-object encoded record (header checked)."""
    _check_header(data, len(data) + 1)
    return data[2:HEADER_BYTES]


def encode(
    name: str,
    record: dict[str, Any],
    *,
    version: int | None = None,
    store: SchemaStore | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> bytes:
    """Encode ``record`` (fastavro's dict form) with schema ``name`` (current version by default)."""
    store = store or default_store()
    sv = store.current(name) if version is None else store.get(name, version)
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(sv.fingerprint)
    try:
        fastavro.schemaless_writer(buf, sv.parsed, record)
    except OverflowError as exc:  # an int beyond an Avro long (-2**63..2**63-1)
        raise OutOfRangeError(
            f"cannot encode a {name} v{sv.version} record: an integer is out of range ({exc})"
        ) from exc
    except (ValueError, TypeError, KeyError, AttributeError, struct.error) as exc:
        raise ValidationError(f"cannot encode a {name} v{sv.version} record: {exc}") from exc
    data = buf.getvalue()
    if len(data) > max_bytes:
        raise OversizeError(f"encoded {name} is {len(data)} bytes, over the {max_bytes}-byte limit")
    return data


def decode(
    name: str,
    data: bytes,
    *,
    store: SchemaStore | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> dict[str, Any]:
    """Decode a single-object encoded ``name`` record, resolved to the current version."""
    store = store or default_store()
    writer = _writer_for(data, name, store, max_bytes)
    reader = store.current(name)
    return _read_body(data, writer, reader)


def encode_event(event: Event, *, version: int | None = None, store: SchemaStore | None = None) -> bytes:
    """Single-object encoding of ``event`` with the current Event schema (or ``version``)."""
    return encode("Event", event_to_record(event), version=version, store=store)


def decode_event(data: bytes, *, store: SchemaStore | None = None) -> Event:
    """Decode and validate one event; raises a :class:`DecodeError` subclass on any bad input."""
    record = decode("Event", data, store=store)
    try:
        return record_to_event(record)
    except (KeyError, TypeError, ValueError) as exc:  # only reachable with a foreign reader schema
        raise SchemaMismatchError(f"decoded Event does not fit the event model: {exc!r}") from exc


def leading_bytes_field(name: str, data: bytes, *, max_bytes: int = MAX_EVENT_BYTES) -> bytes:
    """The first field of a ``name`` record whose first field is ``bytes``, without decoding the rest.

    For hot paths that need one nested payload (the event inside a VerifiedEvent) and trust the
    producer of the rest; the header, fingerprint and length are still checked.
    """
    return leading_fields(name, data, max_bytes=max_bytes)[0]


def leading_fields(name: str, data: bytes, *, max_bytes: int = MAX_EVENT_BYTES) -> tuple[bytes, str]:
    """The first field (``bytes``) of a ``name`` record and its second when that is the string ``patient_key``.

    ``""`` for the second when the writer's version has no such field (a VerifiedEvent v1: the default).
    """
    writer = _writer_for(data, name, default_store(), max_bytes)
    fields = writer.parsed["fields"]
    if fields[0]["type"] != "bytes":
        raise SchemaMismatchError(f"{name} v{writer.version} does not start with a bytes field")
    first, pos = _length_prefixed(name, data, HEADER_BYTES, "first")
    if len(fields) < 2 or fields[1]["name"] != "patient_key" or fields[1]["type"] != "string":
        return bytes(first), ""
    second, _ = _length_prefixed(name, data, pos, "second")
    try:
        return bytes(first), bytes(second).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadUtf8Error(f"{name} patient_key is not valid UTF-8 at byte {exc.start}") from exc


def leading_strings(name: str, data: bytes, count: int, *, max_bytes: int = MAX_EVENT_BYTES) -> tuple[str, ...]:
    """The first ``count`` fields of a ``name`` record whose first ``count`` fields are strings, without the rest.

    For a cheap look at a header (a SignedBatch's agent and key-id hint) before the whole record is decoded;
    the header, fingerprint, lengths and UTF-8 are checked, nothing else.
    """
    writer = _writer_for(data, name, default_store(), max_bytes)
    fields = writer.parsed["fields"]
    if len(fields) < count or any(f["type"] != "string" for f in fields[:count]):
        raise SchemaMismatchError(f"{name} v{writer.version} does not start with {count} string fields")
    values: list[str] = []
    pos = HEADER_BYTES
    for index in range(count):
        raw, pos = _length_prefixed(name, data, pos, f"string {index + 1}")
        try:
            values.append(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadUtf8Error(f"{name} field {fields[index]['name']} is not valid UTF-8 at byte {exc.start}") from exc
    return tuple(values)


def _length_prefixed(name: str, data: bytes, pos: int, which: str) -> tuple[bytes, int]:
    """The bytes/string value at ``pos`` (an Avro zig-zag varint length, at most 10 bytes) and the next position."""
    length, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise TruncatedError(f"{name} record ends inside its {which} field's length")
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    length = (length >> 1) ^ -(length & 1)
    if length < 0 or pos + length > len(data):
        raise TruncatedError(f"{name} {which} field claims {length} bytes, {len(data) - pos} remain")
    return data[pos : pos + length], pos + length


def _check_header(data: bytes, max_bytes: int) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise OversizeError(f"{len(data)} bytes is over the {max_bytes}-byte limit; refused before decoding")
    if len(data) < HEADER_BYTES:
        raise TruncatedError(f"{len(data)} bytes is shorter than the {HEADER_BYTES}-byte single-object header")
    if data[:2] != MAGIC:
        raise BadMagicError(f"first two bytes are {bytes(data[:2]).hex()}, expected c301 (Avro single-object)")


def _writer_for(data: bytes, name: str, store: SchemaStore, max_bytes: int) -> SchemaVersion:
    _check_header(data, max_bytes)
    fingerprint = bytes(data[2:HEADER_BYTES])
    writer = store.by_fingerprint(fingerprint)
    if writer is None:
        raise UnknownSchemaError(
            f"writer schema fingerprint {fingerprint.hex()} is not a committed schema; "
            "upgrade the reader or check the sender"
        )
    if writer.name != name:
        raise SchemaMismatchError(f"expected a {name} record, got a {writer.name} v{writer.version} record")
    return writer


def _read_body(data: bytes, writer: SchemaVersion, reader: SchemaVersion) -> dict[str, Any]:
    buf = io.BytesIO(data)
    buf.seek(HEADER_BYTES)
    reader_schema = None if reader is writer else reader.parsed
    try:
        record = fastavro.schemaless_reader(buf, writer.parsed, reader_schema)
    except UnicodeDecodeError as exc:
        raise BadUtf8Error(f"{writer.name} string field is not valid UTF-8 at byte {exc.start}") from exc
    except EOFError as exc:
        raise TruncatedError(f"{writer.name} body ends early ({len(data)} bytes in all)") from exc
    except SchemaResolutionError as exc:
        raise SchemaMismatchError(
            f"{writer.name} v{writer.version} cannot be resolved to v{reader.version}: {exc}"
        ) from exc
    except _DECODE_FAILURES as exc:
        raise SchemaMismatchError(f"{writer.name} body does not match its schema: {type(exc).__name__}") from exc
    if buf.tell() != len(data):
        raise SchemaMismatchError(f"{len(data) - buf.tell()} trailing bytes after the {writer.name} record")
    if not isinstance(record, dict):
        raise SchemaMismatchError(f"{writer.name} body did not decode to a record")
    return record
