"""Prometheus metrics of the agent, read from the live components at scrape time.

Names follow ``<component>_<what>_<unit>``: edge_outbox_pending_events, edge_outbox_full
(alarm gauge, 1 = refusing new events at the disk cap), edge_submissions_total{outcome},
edge_published_total, edge_publish_failures_total, edge_quarantined_total,
edge_replica_updates_total, edge_acks_refused_total{reason} (MQTT acks refused, nothing deleted),
edge_tls_certificate_not_after_seconds{role} (expiry of the certificates the agent uses).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consent_io.tls import certificate_not_after
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher
from edge_agent.replica import Replica

__all__ = ["EdgeCollector", "SubmissionCounts", "make_registry"]

log = logging.getLogger(__name__)


@dataclass
class SubmissionCounts:
    """Submissions by outcome: ``accepted`` or the rejection's reason code."""

    by_outcome: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str, n: int = 1) -> None:
        self.by_outcome[outcome] += n


class EdgeCollector(Collector):
    def __init__(
        self,
        outbox: Outbox,
        counts: SubmissionCounts,
        publisher: Publisher | None,
        replica: Replica | None,
        *,
        refused_acks: Mapping[str, int] | None = None,
        certificates: Mapping[str, Path | None] | None = None,
    ) -> None:
        self._certificates = {role: path for role, path in (certificates or {}).items() if path is not None}
        self._refused_acks = refused_acks  # live: the MQTT transport's counts by reason
        self._outbox = outbox
        self._counts = counts
        self._publisher = publisher
        self._replica = replica

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "edge_outbox_pending_events", "Events durably queued, awaiting end-to-end ack", self._outbox.pending_count
        )
        yield GaugeMetricFamily(
            "edge_outbox_full", "1 while the outbox refuses events at its disk cap", int(self._outbox.full)
        )
        subs = CounterMetricFamily("edge_submissions", "Submissions by outcome", labels=["outcome"])
        for outcome, n in sorted(self._counts.by_outcome.items()):
            subs.add_metric([outcome], n)
        yield subs
        yield CounterMetricFamily(
            "edge_quarantined", "Corrupt outbox rows moved to quarantine", self._outbox.quarantined_count
        )
        if self._publisher is not None:
            yield CounterMetricFamily(
                "edge_published", "Events acknowledged end to end", self._publisher.published_total
            )
            yield CounterMetricFamily(
                "edge_publish_failures", "Failed publish attempts (retried)", self._publisher.failures_total
            )
        if self._replica is not None:
            yield CounterMetricFamily("edge_replica_updates", "Replica records stored", self._replica.updates_total)
            refused = CounterMetricFamily(
                "edge_replica_refused", "Replica records refused (unsigned, forged, mismatched)", labels=["reason"]
            )
            for reason, n in sorted(self._replica.refused_by_reason.items()):
                refused.add_metric([reason], n)
            yield refused
        if self._refused_acks is not None:
            acks = CounterMetricFamily("edge_acks_refused", "MQTT acks refused (nothing deleted)", labels=["reason"])
            for reason, n in sorted(self._refused_acks.items()):
                acks.add_metric([reason], n)
            yield acks
        if self._certificates:
            yield self._certificate_expiry()

    def _certificate_expiry(self) -> Metric:
        family = GaugeMetricFamily(
            "edge_tls_certificate_not_after_seconds", "Certificate notAfter (Unix seconds)", labels=["role"]
        )
        for role, path in sorted(self._certificates.items()):
            try:
                family.add_metric([role], certificate_not_after(path))
            except (OSError, ValueError) as exc:
                log.warning("certificate unreadable role=%s path=%s error=%s", role, path, exc)
        return family


def make_registry(collector: EdgeCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
