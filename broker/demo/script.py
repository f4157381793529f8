"""The day's script: what each site records, when the care home is offline, what clinicians ask."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from broker.audit import parse_log
from broker.audit.tlog import WitnessPolicy, verify_log
from broker.demo.api import CoreApi
from broker.demo.background import PRACTICES, send_background
from broker.demo.narration import say
from broker.demo.people import CARE_HOME, GATEWAY, HOSPITAL, PATIENTS, care_worker, hospital
from broker.demo.stack import AgentHandle, StateFollower, wait_sent
from broker.demo.witness import DemoWitness
from broker.reports import (
    Report,
    breach_summary,
    disclosures,
    funnel_plot_png,
    objection_rates,
    write_report,
)
from consent_io.connection import KafkaConnection
from consent_io.kafka import KafkaTopicReader, read_to_end
from consent_wire.errors import WireError
from consent_wire.keys import OperatorRoot
from consent_wire.model import Event
from consent_wire.signing import decode_verified_event

__all__ = ["play"]

# The background region is ~2,800 signed events through the verifier: seconds on an idle laptop, but the
# demo also runs beside test suites on a shared 2-core machine, where a minute was seen to be too short.
EVENTS_WAIT_S = 150.0


def consent(directive: str, purpose: str, data_class: str = "ALL", recipient: str = "*") -> dict[str, Any]:
    return {
        "directive": directive, "purpose": purpose, "data_class": data_class, "recipient": recipient,
        "period_start_ms": None, "period_end_ms": None, "recorded_by_role": "GP",
    }  # fmt: skip


def objection(kind: str) -> dict[str, Any]:
    return {"kind": kind, "action": "REGISTER", "exemptions": []}


async def play(
    session: aiohttp.ClientSession,
    gp: AgentHandle,
    home: AgentHandle,
    gateway: AgentHandle,
    follower: StateFollower,
    api: CoreApi,
    out_dir: Path,
    kafka: KafkaConnection,
    root: OperatorRoot,
    witness: DemoWitness | None = None,
    *,
    site_pseudonymiser: Callable[[str], Callable[[str], str]],
) -> None:
    p = PATIENTS
    say("\n08:10  Riverside Surgery (GP, over Kafka) records the morning's decisions:")
    await gp.submit(session, "consent_decision", consent("OPTIN", "HRESCH"), p["alice"].nhs_number)
    say(f"       {p['alice'].alias}: explicit consent to research (OPTIN, HRESCH)")
    await gp.submit(session, "objection", objection("NDOP"), p["bob"].nhs_number)
    say(f"       {p['bob'].alias}: national data opt-out registered")
    await gp.submit(session, "objection", objection("TYPE1"), p["carol"].nhs_number)
    say(f"       {p['carol'].alias}: type 1 objection (no identifiable data out of the practice beyond care)")
    shield = {"action": "SET", "hides": ["LOCATION", "CONTACT"], "set_by_role": "SAFEGUARDING_LEAD",
              "reason": "CHILD_PROTECTION"}  # fmt: skip
    await gp.submit(session, "shielding_flag", shield, p["dan"].nhs_number)
    say(f"       {p['dan'].alias}: shielding set by the safeguarding lead (hide location and contact)")

    say("\n08:20  Remote-monitoring gateway (MQTT only) sends device-data consent and a disclosure:")
    await gateway.submit(session, "consent_decision", consent("OPTIN", "TREAT", "GENERAL"), p["frank"].nhs_number)
    disclosure = {
        "accessor_id": "device-gw-7", "organisation": GATEWAY, "role": "DEVICE_GATEWAY", "registered": False,
        "relationship": "LEGITIMATE", "purpose": "TREAT", "data_classes": ["GENERAL"], "legal_basis": None,
        "disclosed_to": HOSPITAL,
    }  # fmt: skip
    await gateway.submit(session, "access_record", disclosure, p["frank"].nhs_number)
    say(f"       {p['frank'].alias}: OPTIN for direct care of device readings; readings disclosed to {HOSPITAL}")

    say("\n09:00  Oakfield Care Home's line is DOWN; its agent keeps working offline:")
    await home.submit(session, "consent_decision", consent("OPTOUT", "ANY", "PSY"), p["eve"].nhs_number)
    breach = {
        "organisation": CARE_HOME, "severity": "LEVEL_1", "category": "DISCLOSED_IN_ERROR",
        "explanation": "Care plan emailed to the wrong GP practice", "remedial_action": "Recalled and deleted",
        "apology_given": True, "individuals_affected": 1,
    }  # fmt: skip
    await home.submit(session, "breach_report", breach, None)
    assert home.agent is not None
    say(f"       recorded {p['eve'].alias}'s opt-out of sharing mental-health data and an IG SIRI level 1 breach;")
    say(f"       both acknowledged and durable on disk: {home.agent.outbox.pending_count} event(s) waiting to send")

    now_ms = int(time.time() * 1000)
    await wait_sent(gp)
    await wait_sent(gateway)
    await follower.wait_for(5)
    say("\n09:05  GP and gateway events verified, reconciled and on the state topic (5 applied).")

    say("\n11:30  The care home reconnects; its outbox drains in order:")
    await home.stop()
    await home.start(kafka_bootstrap=kafka.bootstrap)
    await wait_sent(home)
    await follower.wait_for(6)
    say("       delivered; the state now has Eve's PSY opt-out (6 applied in all).")
    await _afternoon(session, home, follower, api, out_dir, kafka, root, now_ms, witness, site_pseudonymiser)


async def _afternoon(
    session: aiohttp.ClientSession,
    home: AgentHandle,
    follower: StateFollower,
    api: CoreApi,
    out_dir: Path,
    kafka: KafkaConnection,
    root: OperatorRoot,
    now_ms: int,
    witness: DemoWitness | None,
    site_pseudonymiser: Callable[[str], Callable[[str], str]],
) -> None:
    p = PATIENTS
    await _decisions(api)
    await _refusals(api)
    say("\n14:30  Oakfield asks its own replica (offline-capable) about Dan, shielded at the GP this morning:")
    await asyncio.sleep(1.0)  # the replica follows the state topic
    body = {"requester": care_worker(), "purpose": "TREAT", "nhs_number": p["dan"].nhs_number,
            "data_classes": ["GENERAL", "PATLOC"]}  # fmt: skip
    async with session.post(f"{home.url}/v1/decisions", json=body, headers=home.headers) as response:
        offline = await response.json()
    _show("Care-home worker via the care home's replica, Dan", offline)

    say(f"\n15:00  {p['dan'].alias} asks who has looked at his record (recommendation 1); the hospital's")
    say("       information-governance officer reads it (patient.read scope; the read itself is audited):")
    reader = {"accessor_id": "rx1-ig-officer-02", "role": "IG_OFFICER", "purpose": "HOPERAT"}
    _, accesses = await api.call("GET", f"/v1/patients/{p['dan'].nhs_number}/accesses", HOSPITAL, params=reader)
    for a in accesses.get("accesses", accesses if isinstance(accesses, list) else []):
        when = time.strftime("%H:%M:%S", time.localtime(a["at_ms"] / 1000)) if a.get("at_ms") else "?"
        say(f"       {when}  {a.get('organisation', '')}  {a.get('role', '')}  "
            f"{a.get('purpose', '')}  {a.get('outcome', '')}")  # fmt: skip

    if witness is not None:
        policy = WitnessPolicy((witness.key,), 1)
        for _ in range(40):  # the read just made is cosigned within a checkpoint round; wait for it, then verify
            stored = parse_log(r.value for r in await read_to_end(kafka, _topic(follower, "audit")) if r.value)
            entries = [(e.index, e.record) for e in stored.entries]
            check = verify_log(witness.log_key.name, entries, stored.notes, witness.log_key, policy)
            if check.cosigned_size >= check.entries:
                break
            await asyncio.sleep(0.25)
        outcome = (
            "verified against the pinned log key and the witness"
            if check.ok
            else "FINDINGS: " + ", ".join(sorted(f.value for f in check.findings()))
        )
        say(f"       audit trail: {check.entries} entries in the Merkle log, {check.cosigned_size} under the newest")
        say(f"       cosigned checkpoint, {outcome} (consent-broker audit verify checks the same)")

    say("\n17:00  Governance reports for the region:")
    background = await send_background(
        kafka, _topic(follower, "keys"), _topic(follower, "ingress"), root, now_ms, site_pseudonymiser
    )
    events = await _read_events(kafka, _topic(follower, "events"), background + 7)
    _reports(events, out_dir)


async def _decisions(api: CoreApi) -> None:
    p = PATIENTS
    say("\n14:00  Decisions asked of the core over HTTPS, each with its organisation's access token")
    say("       (the hospital's and the care home's registered OAuth clients; each is on the audit trail):")
    asks = [
        ("Hospital consultant, direct care, Carol (type 1 objector)", hospital(), "TREAT", "carol", ["GENERAL"], None),
        ("Hospital clerk with no care relationship, Alice", hospital("CLERK", "NONE", False), "TREAT", "alice",
         ["GENERAL"], None),
        ("Researcher with s251 approval, Bob (national opt-out)", hospital("RESEARCHER", "NONE"), "HRESCH", "bob",
         ["GENERAL"], "S251"),
        ("Researcher, Alice (explicit research consent)", hospital("RESEARCHER", "NONE"), "HRESCH", "alice",
         ["GENERAL"], None),
        ("Public-health team under statutory mandate, Bob", hospital("ANALYST", "NONE"), "PUBHLTH", "bob",
         ["GENERAL"], "STATUTORY_MANDATE"),
        ("Hospital paediatrician, direct care, Dan (shielded)", hospital("PAEDIATRICIAN"), "TREAT", "dan",
         ["GENERAL", "PATLOC", "CONTACT"], None),
        ("Care-home worker (unregistered, in the care team), Eve", care_worker(), "TREAT", "eve", ["GENERAL", "PSY"],
         None),
        ("A&E doctor, break-glass, Dan", hospital("ED_DOCTOR", "BREAK_GLASS"), "BTG", "dan", ["GENERAL"],
         "BREAK_GLASS"),
    ]  # fmt: skip
    for label, requester, purpose, who, classes, basis in asks:
        body = {"requester": requester, "purpose": purpose, "nhs_number": p[who].nhs_number,
                "data_classes": classes, "legal_basis": basis}  # fmt: skip
        if basis == "STATUTORY_MANDATE":  # a mandate names its instrument (docs/decision-rules.md, rule 4)
            body["evidence"] = {"instrument": "Health Protection (Notification) Regulations 2010, reg 2"}
        _, answer = await api.call("POST", "/v1/decisions", requester["organisation"], json=body)
        _show(label, answer)


async def _refusals(api: CoreApi) -> None:
    """What the API's door refuses: no token (401), and a credential asking as another organisation (403)."""
    p = PATIENTS
    say("\n14:10  The door holds: the same questions without the right credentials are refused, nothing recorded:")
    evil = {**hospital("ED_DOCTOR", "BREAK_GLASS"), "organisation": "EVIL"}
    body = {"requester": evil, "purpose": "BTG", "nhs_number": p["dan"].nhs_number,
            "data_classes": ["GENERAL", "PATLOC"], "legal_basis": "BREAK_GLASS"}  # fmt: skip
    status, answer = await api.call("POST", "/v1/decisions", None, json=body)
    _refused("Anyone on the network without an access token, break-glass, Dan", status, answer)
    status, answer = await api.call("POST", "/v1/decisions", HOSPITAL, json=body)
    _refused('The hospital\'s credential asking as organisation "EVIL", break-glass, Dan', status, answer)
    care_as_consultant = {**body, "requester": {**care_worker(), "role": "CONSULTANT"}, "purpose": "TREAT",
                          "legal_basis": None}  # fmt: skip
    status, answer = await api.call("POST", "/v1/decisions", CARE_HOME, json=care_as_consultant)
    _refused("The care home's credential asserting a role it is not registered for (CONSULTANT), Dan", status, answer)


