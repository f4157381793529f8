"""Every Grafana panel query (deploy/grafana/*.json) is parsed by Prometheus' own PromQL parser (a real server's
/api/v1/parse_query, tools/install-prometheus.sh), and every metric it selects is one the product exports: read
from the core's registry and the agent's collector, plus the recording rules of deploy/prometheus/ and
Prometheus' own series (up, ALERTS). The witness's metric is named by the contract in the alert rules."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.core import Metric

import broker.runtime  # noqa: F401 - registers every core metric (stages, bridge, mirror, keys, API, governance)
from broker.ops_metrics import GOVERNANCE
from edge_agent.metrics import EdgeCollector, SubmissionCounts
from tests.integration.edge.conftest import free_port
from tests.tools import ROOT, tool_path

DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "consent-alerts.yml"
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
WITNESS = {"audit_witness_disagreements_total"}  # exported by the audit witness (issue #15), not this process
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def _names(families: Iterable[Metric]) -> set[str]:
    """Series names as Prometheus stores them (counter _total, histogram _bucket/_sum/_count...)."""
    names = set()
    for family in families:
        if family.type not in ("counter", "histogram", "summary"):  # these are stored only with their suffixes
            names.add(family.name)
        names |= {s.name for s in family.samples}
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


class _FakeSource:
    list_sizes = {"A81001": 10}

    def report_events_now(self) -> list[Any]:
        return []

    def audit_status(self) -> tuple[float, int]:
        return 0.0, 0


def exported_names() -> set[str]:
    source = _FakeSource()
    GOVERNANCE.attach(source)
    try:
        core = _names(REGISTRY.collect())
    finally:
        GOVERNANCE.detach(source)
    outbox = SimpleNamespace(pending_count=0, full=False, quarantined_count=0)
    publisher = SimpleNamespace(published_total=0, failures_total=0)
    replica = SimpleNamespace(updates_total=0, refused_by_reason=Counter[str]())
    agent = EdgeCollector(outbox, SubmissionCounts(), publisher, replica, refused_acks={},  # type: ignore[arg-type]
                          certificates={"agent": ROOT / "nonexistent.pem"})  # fmt: skip
    edge = _names(agent.collect()) | {"edge_tls_certificate_not_after_seconds"}  # empty above: no readable file
    recorded = {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r}
    return core | edge | recorded | PROMETHEUS_OWN | WITNESS


def panel_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        stack = list(json.loads(path.read_text())["panels"])
        while stack:
            panel = stack.pop()
            stack += panel.get("panels", [])
            found += [(path.name, panel["title"], t["expr"]) for t in panel.get("targets", [])]
    return found


def _grafana_free(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def _selectors(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") in ("vectorSelector", "matrixSelector"):
            yield node
        for value in node.values():
            yield from _selectors(value)
    elif isinstance(node, list):
        for value in node:
            yield from _selectors(value)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("prometheus")
    config = directory / "prometheus.yml"
    config.write_text("global: {}\n")
    port = free_port()
    args = [str(tool_path("prometheus")), f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with (directory / "log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, (directory / "log").read_text()
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def parse(url: str, expr: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/parse_query?{query}", timeout=10) as resp:
            body: dict[str, Any] = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{expr!r} does not parse: {exc.read().decode()}") from exc
    return body


def metric_names(url: str, expr: str) -> set[str]:
    """Names selected by ``expr``; a ``{__name__=~"re"}`` selector stands for the exported names it matches."""
    ast = parse(url, expr)["data"]
    names: set[str] = set()
    for selector in _selectors(ast):
        if selector.get("name"):
            names.add(selector["name"])
        for m in selector.get("matchers", []):
            if m["name"] == "__name__" and m["type"] == "=~":
                names.add("re:" + m["value"])
    return names


def test_every_dashboard_has_panels_with_queries() -> None:
    assert [p.name for p in DASHBOARDS] == ["decision-api.json", "governance.json", "pipeline.json"]
    queries = panel_queries()
    assert {d for d, _, _ in queries} == {p.name for p in DASHBOARDS}
    assert len(queries) >= 20


def test_every_panel_query_parses_and_selects_exported_metrics(prometheus: str) -> None:
    exported = exported_names()
    problems = []
    for dashboard, title, expr in panel_queries():
        names = metric_names(prometheus, _grafana_free(expr))
        if not names:
            problems.append(f"{dashboard} / {title}: selects no metric: {expr}")
        for name in names:
            ok = any(re.fullmatch(name[3:], e) for e in exported) if name.startswith("re:") else name in exported
            if not ok:
                problems.append(f"{dashboard} / {title}: {name} is not exported by the product")
    assert not problems, "\n".join(problems)


def test_a_misspelt_metric_or_a_broken_query_is_caught(prometheus: str) -> None:
    exported = exported_names()
    assert "broker_stage_records_in" not in exported  # the counter is only ever stored with its _total suffix
    assert metric_names(prometheus, "rate(broker_stage_records_in[5m])") - exported == {"broker_stage_records_in"}
    with pytest.raises(AssertionError, match="does not parse"):
        parse(prometheus, "sum by (stage (rate(broker_stage_records_in_total[5m]))")
