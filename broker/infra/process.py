"""Start, find and stop background service processes with pid files (no daemon manager needed)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = [
    "EPHEMERAL_PORTS",
    "PortBusyError",
    "is_running",
    "kill",
    "port_bindable",
    "port_open",
    "send_signal",
    "start_detached",
    "stop",
    "wait_for_port",
    "wait_port_free",
]

# Linux's default ephemeral range (/proc/sys/net/ipv4/ip_local_port_range): an outgoing connection may take
# any of these as its local port, so a service restarted on one may find it taken (issue 13, item 5).
EPHEMERAL_PORTS = range(32768, 61000)
BIND_WAIT_S = 30.0  # how long a start waits for its port to come free (TIME_WAIT, a dying previous process)
BIND_POLL_S = 0.5


class PortBusyError(OSError):
    """A service's port stayed taken: the message names the port and what to do."""


def port_bindable(port: int, host: str = "127.0.0.1") -> bool:
    """True if a listener could bind ``host:port`` now (with SO_REUSEADDR, as Kafka's and Mosquitto's do)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_port_free(port: int, what: str, timeout_s: float = BIND_WAIT_S) -> None:
    """Wait until ``port`` can be bound, retrying; raise :class:`PortBusyError` with a clear message if it cannot."""
    deadline = time.monotonic() + timeout_s
    while not port_bindable(port):
        if time.monotonic() >= deadline:
            hint = (
                f"; it lies in Linux's ephemeral range {EPHEMERAL_PORTS.start}-{EPHEMERAL_PORTS.stop - 1}, where "
                "outgoing connections take ports: choose one outside it"
                if port in EPHEMERAL_PORTS
                else "; stop what holds it (`ss -ltnp 'sport = :PORT'`) or choose another port".replace(
                    "PORT", str(port)
                )
            )
            raise PortBusyError(
                f"{what} cannot bind 127.0.0.1:{port}: address already in use after {timeout_s:.0f} s{hint}"
            )
        time.sleep(BIND_POLL_S)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout_s: float, alive: Path | None = None) -> bool:
    """Wait until ``port`` accepts connections; give up early if the process in ``alive`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        if alive is not None and not is_running(alive):
            return False
        time.sleep(0.2)
    return False


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def is_running(pid_file: Path) -> bool:
    """True if the pid in ``pid_file`` is alive and not a zombie."""
    pid = _read_pid(pid_file)
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_detached(argv: list[str], pid_file: Path, log_file: Path, cwd: Path) -> int:
    """Start ``argv`` in its own session (survives the caller), output to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(pid_file: Path, grace_s: float = 30.0) -> bool:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL the whole process group. True if it was running."""
    pid = _read_pid(pid_file)
    if pid is None or not is_running(pid_file):
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and is_running(pid_file):
        time.sleep(0.2)
    if is_running(pid_file):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.2)
    # reap if it was our child (it normally is not: start_new_session detaches it)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    pid_file.unlink(missing_ok=True)
    return True


def kill(pid_file: Path) -> None:
    """kill -9 the process group in ``pid_file`` at once (fault injection)."""
    pid = _read_pid(pid_file)
    if pid is not None and is_running(pid_file):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and is_running(pid_file):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def send_signal(pid_file: Path, sig: signal.Signals) -> bool:
    """Send ``sig`` to the process in ``pid_file``; False if it is not running."""
    pid = _read_pid(pid_file)
    if pid is None or not is_running(pid_file):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True
