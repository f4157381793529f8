"""Missing prerequisites fail with one clear line naming what is missing and how to install it."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.infra import Infra, InfraConfig, InfraError, kafka


def test_missing_java_fails_in_one_line_naming_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)  # type: ignore[attr-defined]
    with pytest.raises(InfraError) as info:
        Infra(InfraConfig(cache_dir=tmp_path)).up()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Java not found")
    assert "apt-get install -y openjdk-17-jre-headless" in message


def test_missing_maven_fails_in_one_line_when_jars_are_not_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)  # type: ignore[attr-defined]
    with pytest.raises(InfraError) as info:
        kafka.ensure_jars(tmp_path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("Maven (mvn) not found")


def test_cached_jars_do_not_need_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    libs = tmp_path / "kafka" / "libs"
    libs.mkdir(parents=True)
    (libs / f".complete-{kafka.KAFKA_VERSION}").touch()
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)  # type: ignore[attr-defined]
    assert kafka.ensure_jars(tmp_path) == libs


def test_three_node_layout_uses_distinct_ports_and_directories(tmp_path: Path) -> None:
    nodes = kafka.node_layout(tmp_path, 9092, 3)
    ports = [p for n in nodes for p in (n.port, n.controller_port)]
    assert ports == [9092, 9093, 9094, 9095, 9096, 9097]
    assert len({n.directory for n in nodes}) == 3
    props = nodes[1].properties("q", 3)
    assert "node.id=2\n" in props
    assert "min.insync.replicas=2\n" in props
    assert "auto.create.topics.enable=false\n" in props


def test_kafka_uuid_is_22_url_safe_characters() -> None:
    value = kafka.kafka_uuid()
    assert len(value) == 22
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
