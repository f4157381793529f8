from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import load_settings
from edge_agent.errors import ConfigError

CORE_HEX = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"  # RFC 8032 test 1 public key
TOML = """
[agent]
id = "agent-a12345-1"
site = "A12345"
data_dir = "/var/lib/edge-agent"
[transport]
kind = "mqtt"
[mqtt]
host = "mqtt.local"
port = 8883
[outbox]
disk_cap_bytes = 2_000_000
batch_max_events = 100
[secrets]
pseudonym_secret_file = "/etc/edge-agent/secret"
signing_key_file = "/etc/edge-agent/key.pem"
api_token_file = "/etc/edge-agent/api-token"
core_public_key_hex = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
[tls]
ca_file = "/etc/edge-agent/ca.pem"
cert_file = "/etc/edge-agent/tls/cert.pem"
key_file = "/etc/edge-agent/tls/key.pem"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_toml_values_are_typed_and_defaults_filled(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, TOML), {})

    assert (s.agent_id, s.site, s.transport, s.mqtt_host, s.mqtt_port) == (
        "agent-a12345-1",
        "A12345",
        "mqtt",
        "mqtt.local",
        8883,
    )
    assert s.data_dir == Path("/var/lib/edge-agent")
    assert s.outbox_path == Path("/var/lib/edge-agent/outbox.sqlite3")
    assert (s.disk_cap_bytes, s.batch_max_events, s.http_host, s.synchronous) == (2_000_000, 100, "127.0.0.1", "FULL")


def test_environment_overrides_toml_with_coercion(tmp_path: Path) -> None:
    env = {"EDGE_AGENT_MQTT_PORT": "1884", "EDGE_AGENT_HTTP_ALLOW_REMOTE": "yes", "EDGE_AGENT_HTTP_HOST": "0.0.0.0"}
    tls = {"EDGE_AGENT_HTTP_TLS_CERT_FILE": "/etc/edge-agent/https.pem", "EDGE_AGENT_HTTP_TLS_KEY_FILE": "/k.pem"}
    s = load_settings(write(tmp_path, TOML), {**env, **tls})

    assert (s.mqtt_port, s.http_allow_remote, s.http_host) == (1884, True, "0.0.0.0")


def test_a_remote_api_must_serve_https(tmp_path: Path) -> None:
    env = {"EDGE_AGENT_HTTP_ALLOW_REMOTE": "yes", "EDGE_AGENT_HTTP_HOST": "0.0.0.0"}
    with pytest.raises(ConfigError, match="http_tls_cert_file"):
        load_settings(write(tmp_path, TOML), env)


def test_settings_from_environment_alone() -> None:
    env = {
        "EDGE_AGENT_AGENT_ID": "a1",
        "EDGE_AGENT_SITE": "B81001",
        "EDGE_AGENT_DATA_DIR": "/tmp/x",
        "EDGE_AGENT_PSEUDONYM_SECRET_FILE": "/s",
        "EDGE_AGENT_SIGNING_KEY_FILE": "/k",
        "EDGE_AGENT_API_TOKEN_FILE": "/t",
        "EDGE_AGENT_TLS_CA_FILE": "/ca.pem",
        "EDGE_AGENT_TLS_CERT_FILE": "/cert.pem",
        "EDGE_AGENT_TLS_KEY_FILE": "/key.pem",
        "EDGE_AGENT_CORE_PUBLIC_KEY_HEX": CORE_HEX,
        "PATH": "/usr/bin",
    }
    settings = load_settings(None, env)
    assert settings.site == "B81001"
    assert settings.kafka_connection().security_protocol == "SSL"


def test_an_agent_without_tls_or_api_token_is_refused_unless_asked_for_plaintext() -> None:
    env = {
        "EDGE_AGENT_AGENT_ID": "a1",
        "EDGE_AGENT_SITE": "B81001",
        "EDGE_AGENT_DATA_DIR": "/tmp/x",
        "EDGE_AGENT_PSEUDONYM_SECRET_FILE": "/s",
        "EDGE_AGENT_SIGNING_KEY_FILE": "/k",
        "EDGE_AGENT_CORE_PUBLIC_KEY_HEX": CORE_HEX,
    }
    with pytest.raises(ConfigError, match="tls_ca_file"):
        load_settings(None, env)
    with pytest.raises(ConfigError, match="api_token_file"):
        load_settings(None, {**env, "EDGE_AGENT_KAFKA_SECURITY": "PLAINTEXT"})
    plain = load_settings(None, {**env, "EDGE_AGENT_KAFKA_SECURITY": "PLAINTEXT", "EDGE_AGENT_INSECURE_API": "1"})
    assert plain.kafka_connection().security_protocol == "PLAINTEXT"


@pytest.mark.parametrize(
    ("text", "env", "fragment"),
    [
        (TOML.replace('site = "A12345"', 'site = "a12 345"'), {}, "setting site='a12 345' is invalid"),
        (TOML.replace('kind = "mqtt"', 'kind = "smoke"'), {}, "transport='smoke'"),
        (TOML, {"EDGE_AGENT_HTTP_HOST": "0.0.0.0"}, "a loopback address unless http_allow_remote"),
        (TOML, {"EDGE_AGENT_MQTT_PORT": "eighty"}, "mqtt_port='eighty' must be of type int"),
        (TOML, {"EDGE_AGENT_MQTT_PORT": "70000"}, "mqtt_port=70000 is invalid"),
        (TOML, {"EDGE_AGENT_DISK_CAP_BYTES": "10"}, "disk_cap_bytes=10 is invalid"),
        (TOML, {"EDGE_AGENT_COLOUR": "red"}, "unknown environment variable EDGE_AGENT_COLOUR"),
        (TOML + "\n[mqtt2]\nhost = 'x'\n", {}, "unknown setting [mqtt2] host"),
        (TOML.replace('id = "agent-a12345-1"', 'id = "agent/1"'), {}, "agent_id='agent/1'"),
        ("[agent]\nid = 'a'\n", {}, "missing required setting(s): data_dir, pseudonym_secret_file"),
        ("[agent\n", {}, "is not valid TOML"),
        (TOML, {"EDGE_AGENT_CORE_PUBLIC_KEY_HEX": ""}, "core_public_key_hex='' is invalid"),
        (TOML, {"EDGE_AGENT_CORE_PUBLIC_KEY_HEX": "abcd"}, "core_public_key_hex='abcd' is invalid"),
    ],
)
def test_invalid_settings_name_key_and_value(tmp_path: Path, text: str, env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env)

    assert info.value.reason == "CONFIG_INVALID"
    assert fragment in info.value.message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.toml", {})


def test_deployed_example_config_is_valid() -> None:
    path = Path(__file__).parents[3] / "deploy" / "edge-agent.toml"
    with pytest.raises(ConfigError, match="core_public_key_hex='replace-with"):
        load_settings(path, {})  # the placeholder is refused until the operator puts the core's key
    s = load_settings(path, {"EDGE_AGENT_CORE_PUBLIC_KEY_HEX": CORE_HEX})

    assert s.http_host == "127.0.0.1"
    assert s.synchronous == "FULL"


def test_following_the_replica_needs_the_core_public_key(tmp_path: Path) -> None:
    text = TOML.replace(f'core_public_key_hex = "{CORE_HEX}"\n', "")
    with pytest.raises(ConfigError, match="core_public_key_hex"):
        load_settings(write(tmp_path, text), {})
    with pytest.raises(ConfigError, match="core_public_key_hex"):
        load_settings(write(tmp_path, text), {"EDGE_AGENT_CORE_PUBLIC_KEY_HEX": "ab" * 31})
    kafka_agent = text.replace('kind = "mqtt"', 'kind = "kafka"')  # an MQTT gateway needs the key for its acks too
    assert not load_settings(write(tmp_path, kafka_agent), {"EDGE_AGENT_FOLLOW_REPLICA": "false"}).follow_replica


def test_the_kafka_replica_feed_is_the_sites_own_topic(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, TOML), {"EDGE_AGENT_INGRESS_TOPIC": "t9.ingress"})
    assert s.kafka_replica_topic == "t9.site.A12345"
    assert load_settings(write(tmp_path, TOML), {}).kafka_replica_topic == "consent.site.A12345"
    explicit = load_settings(write(tmp_path, TOML), {"EDGE_AGENT_REPLICA_TOPIC": "x.site.A12345"})
    assert explicit.kafka_replica_topic == "x.site.A12345"
    with pytest.raises(ConfigError, match="replica_topic"):
        load_settings(write(tmp_path, TOML), {"EDGE_AGENT_REPLICA_TOPIC": "a/b"})
