"""The subscriber contract (issue 17): a committed JSON Schema per topic, FULL_TRANSITIVE between every pair of
versions, and what the product writes on each topic validates against every committed version."""

from __future__ import annotations

from dataclasses import replace
from itertools import product
from typing import Any

import jsonschema
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import AuditLog, access_record, read_record
from broker.audit.lines import checkpoint_line, entry_line
from broker.deadletter import letter_headers
from broker.reports.aggregates import ReportsCore
from consent_rules.reconcile import shielding_record
from consent_rules.replica_feed import ReplicaKind, seal_replica_record
from consent_rules.state import replay
from consent_wire.codes import (
    BreachSeverity,
    ConsentDirective,
    DataClass,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
    Relationship,
)
from consent_wire.dsse import REPLICA_PAYLOAD_TYPE, AgentSigner, open_envelope
from consent_wire.model import AccessRecord, BreachReport, ConsentDecision, Objection, ProxyAuthority
from consent_wire.topic_schemas import TOPICS, latest, versions
from tests.factories import consent, objection, patient, plain_event, shielding

KEY = patient(1)


def _state() -> Any:
    events = [
        plain_event(KEY, consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH), 1 << 16),
        plain_event(
            KEY, ConsentDecision(ConsentDirective.OPTOUT, PurposeOfUse.TREAT, DataClass.PSY, "RX1", 1, 2, "GP"), 2 << 16
        ),
        plain_event(KEY, objection(ObjectionKind.TYPE1), 3 << 16),
        plain_event(KEY, shielding(), 4 << 16),
        # recorded on the person's behalf (issue 14): the state keeps the proxy's authority (state v2)
        plain_event(
            KEY,
            Objection(
                ObjectionKind.NDOP,
                ObjectionAction.REGISTER,
                proxy=ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, "7000-1234-5678"),
            ),
            6 << 16,
        ),
        # a death stated by the practice (issue 14): the state keeps the deceased register (state v3)
        replace(plain_event(KEY, objection(ObjectionKind.TYPE2), 7 << 16), subject_deceased_ms=7),
    ]
    return replay(KEY, events)


def _records() -> dict[str, list[dict[str, Any]]]:
    """Records exactly as the product writes them on each topic (decoded from their bytes)."""
    state = _state()
    log = AuditLog(checkpoint_every=2)
    view = AccessRecord("s-1", "A81001", "GP", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT, (DataClass.ALL,),
                        LegalBasis.IMPLIED_CONSENT_DIRECT_CARE, "")  # fmt: skip
    log.append(access_record(plain_event(KEY, view, 5 << 16)))
    log.append(read_record(at_ms=1, patient_key=KEY, accessor_id="a", organisation="RX1", role="GP",
                           purpose=PurposeOfUse.TREAT, what="CONSENT", client_id="rx1"))  # fmt: skip
    signer = Ed25519PrivateKey.generate()
    checkpoint = log.checkpoint(signer)
    audit = [entry_line(e, "0/5" if i == 0 else None) for i, e in enumerate(log.entries)]
    audit.append(checkpoint_line(checkpoint, signer.public_key()))
    core = AgentSigner.generate("core")
    assert state.shielding is not None
    sealed = seal_replica_record(core, ReplicaKind.STATE, KEY, state.to_bytes(), 7)
    letter = letter_headers(reason="BAD_SIGNATURE", message="m", source="t/0/1", stage="verifier", agent_id="a",
                            data=b"\xc3\x01junk")  # fmt: skip
    disclosed = AccessRecord("s-1", "A81001", "GP", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT,
                             (DataClass.ALL,), None, "RX9")  # fmt: skip
    breach = BreachReport("A81001", BreachSeverity.LEVEL_2, "LOST", "a letter", "retrained", True, 2)
    aggregates = ReportsCore().process(0, [
        plain_event(KEY, objection(ObjectionKind.TYPE1), 1 << 16),
        plain_event(KEY, disclosed, 2 << 16),
        plain_event("", breach, 3 << 16),
    ]).aggregates  # fmt: skip
    return {
        "reports": [orjson.loads(a.to_bytes()) for a in aggregates],
        "state": [orjson.loads(state.to_bytes())],
        "shielding": [orjson.loads(shielding_record(KEY, state.shielding))],
        "audit": [orjson.loads(line) for line in audit],
        "deadletter": [{k: v.decode() for k, v in letter}],
        "replica": [orjson.loads(open_envelope(sealed, REPLICA_PAYLOAD_TYPE, core.public_key).payload)],
    }


