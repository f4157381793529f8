"""Synthetic fleets: valid signed chains, one patient key per event, shares and mixes honoured."""

from __future__ import annotations

import dataclasses

from consent_wire.keys import KeyRegistry, OperatorRoot
from consent_wire.signing import verify_batch
from loadtests.plan import AgentKind, quick_plan
from loadtests.realfleet import nhs_numbers
from loadtests.synth import build_fleet, event_topic_key

AT_MS = 1_790_000_000_000


def test_batches_verify_and_chain_gap_free() -> None:
    root = OperatorRoot.generate()
    registry = KeyRegistry(root.public_key)
    fleet = build_fleet(quick_plan(), "chain", 2000, AT_MS)
    for reg in fleet.registrations(root):
        registry.apply(reg)
    for agent in fleet.agents:
        seqs = [ve.event.seq for b in agent.batches for ve in verify_batch(b.data, registry)]
        assert seqs == list(range(1, agent.events + 1))


def test_every_stateful_event_has_its_own_patient_key() -> None:
    fleet = build_fleet(quick_plan(), "keys", 3000, AT_MS)
    keys = [k for a in fleet.agents for b in a.batches for k in b.state_keys]
    assert len(keys) == len(set(keys))
    expected = fleet.expected_event_keys()
    assert sum(expected.values()) == fleet.events
    assert all(n == 1 for k, n in expected.items() if not k.startswith("site:"))


def test_kinds_carry_their_share_of_events() -> None:
    plan = quick_plan()
    fleet = build_fleet(plan, "share", 10_000, AT_MS)
    gp = sum(a.events for a in fleet.agents if a.spec.kind is AgentKind.GP_PRACTICE)
    share = next(k.share for k in plan.fleet if k.kind is AgentKind.GP_PRACTICE)
    assert abs(gp / fleet.events - share) < 0.02


def test_gateways_send_no_shielding_flags() -> None:
    plan = quick_plan()
    fleet = build_fleet(dataclasses.replace(plan), "gw", 5000, AT_MS)
    gateways = [a for a in fleet.agents if a.spec.kind is AgentKind.GATEWAY]
    assert gateways
    assert all(not b.shielding_keys for a in gateways for b in a.batches)


def test_breach_reports_are_keyed_by_site_on_the_events_topic() -> None:
    assert event_topic_key("", "A81001") == "site:A81001"
    assert event_topic_key("ab" * 16, "A81001") == "ab" * 16


def test_generated_nhs_numbers_pass_modulus_11() -> None:
    from consent_wire.identity import validate_nhs_number

    numbers = nhs_numbers(400_000_000, 50)
    assert len(set(numbers)) == 50
    assert [validate_nhs_number(n) for n in numbers] == numbers
