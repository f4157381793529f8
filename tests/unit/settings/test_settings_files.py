"""Files named by the core's settings: list sizes CSV and hex secret files, read and checked at load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit.note import ALG_COSIGNATURE, NoteSigner
from broker.settings import CoreSettings, SettingsError, load_list_sizes, read_hex_file
from consent_io.secrets import write_secret
from tests.factories import api_door, audit_log_settings, core_tls

ROOT_HEX = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"  # RFC 8032 test 1 public key


def test_list_sizes_csv_skips_the_header_and_reads_each_practice(tmp_path: Path) -> None:
    path = tmp_path / "sizes.csv"
    path.write_text("practice,list_size\nA81001,6000\n B82002 , 4100\n")
    assert load_list_sizes(str(path)) == {"A81001": 6000, "B82002": 4100}
    assert load_list_sizes(None) == {}


def test_secret_file_is_hex_as_openssl_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "secret.hex"
    write_secret(path, b"00ff" * 16 + b"\n")
    assert read_hex_file(str(path), "pseudonym_secret_file") == bytes.fromhex("00ff" * 16)
    write_secret(path, b"not hex")
    with pytest.raises(SettingsError, match=r"setting pseudonym_secret_file='.*secret.hex' .*cannot read a hex secret"):
        read_hex_file(str(path), "pseudonym_secret_file")
    write_secret(path, b"00ff" * 16)
    path.chmod(0o644)
    with pytest.raises(SettingsError, match=r"accessible by group or others .* chmod 600"):
        read_hex_file(str(path), "pseudonym_secret_file")
    with pytest.raises(SettingsError, match="No such file"):
        read_hex_file(str(tmp_path / "missing"), "pseudonym_secret_file")


def _secret(tmp_path: Path, nbytes: int = 32) -> str:
    path = tmp_path / "pseudonym.secret"
    write_secret(path, b"ab" * nbytes + b"\n")
    return str(path)


WITNESS_VKEY = NoteSigner("w1", Ed25519PrivateKey.generate(), ALG_COSIGNATURE).verifier.vkey()


def test_the_api_stage_needs_an_audit_key_and_a_witness_quorum(tmp_path: Path) -> None:
    base = {"stages": "api", "pseudonym_secret_file": _secret(tmp_path), "insecure_http": "true"}
    with pytest.raises(SettingsError, match=r"setting audit_key_file='' .*audit keygen"):
        CoreSettings.load(**base)
    key = tmp_path / "audit.key"
    write_secret(key, b"11" * 32)
    with pytest.raises(SettingsError, match=r"audit_witness_quorum=1 .*between 1 and the 0 configured"):
        CoreSettings.load(**base, audit_key_file=str(key))
    with pytest.raises(SettingsError, match=r"audit_witness_quorum=2 .*between 1 and the 1 configured"):
        CoreSettings.load(
            **base, audit_key_file=str(key), audit_witnesses=f"https://h:1 {WITNESS_VKEY}", audit_witness_quorum=2
        )
    with pytest.raises(SettingsError, match=r"audit_witnesses=.*is not '<https URL> <witness verifier key>'"):
        CoreSettings.load(**base, audit_key_file=str(key), audit_witnesses="nowhere")


def test_api_settings_load_when_every_file_they_name_is_readable(tmp_path: Path) -> None:
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("A81001,6000\n")
    key = tmp_path / "audit.key"
    write_secret(key, b"11" * 32)
    door = api_door(tmp_path / "door")
    settings = CoreSettings.load(
        stages="api",
        pseudonym_secret_file=_secret(tmp_path),
        audit_key_file=str(key),
        audit_witnesses=(f"https://127.0.0.1:9 {WITNESS_VKEY}",),
        list_sizes_file=str(sizes),
        **door,
        **core_tls(tmp_path, ("api",)),
    )
    assert settings.stages == ("api",)


def test_the_api_stage_refuses_to_start_without_its_door_unless_insecure_http(tmp_path: Path) -> None:
    tls = core_tls(tmp_path, ("api",))
    with pytest.raises(SettingsError) as caught:
        CoreSettings.load(stages="api", pseudonym_secret_file=_secret(tmp_path), **tls)
    message = str(caught.value)
    for name in ("api_clients_file", "api_token_key_file", "http_tls_cert_file", "http_tls_key_file"):
        assert f"setting {name}=''" in message
    audit = audit_log_settings(tmp_path / "audit")
    assert CoreSettings.load(
        stages="api", pseudonym_secret_file=_secret(tmp_path), insecure_http="true", **audit, **tls
    ).insecure_http
    door = api_door(tmp_path / "door")
    Path(door["http_tls_key_file"]).chmod(0o644)
    with pytest.raises(SettingsError, match=r"http_tls_key_file.*chmod 600"):
        CoreSettings.load(stages="api", pseudonym_secret_file=_secret(tmp_path), **door, **audit, **tls)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stages": "verifier"}, "setting root_public_key_hex='' (CONSENT_ROOT_PUBLIC_KEY_HEX) is invalid: the "
         "verifier stage needs it"),
        ({"stages": "verifier", "root_public_key_hex": "abc"}, "setting root_public_key_hex='abc' "
         "(CONSENT_ROOT_PUBLIC_KEY_HEX) is invalid: not a 32-byte key in hex"),
        ({"stages": "api", "insecure_http": "1"}, "setting pseudonym_secret_file='' "
         "(CONSENT_PSEUDONYM_SECRET_FILE) is invalid: the api "
         "stage needs it; create one with `openssl rand -hex 32`"),
        ({"stages": "api", "pseudonym_secret_file": "/nonexistent/secret"}, "setting "
         "pseudonym_secret_file='/nonexistent/secret' (CONSENT_PSEUDONYM_SECRET_FILE): cannot read a hex secret"),
        ({"stages": "reconciler", "http_port": "70000"}, "setting http_port=70000 (CONSENT_HTTP_PORT) is invalid: "
         "expected a TCP port 0-65535"),
        ({"stages": "reconciler", "mqtt_port": "0"}, "setting mqtt_port=0 (CONSENT_MQTT_PORT) is invalid: expected a "
         "TCP port 1-65535"),
        ({"stages": "reconciler", "audit_checkpoint_every": "0"}, "setting audit_checkpoint_every=0 "
         "(CONSENT_AUDIT_CHECKPOINT_EVERY) is invalid: expected a positive number"),
        ({"stages": "reconciler", "audit_answer_after": "commit"}, "setting audit_answer_after='commit' "
         "(CONSENT_AUDIT_ANSWER_AFTER) is invalid: choose one of request, append"),
        ({"stages": "mirror", "registrations_file": "/nonexistent.csv"}, "setting "
         "registrations_file='/nonexistent.csv' (CONSENT_REGISTRATIONS_FILE): cannot read registrations file"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_refused_at_load_naming_the_setting_and_value(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        CoreSettings.load(None, **overrides)


def test_a_short_pseudonym_secret_and_a_bad_audit_key_are_both_reported_in_one_error(tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    write_secret(key, b"11" * 5)
    with pytest.raises(SettingsError) as caught:
        CoreSettings.load(
            stages="api",
            pseudonym_secret_file=_secret(tmp_path, 8),
            audit_key_file=str(key),
            insecure_http=True,
            **core_tls(tmp_path, ("api",)),
        )
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert "pseudonym_secret_file" in lines[0]
    assert "holds 8 bytes, need 32+" in lines[0]
    assert lines[1].startswith(f"setting audit_key_file={str(key)!r} (CONSENT_AUDIT_KEY_FILE) is invalid")
    assert "ab" * 8 not in str(caught.value)  # the secret itself is never echoed


def test_settings_built_directly_are_validated_too(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="root_public_key_hex"):
        CoreSettings(stages=("verifier",))
    with pytest.raises(SettingsError, match="tls_ca_file"):
        CoreSettings(stages=("verifier",), root_public_key_hex=ROOT_HEX)
    with pytest.raises(SettingsError, match=r"pseudonym_secret_file='' .*the verifier stage needs it"):
        CoreSettings(stages=("verifier",), root_public_key_hex=ROOT_HEX, kafka_security="PLAINTEXT")
    secret = _secret(tmp_path)
    plain = CoreSettings(
        stages=("verifier",), root_public_key_hex=ROOT_HEX, kafka_security="PLAINTEXT", pseudonym_secret_file=secret
    )
    assert plain.kafka_connection("verifier").security_protocol == "PLAINTEXT"


def test_each_stage_talks_tls_as_its_own_principal(tmp_path: Path) -> None:
    tls = core_tls(tmp_path, ("verifier",))
    settings = CoreSettings(
        stages=("verifier",), root_public_key_hex=ROOT_HEX, pseudonym_secret_file=_secret(tmp_path), **tls
    )
    conn = settings.kafka_connection("verifier")
    assert (conn.security_protocol, Path(conn.cert_file).parent.name) == ("SSL", "core.verifier")
    Path(conn.key_file).chmod(0o644)
    with pytest.raises(SettingsError, match=r"core\.verifier private key"):
        CoreSettings(stages=("verifier",), root_public_key_hex=ROOT_HEX, **tls)


def test_the_bridge_stage_needs_the_root_key_and_a_core_signing_key(tmp_path: Path) -> None:
    tls = core_tls(tmp_path, ("bridge",))
    with pytest.raises(SettingsError) as caught:
        CoreSettings.load(stages="bridge", **tls)
    message = str(caught.value)
    assert "root_public_key_hex='' (CONSENT_ROOT_PUBLIC_KEY_HEX) is invalid: the bridge stage needs it" in message
    assert "core_signing_key_file='' (CONSENT_CORE_SIGNING_KEY_FILE) is invalid: the bridge stage signs" in message
    key = tmp_path / "core-signing.key"
    write_secret(key, b"22" * 31)
    with pytest.raises(SettingsError, match=r"setting core_signing_key_file='.*' .* not a 32-byte key"):
        CoreSettings.load(stages="bridge", root_public_key_hex=ROOT_HEX, core_signing_key_file=str(key), **tls)
    write_secret(key, b"22" * 32 + b"\n")
    settings = CoreSettings.load(stages="bridge", root_public_key_hex=ROOT_HEX, core_signing_key_file=str(key), **tls)
    assert settings.core_signing_key_file == str(key)
