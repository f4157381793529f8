"""A real Prometheus (tools/install-prometheus.sh) scrapes a running core (verifier, reconciler and API on the
secure test stack) and an edge agent, with the product's alert rules loaded: a break-glass decision and a
dead-lettered record make the BreakGlassDecision and DeadLetters alerts fire (read from /api/v1/alerts)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from broker.api import ApiService
from broker.auth.client import TokenSource, client_tls
from broker.infra.local import ApiClientSpec, LocalDeployment
from broker.topics import TopicNames
from edge_agent.app import Agent
from tests.integration.edge.conftest import EdgeKit, free_port
from tests.integration.pipeline.conftest import Harness
from tests.tools import ROOT, tool_path

pytestmark = pytest.mark.integration

RULES = ROOT / "deploy" / "prometheus" / "consent-alerts.yml"
CLIENT = ApiClientSpec("rx1-ehr", "RX1", ("CONSULTANT",), ("decisions",))
NHS_NUMBER = "9434765919"
BREAK_GLASS: dict[str, Any] = {
    "requester": {"organisation": "RX1", "role": "CONSULTANT", "registered": True, "relationship": "BREAK_GLASS",
                  "care_team": False, "accessor_id": "staff-7"},
    "purpose": "TREAT",
    "nhs_number": NHS_NUMBER,
    "data_classes": ["GENERAL"],
}  # fmt: skip


@pytest.fixture
async def harness(
    deployment: LocalDeployment, topic_names: TopicNames, app_id: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    h = Harness.create(deployment, topic_names, app_id, tmp_path)
    yield h
    for core in h.cores:
        await core.stop()


class Prometheus:
    """A Prometheus server in ``directory`` scraping ``jobs`` every second, evaluating the rules every second."""

    def __init__(self, directory: Path, jobs: list[dict[str, Any]]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": jobs,
        }
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = directory / "prometheus.log"
        self.args = [
            str(tool_path("prometheus")),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def get(self, session: aiohttp.ClientSession, path: str, **params: str) -> Any:
        async with session.get(self.url + path, params=params) as resp:
            body = await resp.json()
            assert body["status"] == "success", body
            return body["data"]


async def until(probe: Callable[[], Any], check: Callable[[Any], bool], what: str, timeout_s: float = 120) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    value: Any = None
    while loop.time() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            value = await probe()
            if check(value):
                return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last value {value!r}")


async def _rejects(prometheus: Any, session: aiohttp.ClientSession) -> dict[str, float]:
    """The verifier's dead letters by reason, as Prometheus last scraped them."""
    data = await prometheus.get(session, "/api/v1/query", query='broker_stage_rejects_total{stage="verifier"}')
    return {r["metric"]["reason"]: float(r["value"][1]) for r in data["result"]}


def _firing(alerts: dict[str, Any], name: str) -> list[dict[str, str]]:
    return [a["labels"] for a in alerts["alerts"] if a["labels"]["alertname"] == name and a["state"] == "firing"]


async def test_prometheus_scrapes_core_and_agent_and_break_glass_and_dead_letter_alerts_fire(
    harness: Harness, tmp_path: Path
) -> None:
    metrics_port = free_port()
    kit = EdgeKit(tmp_path, harness)
    door, keys = harness.deployment.api_door(tmp_path / "door", [CLIENT])
    core = await harness.start_core(
        stages="verifier,reconciler,api",
        pseudonym_secret_file=str(kit.secret_file),
        http_port=0,
        metrics_port=metrics_port,
        **door,
    )
    settings = await kit.agent_settings(f"gp-{harness.topics.prefix}")
    agent = await Agent.start(settings)
    assert settings.api_token_file is not None
    prometheus = Prometheus(
        tmp_path,
        [
            {"job_name": "consent-core", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]},
            {
                "job_name": "edge-agent",
                "authorization": {"type": "Bearer", "credentials_file": str(settings.api_token_file)},
                "static_configs": [{"targets": [f"127.0.0.1:{settings.http_port}"]}],
            },
        ],
    )
    prometheus.start()
    try:
        async with aiohttp.ClientSession() as session:
            up = await until(
                lambda: prometheus.get(session, "/api/v1/query", query="up"),
                lambda d: (
                    sorted((r["metric"]["job"], r["value"][1]) for r in d["result"])
                    == [("consent-core", "1"), ("edge-agent", "1")]
                ),
                "both targets up",
            )
            assert len(up["result"]) == 2
            # the agent's outbox and the core's break-glass counter (at 0) are in Prometheus before anything happens
            await until(
                lambda: prometheus.get(session, "/api/v1/query", query="edge_outbox_pending_events"),
                lambda d: [r["metric"]["job"] for r in d["result"]] == ["edge-agent"],
                "the agent's outbox gauge",
            )
            await until(
                lambda: prometheus.get(
                    session, "/api/v1/query", query="count_over_time(consent_break_glass_decisions_total[1m])"
                ),
                lambda d: len(d["result"]) == 2 and all(float(r["value"][1]) >= 2 for r in d["result"]),
                "two scrapes of the break-glass counters at 0",
            )
            # this pytest process's registry may already hold series from earlier tests (the rules also fire
            # for a series seen for the first time), so the checks below look for what *this* test changed
            rejects_before = await _rejects(prometheus, session)

            # a break-glass decision through the API (HTTPS, OAuth), and a malformed batch on the ingress topic
            service = core.services["api"]
            assert isinstance(service, ApiService)
            base = harness.deployment.api_url(service.port)
            tls = client_tls(harness.deployment.ca_file)
            tokens = TokenSource(
                harness.deployment.api_credentials(CLIENT.client_id, keys[CLIENT.client_id], service.port)
            )

            async def health() -> Any:
                async with session.get(base + "/v1/health", ssl=tls) as resp:
                    return await resp.json()

            await until(health, lambda h: h["status"] == "ok", "the API ready")
            headers = await tokens.headers(session, tls)
            async with session.post(base + "/v1/decisions", json=BREAK_GLASS, ssl=tls, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                decision = await resp.json()
            assert {"BREAK_GLASS", "BREAK_GLASS_NOT_ENTITLED"} & set(decision["codes"]), decision
            await harness.send_raw(b"agent-x", [b"\x00not an avro batch"])

            code = next(c for c in decision["codes"] if c.startswith("BREAK_GLASS"))
            rejected: set[str] = set()

            async def changed_alerts() -> dict[str, Any]:
                rejected.update(
                    r for r, n in (await _rejects(prometheus, session)).items() if n > rejects_before.get(r, 0)
                )
                return await prometheus.get(session, "/api/v1/alerts")

            alerts = await until(
                changed_alerts,
                lambda a: (
                    any(g["code"] == code for g in _firing(a, "BreakGlassDecision"))
                    and any(d["reason"] in rejected for d in _firing(a, "DeadLetters"))
                ),
                "BreakGlassDecision for this decision and DeadLetters for this batch's reason firing",
            )
            (glass,) = [g for g in _firing(alerts, "BreakGlassDecision") if g["code"] == code]
            assert glass["severity"] == "page"
            dead = [d for d in _firing(alerts, "DeadLetters") if d["reason"] in rejected]
            assert [(d["stage"], d["severity"]) for d in dead] == [("verifier", "warning")]
            # nothing about a patient reaches Prometheus: no series has a label holding the NHS number
            series = await prometheus.get(session, "/api/v1/series", **{"match[]": '{__name__=~".+"}'})
            assert series and not any(NHS_NUMBER in str(s) for s in series)
    finally:
        prometheus.stop()
        await agent.stop()
