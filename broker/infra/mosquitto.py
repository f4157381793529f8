"""A real Mosquitto broker on loopback, installed from Debian's packages when missing."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from broker.infra import process
from broker.infra.errors import InfraError
from consent_wire.signing import MAX_BATCH_BYTES

__all__ = ["MAX_PACKET_SIZE", "MESSAGE_SIZE_LIMIT", "MosquittoService", "MosquittoTls", "ensure_installed", "version"]

READY_TIMEOUT_S = 15.0
# The largest MQTT payload accepted: the largest signed batch, which fits one Kafka record with its key.
MESSAGE_SIZE_LIMIT = MAX_BATCH_BYTES
# The largest MQTT packet: that payload plus the fixed header (5), a topic (consent/ingress/ + 64-character
# agent id, 2-byte length), a packet id (2) and MQTT v5 properties; 4 KiB is ample.
MAX_PACKET_SIZE = MESSAGE_SIZE_LIMIT + 4096

CONFIG = """\
# Written by consent-broker infra; edit the template in broker/infra/mosquitto.py.
# Loopback only: agents on other hosts use the production config in deploy/mosquitto.conf.
listener {port} 127.0.0.1
{security}
# Persistent sessions and QoS 1 messages survive a broker restart.
persistence true
persistence_location {data}/
autosave_interval 1
max_queued_messages 100000
max_inflight_messages 100
# Below what the bridge can forward to Kafka in one record (consent_wire.signing.MAX_BATCH_BYTES):
# a bigger payload is refused here, at the door, rather than dead-lettered OVERSIZE by the bridge.
message_size_limit {message_limit}
max_packet_size {packet_limit}
log_dest stdout
log_type error
log_type warning
user {user}
"""


def debug_anonymous(insecure_debug: bool) -> str:
    """The directive of a stack without TLS: anonymous plaintext MQTT only when the explicit debug flag is set
    (`infra up --insecure`, CONSENT_INFRA_SECURE=0 -> insecure_debug=True); without it, anonymous clients are
    refused. Every other stack gets SECURE below, and a service without TLS and without the flag refuses to start.
    """
    return f"allow_anonymous {'true' if insecure_debug else 'false'}"


# Mutual TLS: every client presents a certificate from the deployment's CA and its CN is its username, which
# the ACL file (generated from broker/infra/acls.py) authorises topic by topic.
SECURE = """\
cafile {ca}
certfile {cert}
keyfile {key}
require_certificate true
use_identity_as_username true
allow_anonymous false
acl_file {acl}"""


@dataclass(frozen=True, slots=True)
class MosquittoTls:
    ca_file: Path
    cert_file: Path  # the server's certificate (SAN 127.0.0.1, localhost)
    key_file: Path
    acl_file: Path

    def config(self) -> str:
        return SECURE.format(ca=self.ca_file, cert=self.cert_file, key=self.key_file, acl=self.acl_file)


def ensure_installed() -> str:
    """Return the mosquitto binary, installing Debian's package when it is missing and we may."""
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env)
        result = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "mosquitto"],
            check=False,
            capture_output=True,
            text=True,
            env=env,
        )
        if result.returncode == 0 and Path("/usr/sbin/mosquitto").exists():
            return "/usr/sbin/mosquitto"
    raise InfraError("Mosquitto not found: install it with 'sudo apt-get install -y mosquitto' (Debian/Ubuntu)")


def version(binary: str) -> str:
    result = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0] if first else "unknown"


class MosquittoService:
    def __init__(self, directory: Path, port: int, tls: MosquittoTls | None, *, insecure_debug: bool = False) -> None:
        if tls is None and not insecure_debug:
            raise InfraError("Mosquitto without TLS needs the explicit debug flag (infra up --insecure)")
        self.directory = directory
        self.port = port
        self.tls = tls
        self.insecure_debug = insecure_debug
        self.pid_file = directory / "mosquitto.pid"
        self.log_file = directory / "mosquitto.out"

    def start(self) -> None:
        binary = ensure_installed()
        if process.is_running(self.pid_file):
            return
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "mosquitto.conf"
        security = self.tls.config() if self.tls else debug_anonymous(self.insecure_debug)
        conf.write_text(self.config_text(data, security))
        try:
            process.wait_port_free(self.port, "Mosquitto")
        except process.PortBusyError as exc:
            raise InfraError(str(exc)) from exc
        process.start_detached([binary, "-c", str(conf)], self.pid_file, self.log_file, self.directory)
        if not process.wait_for_port(self.port, READY_TIMEOUT_S, alive=self.pid_file):
            tail = self.log_file.read_text(errors="replace").strip().splitlines()[-3:]
            raise InfraError(f"Mosquitto did not start on 127.0.0.1:{self.port}: {' | '.join(tail)}")

    def config_text(self, data: Path, security: str) -> str:
        return CONFIG.format(
            port=self.port,
            security=security,
            data=data,
            user=getpass.getuser(),
            message_limit=MESSAGE_SIZE_LIMIT,
            packet_limit=MAX_PACKET_SIZE,
        )

    def reload(self) -> None:
        """Make a running Mosquitto re-read its ACL file (SIGHUP); nothing to do when it is not running."""
        process.send_signal(self.pid_file, signal.SIGHUP)

    def stop(self) -> bool:
        return process.stop(self.pid_file, grace_s=10.0)

    def running(self) -> bool:
        return process.is_running(self.pid_file) and process.port_open(self.port)
