"""Operations metrics of the core beside the stage counters (broker/stage.py): what the alert rules in
deploy/prometheus/ and the dashboards in deploy/grafana/ need.

Aggregates only. Label values are codes (decision outcome, reason code, shielding action, breach
severity), practice ODS codes, stage names and certificate roles: never a patient key, NHS number,
staff id or free text (tests/unit/test_ops_metrics.py scans every exported label).

- ``consent_decisions_total{outcome}``, ``consent_break_glass_decisions_total{code}``: counted when the
  API records a decision (``BREAK_GLASS`` permitted, ``BREAK_GLASS_NOT_ENTITLED`` refused).
- ``consent_practice_objectors{practice}``, ``consent_practice_list_size{practice}``: the inputs of the
  objection-rate funnel (broker/reports/objections.py); the alert rule computes the same limits.
- ``consent_shielding_changes_total{action}``, ``consent_breach_reports_total{level}``: events seen by
  the API's event history.
- ``audit_checkpoint_age_seconds``, ``audit_unsigned_entries``: the audit appender's chain.
- ``consent_api_request_seconds{route,status}``: decision API latency by route template.
- ``consent_tls_certificate_not_after_seconds{role}``: each certificate the process presents.

The collectors read the live objects at scrape time; a process has one API (the appender owns the chain),
so the governance collector follows the API service attached last.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broker.audit import AuditRecord
from broker.audit.records import RecordKind
from broker.reports.objections import objection_rates
from consent_io.tls import certificate_not_after
from consent_rules.decision import Outcome
from consent_wire.codes import BreachSeverity, ShieldingAction
from consent_wire.model import BreachReport, Event, ShieldingFlag

__all__ = [
    "BREAK_GLASS_CODES",
    "CERTIFICATES",
    "GOVERNANCE",
    "CertificateCollector",
    "GovernanceCollector",
    "GovernanceSource",
    "api_timing",
    "count_decision",
]

log = logging.getLogger(__name__)

BREAK_GLASS_CODES = ("BREAK_GLASS", "BREAK_GLASS_NOT_ENTITLED")

DECISIONS = Counter("consent_decisions_total", "Sharing decisions answered by the API", ["outcome"])
BREAK_GLASS = Counter(
    "consent_break_glass_decisions_total", "Break-glass decisions (each is reviewed by a privacy officer)", ["code"]
)
API_SECONDS = Histogram(
    "consent_api_request_seconds",
    "Decision API requests by route template (never the path itself: it holds NHS numbers) and status",
    ["route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


@web.middleware
async def api_timing(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outermost API middleware: time every request, labelled by its route template and final status."""
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        status = exc.status
        raise
    else:
        status = response.status
        return response
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        API_SECONDS.labels(route, str(status)).observe(time.perf_counter() - started)


for _code in BREAK_GLASS_CODES:  # present at 0 from the start, so the first one is an increase an alert sees
    BREAK_GLASS.labels(_code)
for _outcome in Outcome:
    DECISIONS.labels(_outcome.value)


def count_decision(record: AuditRecord) -> None:
    """Count a decision record the API wrote to the audit chain (other record kinds are ignored)."""
    if record.kind is not RecordKind.DECISION:
        return
    DECISIONS.labels(record.outcome).inc()
    for code in BREAK_GLASS_CODES:
        if code in record.codes:
            BREAK_GLASS.labels(code).inc()
            break


class GovernanceSource(Protocol):
    """What the governance collector reads (implemented by :class:`broker.api.service.ApiService`)."""

    @property
    def list_sizes(self) -> Mapping[str, int]: ...

    def report_events_now(self) -> Sequence[Event]:
        """The events the reports count (consents, objections, shielding, breaches), read while the scrape waits."""
        ...

    def audit_status(self) -> tuple[float, int]:
        """(seconds since the last signed checkpoint, entries not yet covered by one)."""
        ...


