"""Stage ``mirror``: state and shielding records -> each patient's sites, core-signed, on MQTT and Kafka.

- :mod:`broker.mirror.planner`: who gets which record (pure).
- :mod:`broker.mirror.service`: :class:`~broker.mirror.service.ReplicaMirror`, the I/O shell (aiokafka,
  aiomqtt); imported by :mod:`broker.runtime`, not here, so the pure part loads without them.
"""

from __future__ import annotations

from broker.mirror.planner import (
    MirrorOutcome,
    MirrorPlanner,
    Publication,
    RecordKind,
    Registration,
    RegistrationsError,
    Step,
    coalesce,
    mirror_topic,
    parse_registrations,
)

__all__ = [
    "MirrorOutcome",
    "MirrorPlanner",
    "Publication",
    "RecordKind",
    "Registration",
    "RegistrationsError",
    "Step",
    "coalesce",
    "mirror_topic",
    "parse_registrations",
]
