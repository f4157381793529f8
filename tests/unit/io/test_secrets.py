from __future__ import annotations

from pathlib import Path

import pytest

from consent_io.secrets import SecretFileError, read_secret, write_secret


def test_a_secret_written_is_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "k" / "token"
    write_secret(path, b"s3cret\n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_secret(path, "API token") == b"s3cret"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_secret_others_can_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token"
    write_secret(path, b"s3cret")
    path.chmod(mode)
    with pytest.raises(SecretFileError, match=f"mode {oct(mode)}.*chmod 600"):
        read_secret(path, "API token")


def test_a_short_or_missing_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    write_secret(path, b"abc")
    with pytest.raises(SecretFileError, match="3 bytes; at least 32"):
        read_secret(path, "pseudonym secret", min_bytes=32)
    with pytest.raises(SecretFileError, match="cannot read"):
        read_secret(tmp_path / "absent", "API token")
