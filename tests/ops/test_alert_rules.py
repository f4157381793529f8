"""The alert rules (deploy/prometheus/consent-alerts.yml) with Prometheus' own tool: ``promtool check rules``
and the rule unit tests ``promtool test rules tests/ops/rules_test.yml`` (tools/install-prometheus.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.tools import ROOT, tool_path

RULES = ROOT / "deploy" / "prometheus" / "consent-alerts.yml"
RULE_TESTS = Path(__file__).with_name("rules_test.yml")


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool_path("promtool")), *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_has_a_unit_test_and_a_runbook() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    tested = {
        case["alertname"]
        for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in t.get("alert_rule_test", [])
    }
    assert alerts - tested == set(), "alerts without a promtool unit test"
    readme = (ROOT / "README.md").read_text()
    missing = sorted(a for a in alerts if f"#### {a}" not in readme)
    assert not missing, f"alerts without a runbook in README 'Operating it': {missing}"


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The unit tests can fail: the same file expecting the break-glass alert one minute early does."""
    quiet = "      - eval_time: 2m\n        alertname: BreakGlassDecision\n        exp_alerts: []"
    early = quiet.replace("exp_alerts: []", "exp_alerts:\n          - exp_labels: {code: BREAK_GLASS}")
    broken = RULE_TESTS.read_text().replace(quiet, early)
    assert broken != RULE_TESTS.read_text()
    copy = tmp_path / "rules_test.yml"
    copy.write_text(broken.replace("../../deploy/prometheus/consent-alerts.yml", str(RULES)))
    result = _promtool("test", "rules", copy)
    assert result.returncode != 0
