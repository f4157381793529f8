"""Parsing the Kafka tools' output, cProfile dumps, core logs; results.json and report.md from an outcome."""

from __future__ import annotations

import cProfile
import json
import logging
from pathlib import Path

import pytest

from consent_io.connection import KafkaConnection
from loadtests.__main__ import ExpectedDenials
from loadtests.ceilings import Ceilings, client_config, parse_consumer_csv, parse_producer_summary
from loadtests.coreproc import CoreEnv, CoreProcess
from loadtests.drive import RunResult, RunSpec
from loadtests.latency import LatencyRecorder, LatencySummary
from loadtests.passthrough import connection_args
from loadtests.plan import Layout, quick_plan
from loadtests.profile import top_functions
from loadtests.report import write_report
from loadtests.results import assemble
from loadtests.runner import BenchOutcome
from loadtests.security_cost import churn_note, security_cost

PRODUCER_OUT = (
    "2000 records sent, 9433.962264 records/sec (0.90 MB/sec), 12.69 ms avg latency, 177.00 ms max latency, "
    "12 ms 50th, 23 ms 95th, 26 ms 99th, 27 ms 99.9th.\n"
)
CONSUMER_OUT = (
    "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, "
    "fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
    "2026-11-24 16:11:58:834, 2026-11-24 16:11:59:055, 0.1907, 0.8631, 2000, 9049.7738, 176, 45, 4.2386, 44444.4444\n"
)


def test_producer_summary_is_parsed() -> None:
    assert parse_producer_summary("WARN something\n" + PRODUCER_OUT) == (9433.962264, 0.90, 12.69)


def test_consumer_csv_is_parsed() -> None:
    assert parse_consumer_csv(CONSUMER_OUT) == (9049.7738, 44444.4444)


def test_tool_output_without_numbers_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no summary line"):
        parse_producer_summary("Exception in thread main")
    with pytest.raises(RuntimeError, match="no CSV"):
        parse_consumer_csv("nothing")


def test_top_functions_ranks_by_own_time(tmp_path: Path) -> None:
    def busy() -> int:
        return sum(i * i for i in range(200_000))

    prof = cProfile.Profile()
    prof.runcall(busy)
    path = tmp_path / "x.prof"
    prof.dump_stats(path)
    rows = top_functions(path, limit=3)
    assert len(rows) == 3
    assert rows[0].own_s >= rows[1].own_s >= rows[2].own_s
    assert top_functions(tmp_path / "missing.prof") == []


def test_core_log_assignment_is_the_latest_per_stage(tmp_path: Path) -> None:
    proc = CoreProcess.__new__(CoreProcess)
    proc.log_path = tmp_path / "core.log"
    lines = ("msg=stage=verifier assigned=[0, 1, 2, 3]", "msg=stage=reconciler assigned=[0]",
             "msg=stage=verifier assigned=[1, 3]")  # fmt: skip
    proc.log_path.write_text("\n".join(lines) + "\n")
    assert proc.assigned() == {"verifier": {1, 3}, "reconciler": {0}}


def test_core_env_sets_the_consent_variables() -> None:
    env = CoreEnv("127.0.0.1:1", "p", "app", "ab", mqtt_port=21783).environ(("verifier", "bridge"))
    assert (env["CONSENT_BOOTSTRAP"], env["CONSENT_TOPIC_PREFIX"], env["CONSENT_APP_ID"]) == ("127.0.0.1:1", "p", "app")
    assert (env["CONSENT_STAGES"], env["CONSENT_MQTT_PORT"], env["CONSENT_ROOT_PUBLIC_KEY_HEX"]) == (
        "verifier,bridge",
        "21783",
        "ab",
    )


def _run(label: str, eps: float, fraction: float | None, lost: int = 0) -> RunResult:
    rec = LatencyRecorder(use_hdr=False)
    for v in (10.0, 20.0, 30.0):
        rec.record(v)
    spec = RunSpec(label, Layout.SPLIT, 2, 6, None if fraction is None else eps * fraction, 1000)
    result = RunResult(spec, 1000, 1.0, eps, rec.summary(), rec.summary(), 0, lost, 0, 0, 600.0, 1010,
                       {"verifier": 0.04}, {"verifier": 40.0})  # fmt: skip
    if fraction is not None:
        result.extra["offered_fraction"] = fraction
    return result


