"""Schema governance: FULL_TRANSITIVE evolution, docs, codes, and readability by Apache Avro."""

from __future__ import annotations

import io
import json
import random
from enum import Enum
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro.schema import expand_schema, to_parsing_canonical_form
from hypothesis import given, settings

from consent_wire import HEADER_BYTES, Event, SchemaVersion, codes, default_store, encode_event
from consent_wire._records import event_to_record

from .strategies import events

STORE = default_store()
PAIRS = [
    (writer, reader) for name in STORE.names() for writer in STORE.versions(name) for reader in STORE.versions(name)
]
PAYLOAD_NAMES = ["ConsentDecision", "Objection", "AccessRecord", "ShieldingFlag", "BreachReport", "KeyEvent"]
# The payload versions each Event version embeds (payloads not named: their current version).
EVENT_PAYLOAD_VERSIONS = {
    1: {"ConsentDecision": 1, "Objection": 1},
    2: {"ConsentDecision": 2, "Objection": 1},  # policy_ref
    3: {"ConsentDecision": 2, "Objection": 2},  # exempt_flows (issue 14, rule 5)
    4: {"ConsentDecision": 3, "Objection": 3},  # proxy (issue 14, proxies and children)
    5: {"ConsentDecision": 3, "Objection": 3},  # subject_deceased_ms on the envelope (issue 14, deceased)
}


def _random_datum(schema: Any, rng: random.Random, named: dict[str, Any]) -> Any:
    """A random datum for a (raw JSON) schema; named types are remembered as they are defined."""
    if isinstance(schema, str):
        primitive = {
            "null": lambda: None,
            "boolean": lambda: rng.random() < 0.5,
            "int": lambda: rng.randint(-(2**31), 2**31 - 1),
            "long": lambda: rng.randint(-(2**63), 2**63 - 1),
            "string": lambda: "".join(rng.choice("aé€𝄞Z0 ") for _ in range(rng.randint(0, 8))),
            "bytes": lambda: rng.randbytes(rng.randint(0, 8)),
        }
        if schema in primitive:
            return primitive[schema]()
        return _random_datum(named[schema.split(".")[-1]], rng, named)
    if isinstance(schema, list):
        return _random_datum(rng.choice(schema), rng, named)
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
    if kind == "record":
        return {f["name"]: _random_datum(f["type"], rng, named) for f in schema["fields"]}
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "fixed":
        return rng.randbytes(schema["size"])
    if kind == "array":
        return [_random_datum(schema["items"], rng, named) for _ in range(rng.randint(0, 3))]
    return _random_datum(kind, rng, named)


def _samples(sv: SchemaVersion, n: int = 40) -> list[bytes]:
    rng = random.Random(f"{sv.name}/{sv.version}")
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, sv.parsed, _random_datum(expand_schema(sv.raw), rng, {}))
        out.append(buf.getvalue())
    return out


@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=lambda sv: f"{sv.name}-v{sv.version}")
def test_every_version_reads_data_written_by_every_other_version(writer: SchemaVersion, reader: SchemaVersion) -> None:
    """FULL_TRANSITIVE: checked by Apache Avro's checker and by actually resolving sample data."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader.raw)), avro.schema.parse(json.dumps(writer.raw))
    )
    assert result.compatibility is SchemaCompatibilityType.compatible, result.messages
    for body in _samples(writer):
        written = fastavro.schemaless_reader(io.BytesIO(body), writer.parsed)
        resolved = fastavro.schemaless_reader(io.BytesIO(body), writer.parsed, reader.parsed)
        _assert_shared_fields_equal(written, resolved, _defaults(reader))


def _defaults(sv: SchemaVersion) -> dict[str, Any]:
    """Each defaulted field's default, by field name (names of added fields are unique across our schemas)."""
    return {f["name"]: f["default"] for node in _walk(sv.raw) for f in node.get("fields", ()) if "default" in f}


