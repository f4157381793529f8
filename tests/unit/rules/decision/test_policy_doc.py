"""The deployment's decision policy document (decision_policy_file): parsed whole or refused naming the key.

Without it, rule 9's break-glass roles, rule 5's CAG-exempt flows and rec 20's agreement register could
only be the built-in defaults; an operator configures them here.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from broker.errors import SettingsError
from broker.settings import load_decision_policy
from consent_rules.decision import DEFAULT_BREAK_GLASS_ROLES, DecisionPolicy
from consent_rules.decision.policy_doc import PolicyDocumentError, parse_policy
from consent_wire.codes import DataClass, PurposeOfUse

DOC = """
break_glass_roles = ["ED_DOCTOR", "PARAMEDIC"]
ndop_exempt_flows = ["20/CAG/0123"]
agreements_required = true

[[agreements]]
reference = "DSA-2026-014"
parties = ["RX1", "B82018"]
purposes = ["TREAT", "HOPERAT"]
data_classes = ["GENERAL", "CONTACT"]
expires = 2027-03-31
"""


def test_a_full_document_becomes_the_policy_it_describes() -> None:
    policy = parse_policy(tomllib.loads(DOC))
    assert policy.break_glass_roles == frozenset({"ED_DOCTOR", "PARAMEDIC"})
    assert policy.ndop_exempt_flows == frozenset({"20/CAG/0123"})
    assert policy.agreements_required
    dsa = policy.agreements["DSA-2026-014"]
    assert dsa.parties == frozenset({"RX1", "B82018"})
    assert dsa.purposes == frozenset({PurposeOfUse.TREAT, PurposeOfUse.HOPERAT})
    assert dsa.data_classes == frozenset({DataClass.GENERAL, DataClass.CONTACT})
    # in force to the end of 31 March 2027, UK time (BST: 23:00 UTC that day)
    end = dt.datetime(2027, 3, 31, 23, 0, tzinfo=dt.UTC)
    assert dsa.expires_ms == int(end.timestamp() * 1000)
    assert dsa.in_force(dsa.expires_ms - 1) and not dsa.in_force(dsa.expires_ms)


def test_an_empty_document_is_the_default_policy() -> None:
    assert parse_policy({}) == DecisionPolicy()
    assert parse_policy({}).break_glass_roles == DEFAULT_BREAK_GLASS_ROLES


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        ('agreements_requried = true', "agreements_requried"),  # a misspelt switch never leaves the check off
        ("agreements_required = 1", "agreements_required"),
        ("agreements_required = true", r"no \[\[agreements\]\]"),
        ('break_glass_roles = "ED_DOCTOR"', "break_glass_roles"),
        ('[[agreements]]\nreference = "D"\nparties = ["RX1"]\npurposes = ["MARKETING"]\ndata_classes = ["ALL"]',
         "MARKETING"),
        ('[[agreements]]\nreference = "D"\nparties = []\npurposes = ["TREAT"]\ndata_classes = ["ALL"]', "parties"),
        ('[[agreements]]\nreference = "D"\nparties = ["RX1"]\npurposes = ["TREAT"]\ndata_classes = ["ALL"]\n'
         'expires = 2027-03-31T00:00:00', "offset"),
        ('[[agreements]]\nreference = "D"\nparties = ["X"]\npurposes = ["TREAT"]\ndata_classes = ["ALL"]\n'
         '[[agreements]]\nreference = "D"\nparties = ["X"]\npurposes = ["TREAT"]\ndata_classes = ["ALL"]', "twice"),
    ],
)  # fmt: skip
def test_a_bad_document_is_refused_naming_what_is_wrong(doc: str, names: str) -> None:
    with pytest.raises(PolicyDocumentError, match=names):
        parse_policy(tomllib.loads(doc))


def test_the_shipped_example_parses_and_a_bad_file_stops_the_core_naming_the_setting(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[4] / "deploy" / "decision-policy.toml"
    assert load_decision_policy(str(example)).break_glass_roles >= {"ED_DOCTOR", "PARAMEDIC"}
    bad = tmp_path / "policy.toml"
    bad.write_text("agreements_requried = true\n")
    with pytest.raises(SettingsError, match=r"decision_policy_file.*agreements_requried"):
        load_decision_policy(str(bad))
