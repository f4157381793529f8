"""The mirror's pure rules: only a patient's own sites get its records; new sites are caught up; bad input counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.mirror import (
    MirrorOutcome,
    MirrorPlanner,
    Publication,
    RecordKind,
    Registration,
    RegistrationsError,
    coalesce,
    mirror_topic,
    parse_registrations,
)
from broker.mirror.planner import PlannerChanges
from broker.mirror.store import MirrorStore
from broker.settings import CoreSettings, SettingsError, load_registrations
from consent_rules.replica_feed import open_replica_record, seal_replica_record
from consent_rules.state import PatientState, empty_state
from consent_wire.dsse import AgentSigner
from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.signing import encode_verified_event, verify_batch
from tests.factories import (
    BASE_MS,
    PSEUDONYMS,
    SimAgent,
    consent,
    core_signing_key,
    core_tls,
    patient,
    pseudonym_secret,
    site_key,
)

P = patient(1)
Q = patient(2)


def _event_records(site: str, patient_keys: list[str]) -> list[bytes]:
    """Verified-event records as the verifier writes them, recorded at ``site``."""
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    agent = SimAgent.create(site=site)
    registry.apply(agent.register(root))
    batch = agent.batch([agent.event(k, consent(), BASE_MS + i) for i, k in enumerate(patient_keys)])
    # as the core's verifier forwards them: keyed nationally, the site's own pseudonym kept (site_key)
    return [
        encode_verified_event(ve.translated(PSEUDONYMS.to_national(site, ve.event.patient_key)))
        for ve in verify_batch(batch, registry)
    ]


def _pub(kind: RecordKind, site: str, key: str, payload: bytes) -> Publication:
    """What the planner publishes for ``site``: the national ``key`` and the site's own pseudonym."""
    return Publication(kind, site, key, payload, site_key(site, key))


def test_a_state_record_goes_only_to_the_sites_that_recorded_events_about_the_patient() -> None:
    planner = MirrorPlanner()
    for record in _event_records("A81001", [P]) + _event_records("B82002", [Q]):
        assert planner.on_event(record).outcome is MirrorOutcome.SITE_ADDED
    step = planner.on_record(RecordKind.STATE, P.encode(), b"state-v1")
    assert step.outcome is MirrorOutcome.MIRRORED
    assert step.publications == (_pub(RecordKind.STATE, "A81001", P, b"state-v1"),)
    assert step.publications[0].topic == f"consent/state/A81001/{site_key('A81001', P)}"  # never the national key


def test_a_record_goes_to_every_known_site_in_site_order() -> None:
    planner = MirrorPlanner([Registration("Z99999", site_key("Z99999", P))], PSEUDONYMS)
    planner.on_event(_event_records("A81001", [P])[0])
    step = planner.on_record(RecordKind.SHIELDING, P.encode(), b"shield")
    assert step.publications == (
        _pub(RecordKind.SHIELDING, "A81001", P, b"shield"),
        _pub(RecordKind.SHIELDING, "Z99999", P, b"shield"),
    )


def test_a_registration_must_name_the_sites_own_pseudonym() -> None:
    """The registrations file lists each patient under the site's pseudonym: a national key (or another
    site's pseudonym) is refused when the planner is built, naming the line."""
    with pytest.raises(RegistrationsError, match="registration 1: the key is not a pseudonym of site 'Z99999'"):
        MirrorPlanner([Registration("Z99999", P)], PSEUDONYMS)
    with pytest.raises(RegistrationsError, match="registration 1"):
        MirrorPlanner([Registration("Z99999", site_key("A81001", P))], PSEUDONYMS)


def test_a_sealed_record_names_the_patient_by_the_receiving_sites_pseudonym_only() -> None:
    state = empty_state(P).to_bytes()
    signer = AgentSigner.generate("core")
    mine = site_key("A81001", P)
    sealed = seal_replica_record(signer, RecordKind.STATE, P, state, BASE_MS, site_key=mine)
    update = open_replica_record(sealed, signer.public_key, RecordKind.STATE, mine, BASE_MS)
    assert update.record is not None
    assert PatientState.from_bytes(update.record).patient_key == mine
    assert P.encode() not in sealed  # the national pseudonym is nowhere in what the site receives


