"""Settings helpers of the API service: list sizes CSV and hex secret files."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.service_api import load_list_sizes, read_hex_file
from broker.settings import SettingsError


def test_list_sizes_csv_skips_the_header_and_reads_each_practice(tmp_path: Path) -> None:
    path = tmp_path / "sizes.csv"
    path.write_text("practice,list_size\nA81001,6000\n B82002 , 4100\n")
    assert load_list_sizes(str(path)) == {"A81001": 6000, "B82002": 4100}
    assert load_list_sizes(None) == {}


def test_secret_file_is_hex_as_openssl_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "secret.hex"
    path.write_text("00ff" * 16 + "\n")
    assert read_hex_file(str(path), "secret") == bytes.fromhex("00ff" * 16)
    path.write_text("not hex")
    with pytest.raises(SettingsError, match="cannot read secret"):
        read_hex_file(str(path), "secret")
    with pytest.raises(SettingsError):
        read_hex_file(str(tmp_path / "missing"), "secret")
