"""Operations metrics (broker/ops_metrics.py, edge_agent/metrics.py): the values alert rules read, and no
patient identifier in any label name or value of anything the core or the agent exports."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.core import CollectorRegistry

import broker.runtime  # noqa: F401 - registers every core metric (stages, bridge, mirror, keys)
from broker.audit import AuditRecord
from broker.audit.records import RecordKind
from broker.infra.pki import Pki
from broker.ops_metrics import GOVERNANCE, CertificateCollector, count_decision
from consent_io.tls import certificate_not_after
from consent_wire.codes import (
    BreachSeverity,
    DataClass,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    ShieldingAction,
)
from consent_wire.model import BreachReport, Event
from tests.factories import objection, patient, plain_event, shielding

NHS_NUMBER = "9434765919"
# label names a series may carry: codes, stage and partition, practice ODS codes, certificate roles
ALLOWED_LABELS = {
    *("outcome", "code", "stage", "topic", "reason", "partition", "practice", "action", "level", "role", "le"),
    *("route", "status", "kind"),  # kind: a changelog restore's kind (full, local, kept)
    *("quantile", "version", "implementation", "major", "minor", "patchlevel", "generation"),  # client defaults
}


class FakeApi:
    def __init__(self, events: Sequence[Event], list_sizes: Mapping[str, int]) -> None:
        self._events = list(events)
        self.list_sizes = list_sizes

    def report_events_now(self) -> Sequence[Event]:
        return self._events

    def audit_status(self) -> tuple[float, int]:
        return 42.0, 3


def _breach() -> BreachReport:
    return BreachReport("A81001", BreachSeverity.LEVEL_2, "DISCLOSED_IN_ERROR", "letter sent to wrong address",
                        "recalled", True, 1)  # fmt: skip


def _events() -> list[Event]:
    events = [plain_event(patient(n), objection(ObjectionKind.NDOP), n + 1, site="A81001") for n in range(30)]
    events += [plain_event(patient(100 + n), objection(), 200 + n, site="B81002") for n in range(2)]
    events.append(plain_event(patient(7), objection(ObjectionKind.NDOP, ObjectionAction.WITHDRAW), 500, site="A81001"))
    events.append(plain_event(patient(8), shielding(ShieldingAction.SET), 600))
    events.append(plain_event("", _breach(), 700))
    return events


def _decision(codes: tuple[str, ...], outcome: str = "PERMIT") -> AuditRecord:
    return AuditRecord(RecordKind.DECISION, 1, patient(1), "staff-1", "A81001", "CONSULTANT", PurposeOfUse.TREAT,
                       (DataClass.GENERAL,), outcome, None, codes)  # fmt: skip


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples}


def test_governance_metrics_carry_the_funnel_inputs_and_event_counts() -> None:
    api = FakeApi(_events(), {"A81001": 1000, "B81002": 100})
    GOVERNANCE.attach(api)
    try:
        samples = _samples(REGISTRY)
    finally:
        GOVERNANCE.detach(api)
    assert samples[("consent_practice_objectors", (("practice", "A81001"),))] == 29  # 30 registered, 1 withdrew
    assert samples[("consent_practice_objectors", (("practice", "B81002"),))] == 2
    assert samples[("consent_practice_list_size", (("practice", "B81002"),))] == 100
    assert samples[("consent_shielding_changes_total", (("action", "SET"),))] == 1
    assert samples[("consent_shielding_changes_total", (("action", "CLEAR"),))] == 0  # present before the first
    assert samples[("consent_breach_reports_total", (("level", "LEVEL_2"),))] == 1
    assert samples[("audit_checkpoint_age_seconds", ())] == 42.0
    assert samples[("audit_unsigned_entries", ())] == 3


def test_break_glass_decisions_are_counted_by_code_from_zero() -> None:
    before = _samples(REGISTRY)
    key = ("consent_break_glass_decisions_total", (("code", "BREAK_GLASS"),))
    assert key in before  # exported at 0 before the first one
    count_decision(_decision(("BREAK_GLASS", "DIRECT_CARE")))
    count_decision(_decision(("CONSENT",)))
    after = _samples(REGISTRY)
    assert after[key] == before[key] + 1
    refused = ("consent_break_glass_decisions_total", (("code", "BREAK_GLASS_NOT_ENTITLED"),))
    assert after[refused] == before[refused]
    permit = ("consent_decisions_total", (("outcome", "PERMIT"),))
    assert after[permit] == before[permit] + 2


def test_certificate_expiry_is_exported_per_role(tmp_path: Path) -> None:
    files = Pki(tmp_path / "pki").issue("core.api")
    collector = CertificateCollector()
    collector.watch({"core.api": str(files.cert_file), "missing": str(tmp_path / "nope.pem"), "unset": ""})
    registry = CollectorRegistry()
    registry.register(collector)
    samples = _samples(registry)
    assert samples == {
        ("consent_tls_certificate_not_after_seconds", (("role", "core.api"),)): certificate_not_after(files.cert_file)
    }


def test_no_patient_identifier_in_any_label() -> None:
    """Everything the core's registry exports, with patient data flowing through it, has only allowed label names
    and no label value that is a patient key, a pseudonym-shaped hex string or an NHS number."""
    events = _events()
    api = FakeApi(events, {"A81001": 1000, "B81002": 100})
    GOVERNANCE.attach(api)
    try:
        count_decision(_decision(("BREAK_GLASS",)))
        samples = _samples(REGISTRY)
    finally:
        GOVERNANCE.detach(api)
    keys = {e.patient_key for e in events if e.patient_key}
    # a pseudonym-shaped hex run, or ten digits standing alone (an NHS number); the tests' topic prefixes
    # ("t3143705153.events", from earlier tests in the same run) are names, not identifiers
    hexish = re.compile(r"[0-9a-f]{16,}|(?<![0-9A-Za-z])\d{10}(?!\d)")
    for (name, labels), _ in samples.items():
        for label, value in labels:
            assert label in ALLOWED_LABELS, (name, label)
            assert value not in keys and value != NHS_NUMBER, (name, label)
            assert not hexish.search(value), (name, label, value)