def test_a_record_for_a_patient_with_no_known_site_is_held_and_published_when_a_site_appears() -> None:
    planner = MirrorPlanner()
    assert planner.on_record(RecordKind.STATE, P.encode(), b"s1").outcome is MirrorOutcome.HELD
    assert planner.on_record(RecordKind.STATE, P.encode(), b"s2").publications == ()
    planner.on_record(RecordKind.SHIELDING, P.encode(), b"sh")
    step = planner.on_event(_event_records("A81001", [P])[0])
    assert step.outcome is MirrorOutcome.SITE_ADDED
    assert step.publications == (
        _pub(RecordKind.STATE, "A81001", P, b"s2"),
        _pub(RecordKind.SHIELDING, "A81001", P, b"sh"),
    )


def test_a_second_event_from_a_known_site_publishes_nothing() -> None:
    planner = MirrorPlanner()
    first, second = _event_records("A81001", [P, P])
    planner.on_event(first)
    planner.on_record(RecordKind.STATE, P.encode(), b"s1")
    step = planner.on_event(second)
    assert (step.outcome, step.publications) == (MirrorOutcome.SITE_KNOWN, ())


def test_a_tombstone_clears_the_retained_message_and_is_not_replayed_to_new_sites() -> None:
    planner = MirrorPlanner([Registration("A81001", P)])
    planner.on_record(RecordKind.STATE, P.encode(), b"s1")
    step = planner.on_record(RecordKind.STATE, P.encode(), None)
    assert step.publications == (Publication(RecordKind.STATE, "A81001", P, b""),)
    assert planner.held(RecordKind.STATE, P) is None
    assert planner.add_site("B82002", P).publications == ()


@pytest.mark.parametrize("value", [None, b"", b"\x00garbage", b"not avro at all"])
def test_an_undecodable_event_is_a_bad_record(value: bytes | None) -> None:
    assert MirrorPlanner().on_event(value).outcome is MirrorOutcome.BAD_RECORD


@pytest.mark.parametrize("key", [None, b"", b"a/b", b"+", b"#", b"x" * 129])
def test_a_record_whose_key_cannot_be_an_mqtt_topic_level_is_a_bad_record(key: bytes | None) -> None:
    planner = MirrorPlanner([Registration("A81001", P)])
    step = planner.on_record(RecordKind.STATE, key, b"s")
    assert (step.outcome, step.publications) == (MirrorOutcome.BAD_RECORD, ())


@pytest.mark.parametrize("site", ["", "A/1", "A+", "#"])
def test_a_site_that_cannot_be_an_mqtt_topic_level_is_refused(site: str) -> None:
    planner = MirrorPlanner()
    assert planner.add_site(site, P).outcome is MirrorOutcome.BAD_RECORD
    assert planner.sites_for(P) == frozenset()


def test_registrations_csv_skips_header_comments_and_blank_lines() -> None:
    text = f"site,patient_key\n# operator list\n\nA81001, {P}\nB82002,{Q}  # second\n"
    assert parse_registrations(text) == (Registration("A81001", P), Registration("B82002", Q))


@pytest.mark.parametrize("line", ["A81001", "A81001,p,extra", "A/1,p", ",p"])
def test_a_malformed_registration_line_is_refused_with_its_line_number(line: str) -> None:
    with pytest.raises(RegistrationsError, match="line 2"):
        parse_registrations(f"A81001,{P}\n{line}\n")
    assert RegistrationsError.reason == "BAD_REGISTRATIONS"


def test_coalesce_keeps_the_last_payload_per_topic() -> None:
    s = RecordKind.STATE
    pubs = [Publication(s, "A1", P, b"1"), Publication(s, "B1", P, b"x"), Publication(s, "A1", P, b"2")]
    assert coalesce(pubs) == (Publication(s, "B1", P, b"x"), Publication(s, "A1", P, b"2"))
    assert pubs[0].topic == mirror_topic(s, "A1", P) == f"consent/state/A1/{P}"


_SITES = st.sampled_from(["A81001", "B82002", "C83003", "D84004"])
_PATIENTS = st.sampled_from([patient(i) for i in range(4)])
# (True, site, _, patient, _): the site learns of the patient; (False, _, kind, patient, value): a record
_OPS = st.lists(
    st.tuples(st.booleans(), _SITES, st.sampled_from(list(RecordKind)), _PATIENTS, st.binary(max_size=8)),
    max_size=40,
)


