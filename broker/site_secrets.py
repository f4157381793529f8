"""Site pseudonym secrets: the operator derives each site's from the national secret (issue 12 item 11).

The national pseudonym secret (``pseudonym_secret_file``, hex, mode 0600) stays in the core. A site's
agent gets only its own secret, :func:`consent_wire.site_pseudonyms.site_secret` for its ODS code,
written hex-encoded with mode 0600 (``consent-broker keys site-secret``; :class:`broker.infra.local.
LocalDeployment` for the demo and the tests), as its ``pseudonym_secret_file``.
"""

from __future__ import annotations

from pathlib import Path

from consent_io.secrets import read_secret, write_secret
from consent_wire.identity import MIN_SECRET_BYTES
from consent_wire.site_pseudonyms import site_secret

__all__ = ["read_national_secret", "write_site_secret"]


def read_national_secret(path: Path) -> bytes:
    """The national secret, hex in a mode-0600 file; ValueError (or SecretFileError) saying what is wrong."""
    text = read_secret(path, "national pseudonym secret").decode("ascii", "replace").strip()
    secret = bytes.fromhex(text)
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the national pseudonym secret in {path} is {len(secret)} bytes, need {MIN_SECRET_BYTES}+")
    return secret


def write_site_secret(national: bytes, site: str, out: Path) -> None:
    """Write ``site``'s pseudonym secret, hex-encoded, to ``out`` with mode 0600 from the start."""
    write_secret(out, site_secret(national, site).hex().encode("ascii") + b"\n")