def test_results_carry_the_required_keys_and_goal_verdicts(tmp_path: Path) -> None:
    plan = quick_plan()
    main = _run("main", 12_000.0, None)
    curve = [_run("load-50pct", 6000.0, 0.5), _run("load-100pct", 12_000.0, 1.0, lost=2)]
    ceilings = Ceilings(600, 90_000.0, 50.0, 5.0, 200_000.0, 250_000.0, 48_000.0, 17.0)
    decisions = {"per_s": 6000.0, "p99_ms": 8.0}
    outcome = BenchOutcome(plan, main, ceilings, [main], curve, decisions, {}, {"1m": 1.0}, {"1m": 2.0}, 50.0)
    results = assemble(outcome, tmp_path)
    required = ("throughput_eps", "latency_ms", "ceiling_passthrough_eps", "ceiling_kafka_producer_eps",
                "ratio_to_passthrough", "shielding_p99_ms", "decision_p99_ms", "decisions_per_s", "lost",
                "duplicated", "machine", "config", "load_average", "ratio_to_twohop", "ratio_to_peer_verifier",
                "ratio_to_peer_reconciler", "shielding_p99_idle_ms", "twohop_latency_ms")  # fmt: skip
    assert all(k in results for k in required)
    assert results["ratio_to_passthrough"] == 0.25
    assert results["ratio_to_twohop"] is None  # no two-hop figure in these ceilings: no ratio, not a zero
    assert results["latency_ms"]["p99"] == 30.0
    assert results["lost"] == 2
    assert results["goals"]["throughput_eps"]["met"] is False
    assert results["goals"]["decisions_per_s"]["met"] is True
    assert results["goals"]["lost"]["met"] is False
    json.dumps(results)  # serialisable as is
    write_report(results, tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    assert "| throughput_eps | >= 20,000.0 | 12,000.0 | **NO** |" in text


def test_core_env_carries_the_deployment_security_settings() -> None:
    security = {"CONSENT_TLS_CA_FILE": "/pki/ca.pem", "CONSENT_TLS_CREDENTIALS_DIR": "/pki"}
    env = CoreEnv("127.0.0.1:1", "p", "app", "ab", security=security).environ(("verifier",))
    assert (env["CONSENT_TLS_CA_FILE"], env["CONSENT_TLS_CREDENTIALS_DIR"]) == ("/pki/ca.pem", "/pki")
    assert env["CONSENT_TOPIC_PREFIX"] == "p"  # the run's own settings still win


def test_security_cost_is_tls_over_plaintext_and_lands_in_results_and_report(tmp_path: Path) -> None:
    main = _run("main", 9000.0, None)
    main.extra["steady_eps"] = 10_000.0
    plain = _run("main-plaintext", 12_000.0, None, lost=1)
    plain.extra["steady_eps"] = 12_500.0
    cost = security_cost(main, plain)
    assert (cost["tls_events_per_s"], cost["plaintext_events_per_s"], cost["ratio"]) == (9000.0, 12_000.0, 0.75)
    assert (cost["steady_ratio"], cost["lost"]) == (0.8, 1)
    ceilings = Ceilings(600, 90_000.0, 50.0, 5.0, 200_000.0, 250_000.0, 48_000.0, 17.0)
    outcome = BenchOutcome(quick_plan(), main, ceilings, [main], [], {}, {}, {}, {}, 50.0,
                           security_cost=cost, plaintext=plain)  # fmt: skip
    results = assemble(outcome, tmp_path)
    assert results["security_cost"]["ratio"] == 0.75
    assert results["plaintext_run"]["label"] == "main-plaintext"
    assert results["lost"] == 1  # the plaintext run is audited like every other
    write_report(results, tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    assert "**9,000.0 events/s with mutual TLS and ACLs vs 12,000.0 events/s plaintext, ratio 0.750**" in text


def test_java_client_config_is_plaintext_or_mutual_tls_with_a_private_pem_keystore(tmp_path: Path) -> None:
    assert client_config(KafkaConnection("h:1"), tmp_path).read_text() == "security.protocol=PLAINTEXT\n"
    (tmp_path / "key.pem").write_bytes(b"KEY\n")
    (tmp_path / "cert.pem").write_bytes(b"CERT\n")
    conn = KafkaConnection("h:1", "SSL", "/ca.pem", str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    props = dict(line.split("=", 1) for line in client_config(conn, tmp_path).read_text().splitlines())
    keystore = Path(props["ssl.keystore.location"])
    assert props["security.protocol"] == "SSL" and props["ssl.truststore.location"] == "/ca.pem"
    assert (props["ssl.keystore.type"], props["ssl.truststore.type"]) == ("PEM", "PEM")
    assert keystore.read_bytes() == b"KEY\nCERT\n"
    assert keystore.stat().st_mode & 0o077 == 0


def test_passthrough_flags_carry_the_tls_files_only_when_secure() -> None:
    assert connection_args(KafkaConnection("h:1")) == []
    conn = KafkaConnection("h:1", "SSL", "ca", "cert", "key")
    assert connection_args(conn) == ["--ca-file", "ca", "--cert-file", "cert", "--key-file", "key"]


def test_group_churn_counts_restores_and_rejoins_from_the_core_log(tmp_path: Path) -> None:
    proc = CoreProcess.__new__(CoreProcess)
    proc.log_path = tmp_path / "core.log"
    lines = ("msg=stage=verifier partition=0 restored=0", "msg=stage=verifier partition=1 restored=3",
             "msg=Heartbeat failed: local member_id was not recognized; resetting and re-joining group",
             "msg=stage=verifier partition=0 restored=2")  # fmt: skip
    proc.log_path.write_text("\n".join(lines) + "\n")
    # no assignment or recovery logged to explain them: all three restores are excess (a storm's signature)
    assert proc.group_churn() == {
        "restores": 3, "rejoins": 1, "assigned_partitions": 0, "recoveries": 0, "excess_restores": 3,
    }  # fmt: skip
    proc.log_path = tmp_path / "missing.log"
    assert proc.group_churn() == {
        "restores": 0, "rejoins": 0, "assigned_partitions": 0, "recoveries": 0, "excess_restores": 0,
    }  # fmt: skip


def test_only_the_agents_expected_acl_denials_are_dropped_and_counted() -> None:
    denials = ExpectedDenials()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("aiokafka.cluster", logging.ERROR, __file__, 1, message, None, None)

    assert denials.filter(record("Topic bench.x.state is not authorized for this client")) is False
    assert denials.filter(record("replica follower kafka error=TopicAuthorizationFailedError retry_in_s=1")) is False
    assert denials.filter(record("Unable to connect to node 1")) is True
    assert denials.dropped == 2


def test_a_note_explains_when_the_secure_core_churned_more_than_the_plaintext_one() -> None:
    calm = {"verifier": {"restores": 6, "rejoins": 0}}
    churned = {"verifier": {"restores": 30, "rejoins": 4}}
    assert churn_note({"tls_group_churn": calm, "plaintext_group_churn": calm}) is None
    note = churn_note({"tls_group_churn": churned, "plaintext_group_churn": calm, "tls_cores_ready_s": 140.0})
    assert note is not None and "rejoined its consumer groups 4 times (plaintext: 0)" in note


def test_the_half_load_p99_is_compared_with_the_two_hop_floor_at_the_same_rate(tmp_path: Path) -> None:
    """Issue 18: p99 end-to-end at half load <= 2x the two-hop pass-through's p99 at the same offered load."""
    plan = quick_plan()
    main = _run("main", 12_000.0, None)
    curve = [_run("load-50pct", 6000.0, 0.5), _run("load-100pct", 12_000.0, 1.0)]
    ceilings = Ceilings(600, 90_000.0, 50.0, 5.0, 200_000.0, 250_000.0, 48_000.0, 17.0)
    floor = LatencySummary(3000, 5.0, 9.0, 12.0, 20.0, 6.0, "exact")
    outcome = BenchOutcome(
        plan, main, ceilings, [main], curve, {}, {}, {"1m": 1.0}, {"1m": 2.0}, 50.0, twohop_latency=floor
    )
    results = assemble(outcome, tmp_path)
    assert results["twohop_latency_ms"]["p99"] == 12.0
    assert results["goals"]["latency_p99_vs_twohop"] == {"goal": 2.0, "value": 2.5, "met": False, "direction": "<="}
    missing = assemble(BenchOutcome(plan, main, ceilings, [main], curve, {}, {}, {}, {}, 50.0), tmp_path)
    assert missing["twohop_latency_ms"] is None and missing["goals"]["latency_p99_vs_twohop"]["met"] is None