def _refused(label: str, status: int, answer: dict[str, Any]) -> None:
    say(f"     - {label}: refused {status} {answer.get('reason', '?')}")
    say(f"         because {answer.get('message', '')}")


def _show(label: str, answer: dict[str, Any]) -> None:
    outcome = answer.get("outcome", answer.get("reason", "?"))
    tail = " (offline, as at replica time)" if answer.get("offline") else ""
    say(f"     - {label}: {outcome}{tail}")
    for reason in answer.get("reasons", [answer.get("message", "")])[:3]:
        say(f"         because {reason}")
    if answer.get("obligations"):
        say(f"         obligations: {', '.join(answer['obligations'])}")
    if answer.get("legal_basis"):
        say(f"         legal basis: {answer['legal_basis']}")


def _topic(f: StateFollower, name: str) -> str:
    return f.topic.removesuffix(".state") + "." + name


async def _read_events(kafka: KafkaConnection, topic: str, at_least: int) -> list[Event]:
    reader = KafkaTopicReader(kafka, topic)
    await reader.start()
    events: list[Event] = []
    try:
        deadline = asyncio.get_running_loop().time() + EVENTS_WAIT_S
        while len(events) < at_least and asyncio.get_running_loop().time() < deadline:
            for records in (await reader.fetch(timeout_ms=500)).values():
                for r in records:
                    try:
                        events.append(decode_verified_event(r.value or b"").event)
                    except WireError:
                        continue
    finally:
        await reader.stop()
    return events


def _reports(events: list[Event], out_dir: Path) -> None:
    sizes = {site: size for site, (size, _) in PRACTICES.items()}  # GP practices only: the denominator is a list
    objections = objection_rates(events, sizes)
    reports: dict[str, Report] = {
        "objections": objections,
        "breaches": breach_summary(events),
        "disclosures": disclosures(events),
    }
    for name, report in reports.items():
        say(write_report(out_dir, name, report))
    (out_dir / "objections-funnel.png").write_bytes(funnel_plot_png(objections))
    say(f"       wrote {', '.join(sorted(p.name for p in out_dir.iterdir()))}")
