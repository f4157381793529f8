"""The mirror's pure rules: which site receives which patient's state and shielding records.

No agent reads the national state and shielding topics: the core mirrors each patient's records to
that patient's sites only, on two sinks that carry the same core-signed bytes
(:mod:`consent_rules.replica_feed`; sealed by :mod:`broker.mirror.service`):

- MQTT, retained at QoS 1, read by :class:`edge_agent.replica_follow.MqttReplicaFollower`:
  ``consent/state/<site>/<patient_key>`` and ``consent/shielding/<site>/<patient_key>``;
- Kafka, the site's compacted feed ``<prefix>.site.<site>`` keyed ``<kind>/<patient_key>``, read by
  :class:`edge_agent.replica_follow.KafkaReplicaFollower`.

A :class:`Publication` here carries the record as read from the state or shielding topic (``b""``
for a tombstone: a signed deletion is sent).

Minimum necessary (Caldicott principle 3): a site receives a patient's records only when it has a
relationship with that patient - it recorded an event about the patient (learnt from the events
topic: ``VerifiedEvent.event.site`` and ``patient_key``) or it is listed for the patient in the
operator's registrations file (``site,site_pseudonym`` lines).

Per-site pseudonyms (issue 12 item 11): the core is keyed by national pseudonyms, which no site may
see. Each publication carries the *site's* pseudonym of the patient (``site_key``): learnt from that
site's own events (``VerifiedEvent.site_key``, the key the site signed, translated by the verifier) or
given in the registrations file and opened with :class:`~consent_wire.site_pseudonyms.CorePseudonyms`.
The topic, the feed key and the record inside (:func:`consent_rules.replica_feed.seal_replica_record`)
all use it, so a site never receives a national pseudonym nor another site's. No other site is ever sent them, and
no wildcard site topic is ever published. When a site first becomes known for a patient, the
latest records already held for that patient are published to it, so arrival order between the
events topic and the state/shielding topics does not matter.

The planner holds the latest record of each kind per patient (the state and shielding topics are
compacted, so this is the same data a replica holds) and the set of sites per patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from consent_rules.replica_feed import ReplicaKind
from consent_wire.errors import InvalidPatientKeyError, WireError
from consent_wire.signing import decode_verified_event
from consent_wire.site_pseudonyms import CorePseudonyms

__all__ = [
    "MirrorOutcome",
    "MirrorPlanner",
    "PlannerChanges",
    "Publication",
    "RecordKind",
    "Registration",
    "RegistrationsError",
    "Step",
    "coalesce",
    "mirror_topic",
    "parse_registrations",
]

# An MQTT topic level must not hold the separators or wildcards of MQTT 3.1.1 section 4.7
# ("/", "+", "#") nor NUL; pseudonyms are hex and sites ODS codes, so anything else is refused.
_LEVEL = re.compile(r"[A-Za-z0-9._-]{1,128}")  # 128: far above a 64-hex pseudonym or a 10-char ODS code


RecordKind = ReplicaKind  # the two kinds of record mirrored: state and shielding


class MirrorOutcome(StrEnum):
    """What one Kafka record did; the label of ``broker_mirror_records_total{outcome}``."""

    MIRRORED = "mirrored"  # a state/shielding record published to at least one site
    HELD = "held"  # a state/shielding record kept, no site known for the patient yet
    SITE_ADDED = "site_added"  # an event revealed a new site for a patient
    SITE_KNOWN = "site_known"  # an event from a site already known for the patient
    NO_PATIENT = "no_patient"  # an event about no patient (breach, key lifecycle)
    BAD_RECORD = "bad_record"  # undecodable event, missing key, or a key unfit for an MQTT topic
    UNSEALABLE = "unsealable"  # a state/shielding record the mirror cannot sign for sites (malformed)


class RegistrationsError(ValueError):
    """The registrations file cannot be read as ``site,site_pseudonym`` lines, or a pseudonym is not the site's."""

    reason = "BAD_REGISTRATIONS"


@dataclass(frozen=True, slots=True)
class Registration:
    site: str
    patient_key: str  # the site's own pseudonym of the patient (what its agent computes)


@dataclass(frozen=True, slots=True)
class Publication:
    """One record for one site, as read from the state or shielding topic; ``payload == b""`` deletes."""

    kind: RecordKind
    site: str
    patient_key: str  # national (the state and shielding topics' key)
    payload: bytes
    site_key: str = ""  # the site's pseudonym of the patient; "" only when the planner translates nothing

    @property
    def key(self) -> str:
        """The patient key the site receives: its own pseudonym."""
        return self.site_key or self.patient_key

    @property
    def topic(self) -> str:
        """Its retained MQTT topic (one per site, kind and patient: also the unit :func:`coalesce` keeps)."""
        return mirror_topic(self.kind, self.site, self.key)


@dataclass(frozen=True, slots=True)
class SiteLink:
    """A site's relationship with a patient, learnt from the site's events: the national key and the site's own."""

    site: str
    patient_key: str  # national
    site_key: str  # the site's pseudonym ("" when keys are used untranslated: unit tests of the routing rules)


@dataclass(frozen=True, slots=True)
class PlannerChanges:
    """What a planner learnt since its last :meth:`MirrorPlanner.drain`: a local store writes it (issue 16)."""

    sites: tuple[SiteLink, ...]
    held: dict[tuple[RecordKind, str], bytes | None]  # None: deleted


@dataclass(frozen=True, slots=True)
class Step:
    outcome: MirrorOutcome
    publications: tuple[Publication, ...] = ()


def mirror_topic(kind: RecordKind, site: str, patient_key: str) -> str:
    return f"consent/{kind.value}/{site}/{patient_key}"