def _assert_shared_fields_equal(written: Any, resolved: Any, defaults: dict[str, Any]) -> None:
    """Fields both versions have carry the same values; added fields hold their defaults."""
    if isinstance(written, dict) and isinstance(resolved, dict):
        for key in written.keys() & resolved.keys():
            _assert_shared_fields_equal(written[key], resolved[key], defaults)
        assert {k: resolved[k] for k in resolved.keys() - written.keys()} == {
            k: defaults[k] for k in resolved.keys() - written.keys()
        }
    elif isinstance(written, list) and isinstance(resolved, list):
        assert len(written) == len(resolved)
        for w, r in zip(written, resolved, strict=True):
            _assert_shared_fields_equal(w, r, defaults)
    else:
        assert written == resolved


def test_at_least_one_schema_has_evolved_with_an_optional_defaulted_field() -> None:
    v1, v2, _ = STORE.versions("ConsentDecision")
    added = [f for f in v2.raw["fields"] if f["name"] not in {g["name"] for g in v1.raw["fields"]}]
    assert [(f["name"], f["type"], f["default"]) for f in added] == [("policy_ref", ["null", "string"], None)]


def test_objection_v2_adds_exempt_flows_defaulting_to_none() -> None:
    """Issue 14, rule 5: exemptions per data flow; old writers' objections read as naming no flow."""
    v1, v2, _ = STORE.versions("Objection")
    added = [f for f in v2.raw["fields"] if f["name"] not in {g["name"] for g in v1.raw["fields"]}]
    assert [(f["name"], f["type"], f["default"]) for f in added] == [
        ("exempt_flows", {"type": "array", "items": "string"}, [])
    ]


@pytest.mark.parametrize("name", ["ConsentDecision", "Objection"])
def test_v3_adds_only_an_optional_proxy_whose_enum_has_a_default(name: str) -> None:
    """Issue 14, proxies: the proxy's authority on the event; old writers' records read as by the person,
    and the authority enum has a reader default, so a later version can add a kind (FULL_TRANSITIVE)."""
    v2, v3 = STORE.versions(name)[1:]
    added = [f for f in v3.raw["fields"] if f["name"] not in {g["name"] for g in v2.raw["fields"]}]
    assert [(f["name"], f["default"]) for f in added] == [("proxy", None)]
    record = added[0]["type"][1]
    assert record["name"] == "ProxyAuthority"
    kind = record["fields"][0]["type"]
    assert kind["default"] == "UNRECOGNISED"
    assert kind["symbols"] == [m.value for m in codes.ProxyAuthorityKind]


def test_event_v5_adds_only_an_optional_deceased_status_on_the_envelope() -> None:
    """Issue 14: a death held in the state; old writers' events state nothing about it (null)."""
    v4, v5 = STORE.versions("Event")[3:5]
    added = [f for f in v5.raw["fields"] if f["name"] not in {g["name"] for g in v4.raw["fields"]}]
    assert [(f["name"], f["type"], f["default"]) for f in added] == [("subject_deceased_ms", ["null", "long"], None)]


def test_an_enum_symbol_added_with_a_reader_default_is_full_compatible_only_with_that_default() -> None:
    """Why HLEGAL, THREAT and HDECD are not wire purposes: PurposeOfUse v1 readers have no default, so a
    writer's new symbol cannot resolve for them (Apache Avro's checker says incompatible), whereas an enum
    born with a default (ProxyAuthorityKind) can grow."""

    def enum(symbols: list[str], default: str | None) -> avro.schema.Schema:
        e: dict[str, Any] = {"type": "enum", "name": "E", "symbols": symbols}
        if default is not None:
            e["default"] = default
        return avro.schema.parse(json.dumps({"type": "record", "name": "R", "fields": [{"name": "e", "type": e}]}))

    checker = ReaderWriterCompatibilityChecker()
    compatible = SchemaCompatibilityType.compatible
    old, new = ["TREAT", "ANY"], ["TREAT", "ANY", "HLEGAL"]
    no_default = checker.get_compatibility(enum(old, None), enum(new, None)).compatibility
    with_default = checker.get_compatibility(enum([*old, "X"], "X"), enum([*new, "X"], "X")).compatibility
    assert no_default is not compatible
    assert with_default is compatible


