"""The API on the real broker: agents' consents, objections and shielding drive decisions over HTTP,
every decision and access lands in the audit topic, and the topic verifies clean."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from broker.api import ApiService
from broker.audit.keyfile import load_signer
from broker.audit.note import ALG_ED25519
from broker.auth import ASSERTION_TYPE, make_client_assertion
from broker.auth.client import TokenSource, client_tls
from broker.infra.local import ApiClientSpec, LocalDeployment
from broker.runtime import Core
from consent_wire.codes import (
    BreachSeverity,
    ConsentDirective,
    DataClass,
    LegalBasis,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
)
from consent_wire.identity import patient_key
from consent_wire.model import AccessRecord, BreachReport
from tests.factories import BASE_MS, SimAgent, consent, national_key, objection, shielding
from tests.integration.api.conftest import cli
from tests.integration.audit.conftest import start_witness
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration

OPTED_OUT, SHIELDED, CONSENTED = "9434765919", "9434765927", "9434765935"  # valid NHS numbers (modulus 11)


def requester(**change: Any) -> dict[str, Any]:
    base = {"organisation": "RX1", "role": "CONSULTANT", "registered": True, "relationship": "LEGITIMATE",
            "care_team": True, "accessor_id": "staff-7"}  # fmt: skip
    return {**base, **change}


def _shares(accesses: dict[str, Any]) -> list[dict[str, Any]]:
    """Accesses and decisions (the API's own reads of the record are listed too, as READ)."""
    return [a for a in accesses["accesses"] if a["kind"] != "READ"]


def researcher() -> dict[str, Any]:
    return requester(organisation="RESLAB1", role="RESEARCHER", relationship="NONE", care_team=False)


async def until(probe: Callable[[], Any], check: Callable[[Any], bool], timeout_s: float = 60) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await probe()
        if check(value):
            return value
        assert loop.time() < deadline, f"timed out; last value {value!r}"
        await asyncio.sleep(0.3)


CLIENTS = (
    ApiClientSpec("rx1-ehr", "RX1", ("CONSULTANT",), ("decisions", "patient.read", "reports")),
    ApiClientSpec("reslab", "RESLAB1", ("RESEARCHER",), ("decisions", "patient.read")),
)
READER = "accessor_id=staff-7&role=CONSULTANT&purpose=TREAT"  # who reads, for the audit trail


class Api:
    """The core's API over HTTPS, one OAuth client per organisation (tokens by private_key_jwt)."""

    def __init__(self, session: aiohttp.ClientSession, core: Core, door: Door) -> None:
        service = core.services["api"]
        assert isinstance(service, ApiService)
        self.base = door.deployment.api_url(service.port)
        self.session = session
        self.tls = client_tls(door.deployment.ca_file)
        self.tokens = {
            spec.organisation: TokenSource(
                door.deployment.api_credentials(spec.client_id, door.keys[spec.client_id], service.port)
            )
            for spec in CLIENTS
        }

    async def _auth(self, organisation: str) -> dict[str, str]:
        return await self.tokens[organisation].headers(self.session, self.tls)

    async def health(self) -> Any:
        async with self.session.get(self.base + "/v1/health", ssl=self.tls) as resp:
            return await resp.json()

    async def get(self, path: str) -> Any:
        sep = "&" if "?" in path else "?"
        url = f"{self.base}{path}{sep}{READER}" if path.startswith("/v1/patients") else self.base + path
        async with self.session.get(url, ssl=self.tls, headers=await self._auth("RX1")) as resp:
            return await resp.json(content_type=None)  # application/json, or application/fhir+json under /fhir

    async def decide(self, nhs: str, who: dict[str, Any], purpose: str, classes: list[str], **extra: Any) -> Any:
        body = {"requester": who, "purpose": purpose, "nhs_number": nhs, "data_classes": classes, **extra}
        headers = await self._auth(who["organisation"])
        async with self.session.post(self.base + "/v1/decisions", json=body, ssl=self.tls, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def refused(self, nhs: str, who: dict[str, Any], as_organisation: str) -> Any:
        body = {"requester": who, "purpose": "TREAT", "nhs_number": nhs, "data_classes": ["GENERAL"]}
        headers = await self._auth(as_organisation)
        async with self.session.post(self.base + "/v1/decisions", json=body, ssl=self.tls, headers=headers) as resp:
            return resp.status, await resp.json()


async def send_site_events(harness: Harness, gp: SimAgent, secret: bytes) -> None:
    key = {nhs: national_key(nhs) for nhs in (OPTED_OUT, SHIELDED, CONSENTED)}  # SimAgent sends its site's
    assert all(k == patient_key(secret, nhs) for nhs, k in key.items())
    view = AccessRecord("staff-99", "B82002", "NURSE", True, Relationship.LEGITIMATE, PurposeOfUse.TREAT,
                        (DataClass.GENERAL,), None, "")  # fmt: skip
    disclosure = AccessRecord("staff-98", "A81001", "GP", True, Relationship.NONE, PurposeOfUse.HRESCH,
                              (DataClass.GENERAL,), LegalBasis.CONSENT, "RESLAB1")  # fmt: skip
    breach = BreachReport("A81001", BreachSeverity.LEVEL_1, "DISCLOSED_IN_ERROR", "fax misdirected", "retrained",
                          True, 1)  # fmt: skip
    events = [
        gp.event(key[OPTED_OUT], objection(ObjectionKind.NDOP), BASE_MS),
        gp.event(key[SHIELDED], shielding(), BASE_MS + 1),
        gp.event(key[CONSENTED], consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH), BASE_MS + 2),
        gp.event(key[CONSENTED], disclosure, BASE_MS + 4),
        gp.event("", breach, BASE_MS + 5),
    ]
    await harness.send(gp, [gp.batch(events)])
    # a site records access only for its own organisation (its key's registered site): B82002's own agent
    nurse_site = SimAgent.create(site="B82002")
    await harness.register(nurse_site)
    await harness.send(nurse_site, [nurse_site.batch([nurse_site.event(key[OPTED_OUT], view, BASE_MS + 3)])])


@dataclass(frozen=True)
class Door:
    deployment: LocalDeployment
    settings: dict[str, object]
    keys: dict[str, Path]


async def test_decisions_over_http_follow_the_agents_events_and_are_audited(
    harness: Harness, secret_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSENT_AUDIT_CHECKPOINT_EVERY", "3")
    secret = bytes.fromhex(await asyncio.to_thread(secret_file.read_text))
    gp = SimAgent.create(site="A81001")
    await harness.register(gp)
    door = Door(harness.deployment, *harness.deployment.api_door(tmp_path / "door", CLIENTS))
    origin = f"{harness.app_id}/{harness.topics.prefix}.audit"
    log_key = load_signer(str(door.settings["audit_key_file"]), origin, ALG_ED25519, "audit key").verifier
    witness, witness_key = await start_witness(harness.deployment, tmp_path, "witness-api", {origin: log_key})
    witness_url = f"https://127.0.0.1:{witness.port}"
    settings = {
        "stages": "verifier,reconciler,reports,api",
        "pseudonym_secret_file": str(secret_file),
        "http_port": 0,
        **door.settings,
        "insecure_unwitnessed_audit": False,
        "audit_witnesses": f"{witness_url} {witness_key.verifier.vkey()}",
    }
    core = await harness.start_core(**settings)
    await send_site_events(harness, gp, secret)
    async with aiohttp.ClientSession() as session:
        api = Api(session, core, door)
        await until(api.health, lambda h: h["status"] == "ok")
        status, body = await api.refused(OPTED_OUT, requester(organisation="EVIL"), as_organisation="RX1")
        assert (status, body["reason"]) == (403, "AUTH_ORGANISATION")  # authority comes from the credential
        for nhs in (OPTED_OUT, SHIELDED, CONSENTED):
            await until(lambda n=nhs: api.get(f"/v1/patients/{n}/consent"), lambda s: s["version"] == 1)  # type: ignore[misc]

        denied = await api.decide(OPTED_OUT, researcher(), "HRESCH", ["GENERAL"], legal_basis="S251")
        assert (denied["outcome"], denied["legal_basis"]) == ("DENY", None)
        assert "NDOP_ACTIVE" in denied["codes"]
        care = await api.decide(OPTED_OUT, requester(), "TREAT", ["GENERAL"])
        assert (care["outcome"], care["legal_basis"]) == ("PERMIT", "IMPLIED_CONSENT_DIRECT_CARE")
        shielded = await api.decide(SHIELDED, requester(), "TREAT", ["GENERAL", "PATLOC"])
        assert shielded["outcome"] == "PERMIT_WITH_OBLIGATIONS"
        assert {"REDACT_LOCATION", "REDACT_CONTACT"} <= set(shielded["obligations"])
        assert (shielded["permitted"], shielded["withheld"]) == (["GENERAL"], ["PATLOC"])
        research = await api.decide(CONSENTED, researcher(), "HRESCH", ["GENERAL"])
        assert (research["outcome"], research["legal_basis"]) == ("PERMIT_WITH_OBLIGATIONS", "CONSENT")
        assert research["obligations"] == ["MINIMUM_DATA_SET"]
        past = await api.decide(CONSENTED, researcher(), "HRESCH", ["GENERAL"], as_at=BASE_MS - 1)
        assert (past["outcome"], past["state_version"], past["audit_index"]) == ("DENY", 0, None)

        accesses = await until(lambda: api.get(f"/v1/patients/{OPTED_OUT}/accesses"), lambda a: len(_shares(a)) == 3)
        seen = [(a["kind"], a["organisation"], a["outcome"]) for a in _shares(accesses)]
        assert seen == [("ACCESS", "B82002", "VIEWED"), ("DECISION", "RESLAB1", "DENY"), ("DECISION", "RX1", "PERMIT")]
        reads = [a for a in accesses["accesses"] if a["kind"] == "READ"]
        assert reads and {(r["organisation"], r["accessor_id"]) for r in reads} == {("RX1", "staff-7")}
        fhir = await api.get(f"/v1/patients/{OPTED_OUT}/consent?format=fhir")
        assert fhir["total"] == 1
        search = await api.get(f"/fhir/Consent?patient={OPTED_OUT}&{READER}")
        assert (search["total"], search["link"][0]["relation"], search["entry"][0]["search"]) == (
            1,
            "self",
            {"mode": "match"},
        )
        consent_id = search["entry"][0]["resource"]["id"]
        assert (await api.get(f"/fhir/Consent/{consent_id}?{READER}"))["id"] == consent_id
        refused = await api.get(f"/fhir/AuditEvent?patient={OPTED_OUT}&{READER}")  # RX1 has no audit.read scope
        assert refused["resourceType"] == "OperationOutcome"
        assert refused["issue"][0]["details"]["coding"][0]["code"] == "AUTH_SCOPE"
        disclosed = await until(lambda: api.get("/v1/reports/disclosures"), lambda r: bool(r["rows"]))
        assert [(r["discloser"], r["recipient"], r["purpose"]) for r in disclosed["rows"]] == [
            ("A81001", "RESLAB1", "HRESCH")
        ]
        next_index = (await api.health())["audit_next_index"]
    await core.stop()
    harness.cores.remove(core)

    # a restarted API restores the chain and does not append the access records a second time
    core = await harness.start_core(**{**settings, "stages": "api"})
    async with aiohttp.ClientSession() as session:
        api = Api(session, core, door)
        await until(api.health, lambda h: h["status"] == "ok")
        accesses = await api.get(f"/v1/patients/{OPTED_OUT}/accesses")
        assert [a["kind"] for a in _shares(accesses)] == ["ACCESS", "DECISION", "DECISION"]
        again = await api.decide(SHIELDED, requester(), "TREAT", ["GENERAL"])
        # answered once its audit request was durable (the default audit_answer_after = "request"); the holder
        # appends it behind the answer, after every entry of the log before the restart, once
        assert again["audit_index"] is None and set(again["audit_request"]) == {"partition", "offset"}
        shielded_log = await until(
            lambda: api.get(f"/v1/patients/{SHIELDED}/accesses"),
            lambda a: any(e["kind"] == "DECISION" and e["index"] >= next_index for e in a["accesses"]),
        )
        decisions = [e["index"] for e in shielded_log["accesses"] if e["kind"] == "DECISION"]
        assert len(decisions) == 2 and min(decisions) < next_index <= max(decisions)  # the one before, this one
        appended = (await api.health())["audit_next_index"]
    await core.stop()
    harness.cores.remove(core)

    operator = harness.deployment.infra.config.pki_dir / "operator"
    prefix = ["--bootstrap", harness.bootstrap, "--prefix", harness.topics.prefix, "--tls-dir", str(operator)]
    keys = ["--log-key", log_key.vkey(), "--witness-key", witness_key.verifier.vkey(), "--witness-url", witness_url]
    verified = await cli("audit", "verify", *prefix, *keys)
    await witness.stop()
    assert verified.code == 0, verified.out + verified.err
    # every entry verifies, the ones appended after the restart included (reads are audited through requests too,
    # so their number depends on the polls above; nothing doubled is checked by the kinds listed above)
    entries = int(verified.out.split()[1])
    assert verified.out.startswith("OK: ") and entries >= max(appended, next_index + 2)

    sizes = tmp_path / "list_sizes.csv"
    sizes.write_text("practice,list_size\nA81001,100\nB82002,100\n")
    out = tmp_path / "reports"
    objections = await cli("reports", "objections", *prefix, "--out", str(out), "--list-sizes", str(sizes))
    assert objections.code == 0, objections.err
    assert "A81001" in objections.out
    assert (out / "objections.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "objections.csv").read_text().splitlines()[1].startswith("A81001,100,1,")
    for name in ("breaches", "disclosures"):
        result = await cli("reports", name, *prefix, "--out", str(out))
        assert result.code == 0, result.err
    assert (out / "breaches.csv").read_text().splitlines()[1] == "A81001,0,1,0,1,1,1"
    assert "RESLAB1" in (out / "disclosures.csv").read_text()


async def test_the_running_api_refuses_every_bad_credential_and_writes_nothing(
    harness: Harness, secret_file: Path, tmp_path: Path
) -> None:
    """Issue 11 acceptance on the real stack: each refused with its reason code, nothing recorded."""
    door = Door(harness.deployment, *harness.deployment.api_door(tmp_path / "door", CLIENTS))
    settings = {"stages": "api", "pseudonym_secret_file": str(secret_file), "http_port": 0, **door.settings}
    core = await harness.start_core(**settings)
    async with aiohttp.ClientSession() as session:
        api = Api(session, core, door)
        await until(api.health, lambda h: h["status"] == "ok")
        before = (await api.health())["audit_next_index"]
        token_url = api.tokens["RX1"].credentials.token_url
        key = api.tokens["RX1"].credentials.private_key()
        now = int(time.time())
        other_key = ec.generate_private_key(ec.SECP256R1())

        async def token(assertion: str) -> tuple[int, str]:
            form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
            form["client_assertion"] = assertion
            async with session.post(token_url, data=form, ssl=api.tls) as resp:
                return resp.status, str((await resp.json()).get("reason", ""))

        claims = {"iss": "rx1-ehr", "sub": "rx1-ehr", "aud": token_url, "exp": now + 60, "jti": "x"}
        assert await token(make_client_assertion("rx1-ehr", key, token_url, now - 3600)) == (401, "AUTH_INVALID_CLIENT")
        assert await token(jwt.encode(claims, None, algorithm="none")) == (401, "AUTH_INVALID_CLIENT")  # type: ignore[arg-type]
        assert await token(make_client_assertion("rx1-ehr", key, "https://elsewhere/token", now)) == (
            401,
            "AUTH_INVALID_CLIENT",
        )
        assert await token(make_client_assertion("rx1-ehr", other_key, token_url, now)) == (401, "AUTH_INVALID_CLIENT")
        replayed = make_client_assertion("rx1-ehr", key, token_url, now)
        assert (await token(replayed))[0] == 200
        assert await token(replayed) == (401, "AUTH_REPLAYED")

        body = {"requester": requester(), "purpose": "TREAT", "nhs_number": OPTED_OUT, "data_classes": ["GENERAL"]}
        async with session.post(api.base + "/v1/decisions", json=body, ssl=api.tls) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (401, "AUTH_MISSING")
        narrow = TokenSource(api.tokens["RESLAB1"].credentials)  # the research lab has no patient.read on reads
        research = await narrow.headers(session, api.tls)
        read = f"{api.base}/v1/patients/{OPTED_OUT}/accesses?accessor_id=r-1&role=RESEARCHER&purpose=HRESCH"
        async with session.get(read, ssl=api.tls, headers=research) as resp:
            assert resp.status == 200  # it has patient.read: the read itself is allowed and audited
        reports = f"{api.base}/v1/reports/disclosures"
        async with session.get(reports, ssl=api.tls, headers=research) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (403, "AUTH_SCOPE")
        decisions_only = await TokenSource(api.tokens["RX1"].credentials, scope="decisions").headers(session, api.tls)
        consent_read = f"{api.base}/v1/patients/{OPTED_OUT}/consent?{READER}"
        async with session.get(consent_read, ssl=api.tls, headers=decisions_only) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (403, "AUTH_SCOPE")  # no patient.read
        future = {**body, "as_at": int(time.time() * 1000) + 86_400_000}
        headers = await api._auth("RX1")
        async with session.post(api.base + "/v1/decisions", json=future, ssl=api.tls, headers=headers) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (400, "AS_AT_IN_FUTURE")
        after = (await api.health())["audit_next_index"]
    await core.stop()
    harness.cores.remove(core)
    assert after == before + 1  # only the permitted read was recorded
