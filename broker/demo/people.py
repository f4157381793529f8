"""The demo's cast: sites, patients (valid *test* NHS numbers, 999 range) and staff. No real person."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.infra.local import ApiClientSpec

__all__ = [
    "API_CLIENTS",
    "CARE_HOME",
    "GATEWAY",
    "GP",
    "HOSPITAL",
    "PATIENTS",
    "Patient",
    "care_worker",
    "hospital",
    "test_nhs_number",
]

GP = "A81001"  # Riverside Surgery (GP practice, Kafka)
CARE_HOME = "VM4Q7"  # Oakfield Care Home (Kafka; goes offline mid-morning)
GATEWAY = "RX1RM"  # remote-monitoring hub of the local trust (biometric gateway, MQTT only)
HOSPITAL = "RX1"  # the acute trust whose clinicians ask for decisions

# One OAuth client of the core's API per organisation that asks, with exactly the roles its staff assert
# (the core refuses any other organisation or role: 403). IG_OFFICER answers patients' access-log requests.
API_CLIENTS = (
    ApiClientSpec(
        "rx1-clinical-portal",
        HOSPITAL,
        ("CONSULTANT", "CLERK", "RESEARCHER", "ANALYST", "PAEDIATRICIAN", "ED_DOCTOR", "IG_OFFICER"),
        ("decisions", "patient.read"),
    ),
    ApiClientSpec("vm4q7-care-records", CARE_HOME, ("CARE_WORKER",), ("decisions",)),
)


def test_nhs_number(n: int) -> str:
    """The n-th valid number in NHS England's 999 test range (modulus 11 check digit)."""
    base = 999_000_000 + n
    while True:
        digits = [int(c) for c in f"{base:09d}"]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            return f"{base:09d}{check}"
        base += 1


@dataclass(frozen=True, slots=True)
class Patient:
    alias: str  # shown in the demo output instead of any identifier
    nhs_number: str


PATIENTS = {
    "alice": Patient("Alice (consents to research)", test_nhs_number(11)),
    "bob": Patient("Bob (national data opt-out)", test_nhs_number(22)),
    "carol": Patient("Carol (GP type 1 objection)", test_nhs_number(33)),
    "dan": Patient("Dan, 9 (shielded child)", test_nhs_number(44)),
    "eve": Patient("Eve (care-home resident)", test_nhs_number(55)),
    "frank": Patient("Frank (remote monitoring)", test_nhs_number(66)),
}


def hospital(role: str = "CONSULTANT", relationship: str = "LEGITIMATE", registered: bool = True) -> dict[str, Any]:
    """The requester block of a decision request from one of the hospital's clinicians."""
    return {
        "organisation": HOSPITAL,
        "role": role,
        "registered": registered,
        "relationship": relationship,
        "care_team": relationship == "LEGITIMATE",
        "accessor_id": f"rx1-{role.lower().replace('_', '-')}-01",  # the person asking, for the audit trail
    }


def care_worker() -> dict[str, Any]:
    """An unregistered care-home worker in the resident's care team."""
    return {
        "organisation": CARE_HOME,
        "role": "CARE_WORKER",
        "registered": False,
        "relationship": "LEGITIMATE",
        "care_team": True,
        "accessor_id": "vm4q7-care-worker-04",
    }