@given(ops=_OPS)
@settings(max_examples=60)
def test_a_site_ends_up_with_exactly_the_latest_records_of_its_own_patients(
    ops: list[tuple[bool, str, RecordKind, str, bytes]],
) -> None:
    planner = MirrorPlanner()
    retained: dict[str, bytes] = {}
    relations: set[tuple[str, str]] = set()
    latest: dict[tuple[RecordKind, str], bytes] = {}
    for is_site, site, kind, key, value in ops:
        if is_site:
            relations.add((site, key))
            step = planner.add_site(site, key)
        else:
            latest[(kind, key)] = value
            step = planner.on_record(kind, key.encode(), value)
        for p in step.publications:
            if p.payload:
                retained[p.topic] = p.payload
            else:
                retained.pop(p.topic, None)
    expected = {
        mirror_topic(kind, site, key): value
        for (kind, key), value in latest.items()
        for site, related in relations
        if related == key and value
    }
    assert retained == expected


def test_registrations_file_is_read_and_a_missing_one_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "registrations.csv"
    path.write_text(f"site,patient_key\nA81001,{P}\n")
    assert load_registrations(str(path)) == (Registration("A81001", P),)
    assert load_registrations("") == ()
    with pytest.raises(SettingsError, match="cannot read registrations file"):
        load_registrations(str(tmp_path / "absent.csv"))


def test_the_registrations_file_setting_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "registrations.csv"
    path.write_text(f"A81001,{site_key('A81001', P)}\n")
    monkeypatch.setenv("CONSENT_REGISTRATIONS_FILE", str(path))
    monkeypatch.setenv("CONSENT_STAGES", "mirror")
    settings = CoreSettings.load(
        **core_tls(tmp_path, ("mirror",)), **core_signing_key(tmp_path)[0], **pseudonym_secret(tmp_path)
    )
    assert (settings.registrations_file, settings.stages) == (str(path), ("mirror",))


def test_the_mirror_stage_needs_the_core_signing_key(tmp_path: Path) -> None:
    tls = {**core_tls(tmp_path, ("mirror",)), **pseudonym_secret(tmp_path)}
    with pytest.raises(SettingsError, match="core_signing_key_file=''"):
        CoreSettings.load(stages="mirror", **tls)
    bad = tmp_path / "short.key"
    bad.write_text("abcd\n")
    bad.chmod(0o600)
    with pytest.raises(SettingsError, match="core_signing_key_file"):
        CoreSettings.load(stages="mirror", core_signing_key_file=str(bad), **tls)
    assert CoreSettings.load(stages="mirror", **tls, **core_signing_key(tmp_path)[0]).core_signing_key_file


def test_a_planner_restored_from_its_store_behaves_as_the_one_that_wrote_it(tmp_path: Path) -> None:
    """Issue 16: the mirror's store keeps what its planner learnt, with the positions, so a restart resumes."""
    planner = MirrorPlanner()
    planner.on_event(_event_records("A81001", [P])[0])
    planner.on_record(RecordKind.STATE, Q.encode(), b"held-q")  # no site for Q yet: held
    planner.on_record(RecordKind.SHIELDING, P.encode(), b"shield-p")
    planner.on_record(RecordKind.SHIELDING, P.encode(), None)  # then deleted
    store = MirrorStore(tmp_path / "mirror.sqlite3")
    store.commit(planner.drain(), {("t.events", 0): 1, ("t.state", 2): 3})
    assert planner.drain() == PlannerChanges((), {})  # drained
    store.close()

    stored = MirrorStore(tmp_path / "mirror.sqlite3").load()
    assert stored.positions == {("t.events", 0): 1, ("t.state", 2): 3}
    again = MirrorPlanner()
    again.restore(stored.sites, stored.held)
    assert again.sites_for(P) == frozenset({"A81001"})
    assert again.held(RecordKind.STATE, Q) == b"held-q"
    assert again.held(RecordKind.SHIELDING, P) is None
    assert again.on_event(_event_records("A81001", [P])[0]).outcome is MirrorOutcome.SITE_KNOWN  # nothing re-sent
    step = again.add_site("B82002", Q)  # a new site still gets the record held before the restart
    assert step.publications == (Publication(RecordKind.STATE, "B82002", Q, b"held-q"),)
