"""How an operator command reaches Kafka: one set of options for every command (``--tls-dir`` or ``--insecure``).

A principal's folder holds ``cert.pem`` and ``key.pem`` (mode 0600), the CA is ``ca.pem`` beside the folder:
the layout ``consent-broker infra up`` writes (``.cache/infra/<name>/pki/operator``), which is the default
when it exists. ``--insecure`` talks plaintext to a stack started with ``infra up --insecure``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from broker.infra.manager import default_cache_dir
from consent_io.connection import KafkaConnection

__all__ = ["kafka_options"]

F = TypeVar("F", bound=Callable[..., Any])


def _default_tls_dir() -> str | None:
    local = default_cache_dir() / "infra" / "default" / "pki" / "operator"
    return str(local) if local.is_dir() else None


def connection(bootstrap: str, tls_dir: str | None, insecure: bool) -> KafkaConnection:
    if insecure:
        return KafkaConnection(bootstrap)
    if not tls_dir:
        raise click.UsageError(
            "Kafka needs the operator's credentials: --tls-dir <folder with cert.pem and key.pem, ca.pem beside it> "
            "(CONSENT_CLI_TLS_DIR), or --insecure for a plaintext stack"
        )
    folder = Path(tls_dir)
    ca = folder.parent / "ca.pem"
    return KafkaConnection(bootstrap, "SSL", str(ca), str(folder / "cert.pem"), str(folder / "key.pem"))


def kafka_options(command: F) -> F:
    """Add --bootstrap, --tls-dir and --insecure; the command receives ``conn: KafkaConnection``."""

    @click.option("--bootstrap", envvar="CONSENT_BOOTSTRAP", default="127.0.0.1:9092", show_default=True)
    @click.option("--tls-dir", envvar="CONSENT_CLI_TLS_DIR", default=_default_tls_dir, help="Principal folder.")
    @click.option("--insecure", is_flag=True, help="Plaintext Kafka (a stack started with --insecure).")
    @functools.wraps(command)
    def wrapper(*args: Any, bootstrap: str, tls_dir: str | None, insecure: bool, **kwargs: Any) -> Any:
        return command(*args, conn=connection(bootstrap, tls_dir, insecure), **kwargs)

    return wrapper  # type: ignore[return-value]
