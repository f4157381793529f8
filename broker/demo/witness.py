"""The demo's audit witness: ``consent-broker witness run`` as its own process, with its own key and state file."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

from broker.audit.keyfile import generate_key_file, load_signer
from broker.audit.note import ALG_COSIGNATURE, ALG_ED25519, Verifier
from broker.demo.narration import say
from broker.demo.stack import free_port
from broker.infra.local import LocalDeployment

__all__ = ["DemoWitness"]

_NAME = "demo-witness-1"
_READY_S = 60.0  # a CLI process starts in a few seconds; generous on a loaded 2-core machine


@dataclass
class DemoWitness:
    proc: asyncio.subprocess.Process
    url: str
    key: Verifier
    log_key: Verifier

    @classmethod
    async def start(cls, deployment: LocalDeployment, work: Path, origin: str, log_key_file: Path) -> DemoWitness:
        log_key = load_signer(log_key_file, origin, ALG_ED25519, "audit_key_file").verifier
        pki = deployment.infra.pki
        files = pki.issue(_NAME, server=True)
        key_file = work / "witness" / "witness.key"
        if key_file.exists():
            key_file.unlink()
        key = generate_key_file(key_file, _NAME, ALG_COSIGNATURE).verifier
        port = free_port()
        cli = str(Path(sys.executable).with_name("consent-broker"))
        proc = await asyncio.create_subprocess_exec(
            cli, "witness", "run", "--name", _NAME, "--key-file", str(key_file),
            "--state-file", str(work / "witness" / "state.json"), "--log-key", log_key.vkey(), "--allow", "core.api",
            "--port", str(port), "--tls-ca", str(pki.ca_file), "--tls-cert", str(files.cert_file),
            "--tls-key", str(files.key_file), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        witness = cls(proc, f"https://127.0.0.1:{port}", key, log_key)
        await witness._wait_open(port)
        say(f"  - The audit log key was generated for this demo at {log_key_file} (mode 0600); auditors pin")
        say(f"    {log_key.vkey()}")
        say(f"  - An audit witness runs as its own process ({witness.url}, its own key and state file); every")
        say("    audit checkpoint is published only once it has cosigned it.")
        return witness

    async def _wait_open(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_S
        while loop.time() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"the demo witness exited with status {self.proc.returncode}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the demo witness did not open port {port} within {_READY_S:.0f}s")

    @property
    def setting(self) -> str:
        return f"{self.url} {self.key.vkey()}"

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