def _walk(schema: Any) -> Any:
    if isinstance(schema, list):
        for branch in schema:
            yield from _walk(branch)
    elif isinstance(schema, dict):
        yield schema
        if schema.get("type") == "record":
            for f in schema["fields"]:
                yield f
                yield from _walk(f["type"])
        elif schema.get("type") == "array":
            yield from _walk(schema["items"])


@pytest.mark.parametrize("sv", list(STORE), ids=lambda sv: f"{sv.name}-v{sv.version}")
def test_every_named_type_and_field_is_documented(sv: SchemaVersion) -> None:
    undocumented = [node.get("name") for node in _walk(sv.raw) if ("name" in node) and len(node.get("doc", "")) < 10]
    assert undocumented == []
    assert sv.raw["namespace"] == "uk.nhs.consent.v1"


@pytest.mark.parametrize("sv", list(STORE), ids=lambda sv: f"{sv.name}-v{sv.version}")
def test_avro_enums_have_exactly_the_symbols_of_the_code_enums(sv: SchemaVersion) -> None:
    for node in _walk(sv.raw):
        if node.get("type") == "enum":
            code_enum: type[Enum] = getattr(codes, node["name"])
            assert node["symbols"] == [m.value for m in code_enum]


@pytest.mark.parametrize("version", [sv.version for sv in STORE.versions("Event")])
def test_event_payload_branches_are_the_standalone_payload_schemas(version: int) -> None:
    event = expand_schema(STORE.get("Event", version).raw)
    branches = next(f["type"] for f in event["fields"] if f["name"] == "payload")
    assert [b["name"].split(".")[-1] for b in branches] == PAYLOAD_NAMES
    for branch in branches:
        name = branch["name"].split(".")[-1]
        # a key event inside an Event stays KeyEvent v1 (the key's authority, KeyEvent v2, travels only on
        # the keys topic, signed by the operator root)
        embedded = {**EVENT_PAYLOAD_VERSIONS[version], "KeyEvent": 1}.get(name)
        standalone = STORE.current(name) if embedded is None else STORE.get(name, embedded)
        assert to_parsing_canonical_form(fastavro.parse_schema(branch)) == standalone.canonical


@pytest.mark.parametrize("sv", list(STORE), ids=lambda sv: f"{sv.name}-v{sv.version}")
def test_fingerprint_matches_apache_avro(sv: SchemaVersion) -> None:
    assert avro.schema.parse(json.dumps(sv.raw)).fingerprint("CRC-64-AVRO") == sv.fingerprint


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    _name, payload = record["payload"]
    return {**record, "payload": payload}


@settings(max_examples=60)
@given(events)
def test_apache_avro_reads_our_event_bytes(event: Event) -> None:
    data = encode_event(event)
    writer = avro.schema.parse(json.dumps(STORE.current("Event").raw))
    decoded = avro.io.DatumReader(writer).read(avro.io.BinaryDecoder(io.BytesIO(data[HEADER_BYTES:])))
    assert decoded == _plain(event_to_record(event))


@pytest.mark.parametrize("version", [sv.version for sv in STORE.versions("Event")])
def test_each_payload_discriminator_field_belongs_to_exactly_one_payload_record(version: int) -> None:
    from consent_wire._records import PAYLOAD_DISCRIMINATORS

    event = expand_schema(STORE.get("Event", version).raw)
    branches = next(f["type"] for f in event["fields"] if f["name"] == "payload")
    fields = {b["name"]: {f["name"] for f in b["fields"]} for b in branches}
    assert sorted(name for _, name in PAYLOAD_DISCRIMINATORS) == sorted(fields)
    for field_name, record_name in PAYLOAD_DISCRIMINATORS:
        assert [name for name, names in fields.items() if field_name in names] == [record_name]
