"""The Helm chart: Strimzi resources equal the generator's output (one table for infra, topics and the chart),
``helm lint``, and ``helm template`` validated by ``kubeconform -strict`` against the Kubernetes and Strimzi
schemas (tools/install-helm.sh, install-kubeconform.sh, install-k8s-schemas.sh, install-strimzi-schemas.sh)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from broker.infra.acls import CORE_ROLES, Deployment, core_principal, kafka_acls
from broker.infra.strimzi import resources
from broker.topics import TopicNames, specs
from tests.tools import ROOT, tool_path

CHART = ROOT / "deploy" / "helm" / "consent-broker"
KUBE_VERSION = "1.33.0"
VALUES = [
    "--set", "core.rootPublicKeyHex=" + "ab" * 32,
    "--set", "witness.verifierKey=witness-1.consent.example.internal+0a0b0c0d+AQ" + "A" * 42,
    "--set", "witness.logKey=consent-core/consent.audit+01020304+AQ" + "B" * 42,
]  # fmt: skip


def _run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], input=stdin, capture_output=True, text=True, timeout=300, check=False)


def _render(*extra: str) -> str:
    result = _run(tool_path("helm"), "template", "consent", CHART, "--kube-version", KUBE_VERSION, *VALUES, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _kubeconform(manifests: str) -> subprocess.CompletedProcess[str]:
    k8s = tool_path("k8s-schemas", ".installed").parent
    strimzi = tool_path("strimzi-schemas", ".installed").parent
    return _run(
        tool_path("kubeconform"),
        "-strict",
        "-summary",
        "-kubernetes-version",
        KUBE_VERSION,
        "-schema-location",
        str(k8s)
        + "/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json",
        "-schema-location",
        str(strimzi) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
        "-",
        stdin=manifests,
    )


def test_committed_strimzi_resources_equal_the_generator_output() -> None:
    result = _run(sys.executable, ROOT / "tools" / "generate_strimzi.py", "--check")
    assert result.returncode == 0, result.stderr


def test_strimzi_resources_carry_the_topic_and_acl_tables() -> None:
    docs = resources()
    topics = {d["spec"]["topicName"]: d["spec"] for d in docs if d["kind"] == "KafkaTopic"}
    names = TopicNames("consent")
    assert set(topics) == {names.name(s.topic) for s in specs()}
    for spec in specs():
        assert topics[names.name(spec.topic)]["partitions"] == spec.partitions
        assert topics[names.name(spec.topic)]["config"] == spec.configs(3)
    users = {d["metadata"]["name"]: d["spec"]["authorization"]["acls"] for d in docs if d["kind"] == "KafkaUser"}
    for role in CORE_ROLES:
        principal = core_principal(role)
        assert len(users[principal.name]) == len(kafka_acls(principal, Deployment()))
    reconciler = users["core.reconciler"]
    assert {"resource": {"type": "transactionalId", "name": "consent-core.reconciler.", "patternType": "prefix"},
            "operations": ["Write"], "host": "*"} in reconciler  # fmt: skip
    assert not any(a["resource"].get("name") == "consent.keys" and "Write" in a["operations"] for a in reconciler)


def test_helm_lint() -> None:
    result = _run(tool_path("helm"), "lint", "--strict", CHART, "--kube-version", KUBE_VERSION, *VALUES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_chart_is_valid_for_kubernetes_and_strimzi() -> None:
    manifests = _render()
    kinds = sorted({d["kind"] for d in yaml.safe_load_all(manifests) if d})
    assert kinds == [
        "Deployment", "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser",
        "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret", "Service",
    ]  # fmt: skip
    result = _kubeconform(manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("terminationGracePeriodSeconds: 45", "terminationGracePeriodSecond: 45"),  # a misspelt Kubernetes field
        ("authentication:\n        type: tls", "authentication:\n        type: scram"),  # not a Strimzi user type
    ],
)
def test_kubeconform_rejects_a_broken_manifest(old: str, new: str) -> None:
    manifests = _render()
    assert old in manifests
    result = _kubeconform(manifests.replace(old, new, 1))
    assert result.returncode != 0, result.stdout


def test_every_core_deployment_has_probes_requests_and_a_disruption_budget() -> None:
    docs = [d for d in yaml.safe_load_all(_render()) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    budgets = {d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    stages = ("verifier", "reconciler", "reports", "mirror", "bridge", "api", "witness")
    assert set(deployments) == {f"consent-{s}" for s in stages}
    for name, d in deployments.items():
        assert name in budgets
        (container,) = d["spec"]["template"]["spec"]["containers"]
        assert {"livenessProbe", "readinessProbe"} <= set(container), name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
    assert deployments["consent-api"]["spec"]["replicas"] == 2  # issue 16: many API instances, one appender