class GovernanceCollector(Collector):
    def __init__(self) -> None:
        self._source: GovernanceSource | None = None
        self._seen = 0  # events of the source already counted
        self._shielding: Tally[str] = _zeros(ShieldingAction)
        self._breaches: Tally[str] = _zeros(BreachSeverity)

    def attach(self, source: GovernanceSource) -> None:
        self._source = source
        self._seen = 0
        self._shielding = _zeros(ShieldingAction)
        self._breaches = _zeros(BreachSeverity)

    def detach(self, source: GovernanceSource) -> None:
        if self._source is source:
            self._source = None

    def collect(self) -> Iterator[Metric]:
        source = self._source
        if source is None:
            return
        events = source.report_events_now()
        for event in events[self._seen :]:
            if isinstance(event.payload, ShieldingFlag):
                self._shielding[event.payload.action.value] += 1
            elif isinstance(event.payload, BreachReport):
                self._breaches[event.payload.severity.value] += 1
        self._seen = len(events)
        yield _labelled(
            CounterMetricFamily,
            "consent_shielding_changes",
            "Shielding flags set or cleared",
            "action",
            self._shielding,
        )
        yield _labelled(
            CounterMetricFamily, "consent_breach_reports", "Breach reports by SIRI level", "level", self._breaches
        )
        yield from _objection_inputs(source, events)
        age, unsigned = source.audit_status()
        yield GaugeMetricFamily("audit_checkpoint_age_seconds", "Seconds since the last signed audit checkpoint", age)
        yield GaugeMetricFamily("audit_unsigned_entries", "Audit entries not yet covered by a checkpoint", unsigned)


def _zeros(codes: type[ShieldingAction] | type[BreachSeverity]) -> Tally[str]:
    """Every code at 0, so each series exists before its first event (an alert sees the first increase)."""
    return Tally(dict.fromkeys((c.value for c in codes), 0))


def _objection_inputs(source: GovernanceSource, events: Sequence[Event]) -> Iterator[Metric]:
    objectors = GaugeMetricFamily(
        "consent_practice_objectors", "Patients with an active objection", labels=["practice"]
    )
    sizes = GaugeMetricFamily(
        "consent_practice_list_size", "Registered patients (list_sizes_file)", labels=["practice"]
    )
    if source.list_sizes:
        try:
            report = objection_rates(events, source.list_sizes)
        except ValueError as exc:  # ReportInputError: a practice missing from list_sizes; the report says which
            log.warning("objection-rate metrics skipped error=%s", exc)
        else:
            for row in report.rows:
                objectors.add_metric([row.practice], row.objectors)
                sizes.add_metric([row.practice], row.list_size)
    yield objectors
    yield sizes


def _labelled(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    doc: str,
    label: str,
    values: Mapping[str, int],
) -> Metric:
    family = kind(name, doc, labels=[label])
    for value, n in sorted(values.items()):
        family.add_metric([value], n)
    return family


class CertificateCollector(Collector):
    """``notAfter`` of each certificate file registered with :meth:`watch`, read at scrape time."""

    def __init__(self, prefix: str = "consent") -> None:
        self._name = f"{prefix}_tls_certificate_not_after_seconds"
        self._files: dict[str, Path] = {}

    def watch(self, files: Mapping[str, str]) -> None:
        """``role -> PEM path``; empty paths are ignored."""
        self._files.update({role: Path(path) for role, path in files.items() if path})

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self._name, "Certificate notAfter (Unix seconds)", labels=["role"])
        for role, path in sorted(self._files.items()):
            try:
                family.add_metric([role], certificate_not_after(path))
            except (OSError, ValueError) as exc:
                log.warning("certificate unreadable role=%s path=%s error=%s", role, path, exc)
        yield family


GOVERNANCE = GovernanceCollector()
CERTIFICATES = CertificateCollector()
REGISTRY.register(GOVERNANCE)
REGISTRY.register(CERTIFICATES)