def _valid_level(value: str) -> bool:
    return _LEVEL.fullmatch(value) is not None


def parse_registrations(text: str) -> tuple[Registration, ...]:
    """``site,site_pseudonym`` per line; blank lines, ``#`` comments and a ``site,patient_key`` header ignored."""
    out: list[Registration] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.replace(" ", "") == "site,patient_key":
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not all(_valid_level(p) for p in parts):
            raise RegistrationsError(f"line {number}: expected site,patient_key (letters, digits, . _ -)")
        out.append(Registration(parts[0], parts[1]))
    return tuple(out)


def coalesce(publications: Iterable[Publication]) -> tuple[Publication, ...]:
    """Keep only the last payload per topic (a retained topic only ever shows its last message)."""
    latest: dict[str, Publication] = {}
    for p in publications:
        latest.pop(p.topic, None)
        latest[p.topic] = p
    return tuple(latest.values())


class MirrorPlanner:
    """Feed it records in topic order; it answers with the publications each one calls for.

    With ``pseudonyms`` (the core's: always in the runtime) registrations name sites' pseudonyms, opened to
    national ones here (:class:`RegistrationsError` for one that is not the site's); without, keys are
    taken as they are (unit tests of the routing rules).
    """

    def __init__(self, registrations: Iterable[Registration] = (), pseudonyms: CorePseudonyms | None = None) -> None:
        self._sites: dict[str, dict[str, str]] = {}  # national key -> site -> the site's pseudonym
        self._held: dict[tuple[RecordKind, str], bytes] = {}
        for number, r in enumerate(registrations, start=1):
            national, site_key = r.patient_key, ""
            if pseudonyms is not None:
                try:
                    national, site_key = pseudonyms.to_national(r.site, r.patient_key), r.patient_key
                except (InvalidPatientKeyError, ValueError) as exc:
                    raise RegistrationsError(
                        f"registration {number}: the key is not a pseudonym of site {r.site!r} ({exc}); list each "
                        "patient under the site's own pseudonym (what its agent computes)"
                    ) from exc
            self._sites.setdefault(national, {})[r.site] = site_key
        # what changed since the last drain(): what a local store must write to resume (issue 16)
        self._sites_added: list[SiteLink] = []
        self._held_changed: dict[tuple[RecordKind, str], bytes | None] = {}

    def restore(self, sites: Iterable[SiteLink], held: Iterable[tuple[RecordKind, str, bytes]]) -> None:
        """Take back what a local store kept (sites learnt from events, latest records held): no publication."""
        for link in sites:
            self._sites.setdefault(link.patient_key, {})[link.site] = link.site_key
        for kind, patient_key, data in held:
            self._held[(kind, patient_key)] = data

    def drain(self) -> PlannerChanges:
        """The sites learnt and the records held or deleted since the last call (then forgotten)."""
        changes = PlannerChanges(tuple(self._sites_added), dict(self._held_changed))
        self._sites_added.clear()
        self._held_changed.clear()
        return changes

    def sites_for(self, patient_key: str) -> frozenset[str]:
        return frozenset(self._sites.get(patient_key, ()))

    def site_key(self, site: str, patient_key: str) -> str | None:
        """``site``'s pseudonym of the patient with national key ``patient_key``, if known ("" = untranslated)."""
        return self._sites.get(patient_key, {}).get(site)

    def held(self, kind: RecordKind, patient_key: str) -> bytes | None:
        return self._held.get((kind, patient_key))

    def on_event(self, value: bytes | None) -> Step:
        """A verified-event record: learn its site for its patient, and catch a new site up."""
        try:
            ve = decode_verified_event(value or b"")
        except WireError:
            return Step(MirrorOutcome.BAD_RECORD)
        if not ve.event.patient_key:
            return Step(MirrorOutcome.NO_PATIENT)
        return self.add_site(ve.event.site, ve.event.patient_key, ve.site_key)

    def add_site(self, site: str, patient_key: str, site_key: str = "") -> Step:
        """``site`` has a relationship with the patient (national ``patient_key``), whom it knows as ``site_key``."""
        if not (_valid_level(site) and _valid_level(patient_key) and (not site_key or _valid_level(site_key))):
            return Step(MirrorOutcome.BAD_RECORD)
        sites = self._sites.setdefault(patient_key, {})
        if site in sites:
            return Step(MirrorOutcome.SITE_KNOWN)
        sites[site] = site_key
        self._sites_added.append(SiteLink(site, patient_key, site_key))
        publications = tuple(
            Publication(kind, site, patient_key, data, site_key)
            for kind in RecordKind
            if (data := self._held.get((kind, patient_key))) is not None
        )
        return Step(MirrorOutcome.SITE_ADDED, publications)

    def on_record(self, kind: RecordKind, key: bytes | None, value: bytes | None) -> Step:
        """A state or shielding record (``value=None``: a tombstone): hold it, publish to the patient's sites."""
        if key is None:
            return Step(MirrorOutcome.BAD_RECORD)
        patient_key = key.decode("utf-8", "replace")
        if not _valid_level(patient_key):
            return Step(MirrorOutcome.BAD_RECORD)
        if not value:  # a tombstone (or an empty record) deletes
            self._held.pop((kind, patient_key), None)
        else:
            self._held[(kind, patient_key)] = value
        self._held_changed[(kind, patient_key)] = value or None
        sites = sorted(self._sites.get(patient_key, {}).items())
        if not sites:
            return Step(MirrorOutcome.HELD)
        payload = value or b""
        return Step(
            MirrorOutcome.MIRRORED,
            tuple(Publication(kind, site, patient_key, payload, site_key) for site, site_key in sites),
        )