RECORDS = _records()


@pytest.mark.parametrize("topic", TOPICS)
def test_every_schema_is_a_valid_2020_12_schema(topic: str) -> None:
    for schema in versions(topic).values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("topic", TOPICS)
def test_what_the_product_writes_validates_against_every_committed_version(topic: str) -> None:
    assert RECORDS[topic]
    for schema, record in product(versions(topic).values(), RECORDS[topic]):
        jsonschema.Draft202012Validator(schema).validate(record)
    if topic == "audit":  # the hashed record inside each entry has its own definition
        defs = latest("audit")
        record_schema = {"$defs": defs["$defs"], "$ref": "#/$defs/record"}
        for line in RECORDS["audit"]:
            if line["type"] == "entry":
                jsonschema.Draft202012Validator(record_schema).validate(orjson.loads(line["record"]))


def test_the_validation_can_fail() -> None:
    bad = {**RECORDS["state"][0]}
    del bad["version"]
    assert list(jsonschema.Draft202012Validator(latest("state")).iter_errors(bad))


def incompatible(a: dict[str, Any], b: dict[str, Any], at: str = "$") -> list[str]:
    """FULL_TRANSITIVE between two JSON Schemas of an open content model: problems, empty when compatible.

    Both directions must read each other's records: the same required properties, the same type, enum and
    const of every shared property, no ``additionalProperties: false`` (a reader must ignore what is new),
    and the same for nested schemas ($defs, properties, items, anyOf branches in order).
    """
    problems: list[str] = []
    for schema in (a, b):
        if schema.get("additionalProperties") is False:
            problems.append(f"{at}: additionalProperties false: an older reader would refuse newer records")
    for key in ("type", "enum", "const", "$ref", "pattern"):
        if a.get(key) != b.get(key):
            problems.append(f"{at}: {key} changed from {a.get(key)!r} to {b.get(key)!r}")
    if set(a.get("required", ())) != set(b.get("required", ())):
        problems.append(
            f"{at}: required changed from {sorted(a.get('required', ()))} to {sorted(b.get('required', ()))}"
        )
    for group in ("properties", "$defs"):
        pa, pb = a.get(group, {}), b.get(group, {})
        for name in pa.keys() & pb.keys():
            problems += incompatible(pa[name], pb[name], f"{at}.{name}")
    if "items" in a or "items" in b:
        problems += incompatible(a.get("items", {}), b.get("items", {}), f"{at}[]")
    branches_a, branches_b = a.get("anyOf", []), b.get("anyOf", [])
    if len(branches_a) != len(branches_b):
        problems.append(f"{at}: anyOf branches changed")
    for i, (x, y) in enumerate(zip(branches_a, branches_b, strict=False)):
        problems += incompatible(x, y, f"{at}|{i}")
    return problems


@pytest.mark.parametrize("topic", TOPICS)
def test_every_pair_of_versions_is_full_transitive(topic: str) -> None:
    schemas = list(versions(topic).values())
    for older, newer in product(schemas, schemas):
        assert incompatible(older, newer) == []


def test_the_evolution_check_refuses_breaking_changes() -> None:
    v1 = latest("state")
    renamed = {**v1, "required": [*v1["required"][:-1], "shield"]}
    retyped = {**v1, "properties": {**v1["properties"], "version": {"type": "string"}}}
    closed = {**v1, "additionalProperties": False}
    added_optional = {**v1, "properties": {**v1["properties"], "new_field": {"type": "string"}}}
    assert incompatible(v1, renamed) and incompatible(v1, retyped) and incompatible(v1, closed)
    assert incompatible(v1, added_optional) == []  # a new optional property is the allowed change
