"""The core under test as OS processes (``python -m broker run``), so CPU time per stage comes from /proc."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CoreEnv", "CoreProcess", "cpu_seconds", "free_port", "wait_assigned"]

_ASSIGNED = re.compile(r"stage=(\w+) assigned=\[([\d, ]*)\]")
_STARTED = re.compile(r"ts=(\S+ \S+) level=INFO logger=broker.runtime msg=core started")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_S = 30.0  # the core finishes its batch and commits on SIGTERM (broker/runtime.py)


# Above Linux's ephemeral range (32768-60999): a port picked there cannot be taken by some client's outgoing
# connection between the pick and the listener's bind (seen: a bench's agent failing to bind at its start).
_FREE_PORTS = range(61000, 65000)


def free_port() -> int:
    """A port free now on 127.0.0.1, outside the ephemeral range (see _FREE_PORTS)."""
    for _ in range(200):
        port = random.choice(_FREE_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {_FREE_PORTS.start}-{_FREE_PORTS.stop - 1} after 200 tries")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class CoreEnv:
    bootstrap: str
    topic_prefix: str
    app_id: str
    root_public_key_hex: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    http_port: int = 0
    pseudonym_secret_file: str = ""
    core_signing_key_file: str = ""  # the core's key: signs the bridge's acks and the mirror's replica records
    core_public_key_hex: str = ""  # its public half, what agents verify with
    # CONSENT_* security settings (LocalDeployment.core_env: per-stage TLS; plaintext flags on the comparison stack)
    security: Mapping[str, str] = field(default_factory=dict)

    def environ(self, stages: tuple[str, ...]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.security)
        env.update(
            {
                "CONSENT_BOOTSTRAP": self.bootstrap,
                "CONSENT_TOPIC_PREFIX": self.topic_prefix,
                "CONSENT_APP_ID": self.app_id,
                "CONSENT_ROOT_PUBLIC_KEY_HEX": self.root_public_key_hex,
                "CONSENT_STAGES": ",".join(stages),
                "CONSENT_MQTT_HOST": self.mqtt_host,
                "CONSENT_MQTT_PORT": str(self.mqtt_port),
            }
        )
        if self.http_port:
            env["CONSENT_HTTP_PORT"] = str(self.http_port)
        if self.pseudonym_secret_file:
            env["CONSENT_PSEUDONYM_SECRET_FILE"] = self.pseudonym_secret_file
        if self.core_signing_key_file:
            env["CONSENT_CORE_SIGNING_KEY_FILE"] = self.core_signing_key_file
        return env


class CoreProcess:
    """One ``python -m broker -v run`` child; optionally under cProfile (written on SIGTERM exit)."""

    def __init__(
        self,
        env: CoreEnv,
        stages: tuple[str, ...],
        workdir: Path,
        name: str,
        profile: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.stages = stages
        self.metrics_port = free_port()
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.profile_path: Path | None = workdir / f"{name}.prof" if profile else None
        argv = [sys.executable]
        if self.profile_path is not None:
            argv += ["-m", "cProfile", "-o", str(self.profile_path)]
        argv += ["-m", "broker", "-v", "run"]  # the product's entry point, as shipped (consent_io.loop: uvloop)
        self._log = self.log_path.open("wb")
        environ = {**env.environ(stages), "CONSENT_METRICS_PORT": str(self.metrics_port), **(extra_env or {})}
        self.spawned_at = time.time()  # wall clock, as the core's log lines
        self.proc = subprocess.Popen(
            argv, env=environ, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def assigned(self) -> dict[str, set[int]]:
        """The latest partition assignment each stage of this process logged."""
        latest: dict[str, set[int]] = {}
        with contextlib.suppress(OSError):
            for match in _ASSIGNED.finditer(self.log_path.read_text(errors="replace")):
                parts = match.group(2).strip()
                latest[match.group(1)] = {int(p) for p in parts.split(",")} if parts else set()
        return latest

    def started_after(self) -> float | None:
        """Seconds from the spawn to the core's "core started" line (imports, settings, topics), if logged yet."""
        with contextlib.suppress(OSError):
            match = _STARTED.search(self.log_path.read_text(errors="replace"))
            if match is not None:
                stamp, millis = match.group(1).split(",")  # logging's asctime: local time, milliseconds
                logged = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
                return round(logged - self.spawned_at, 2)
        return None

    def group_churn(self) -> dict[str, int]:
        """Changelog restores and group rejoins this process logged, and what may explain the restores.

        A restore is due once per partition per assignment (``assigned_partitions``: the partitions of every
        assignment logged) and once per recovery after a failed transaction (``recoveries``); ``excess_restores``
        is whatever is left: a rebalance storm (issue 13: "at most one restore per assignment change") shows here.
        """
        text = ""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
        return churn_of(text)

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""

    def stop(self) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def wait_assigned(procs: list[CoreProcess], partitions: int, timeout_s: float) -> None:
    """Block until, for each of verifier and reconciler, the processes hold every partition exactly once."""
    deadline = time.monotonic() + timeout_s
    want = set(range(partitions))
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"core process {p.name} exited: {p.log_tail()}")
        ok = True
        for stage in ("verifier", "reconciler"):
            holders = [p.assigned().get(stage, set()) for p in procs if stage in p.stages]
            if not holders:
                continue
            union = set().union(*holders)
            ok = ok and all(holders) and union == want and sum(len(h) for h in holders) == partitions
        if ok:
            return
        time.sleep(0.2)
    raise TimeoutError(f"core stages not assigned all {partitions} partitions in {timeout_s:.0f}s")


def churn_of(log_text: str) -> dict[str, int]:
    """:meth:`CoreProcess.group_churn` from a core's log text."""
    restores = log_text.count(" restored=")
    # an assignment that failed part way (e.g. a broker killed meanwhile) explains the restores it did too
    assigned = sum(len(_partitions(m)) for m in re.findall(r" assign(?:ed|ment)=\[([0-9, ]*)\]", log_text))
    recoveries = log_text.count(" recovered in ") + log_text.count(" recovery timed out")
    return {
        "restores": restores,
        "rejoins": log_text.count("Heartbeat failed"),
        "assigned_partitions": assigned,
        "recoveries": recoveries,
        "excess_restores": max(0, restores - assigned - recoveries),
    }


def _partitions(listed: str) -> list[str]:
    return [p for p in listed.replace(" ", "").split(",") if p]
