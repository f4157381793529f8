"""The built wheel is the product: installed outside the checkout, it runs and decodes events.

Builds the wheel with pip (no new dependency) from a copy of the source, installs it with
``--no-deps`` into a fresh virtualenv in a temporary directory, and runs it from a temporary
working directory. The runtime dependencies come from the project's environment through a
``.pth`` line naming its site-packages: a plain path entry, so the editable install's finder
(activated by an ``import`` line in *its* ``.pth``) is not, and the test asserts that ``broker``
and ``consent_wire`` are imported from the new virtualenv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from broker import __version__
from consent_wire.avro_codec import encode_event
from consent_wire.codes import ObjectionAction, ObjectionKind
from consent_wire.model import Event, Objection

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[2]
# What a source copy leaves out: environments, caches and earlier builds (a stale build/ would leak
# modules that no longer exist into the wheel).
_NOT_SOURCE = shutil.ignore_patterns(
    ".venv", ".git", ".cache", "build", "dist", "bench", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)

DECODE = """
import sys
import broker, consent_wire
from consent_wire.avro_codec import decode_event
event = decode_event(bytes.fromhex(sys.argv[1]))
print(broker.__file__)
print(consent_wire.__file__)
print(event.event_id, type(event.payload).__name__, event.payload.kind.value)
"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv (outside the checkout) with only the built wheel installed; returns its bin/."""
    root = tmp_path_factory.mktemp("wheel")
    assert not root.resolve().is_relative_to(CHECKOUT)
    source, dist, venv = root / "src", root / "dist", root / "venv"
    shutil.copytree(CHECKOUT, source, ignore=_NOT_SOURCE)
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)], cwd=root)
    (wheel,) = dist.glob("consent_broker-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "-q", "--no-deps", str(wheel)], cwd=root)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib], cwd=root).strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_project_deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    return venv / "bin"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONPATH"] = ""
    return env


def test_installed_wheel_reports_its_version(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed / "consent-broker"), "--version"], cwd=tmp_path, env=_env())
    assert __version__ in out and "consent-broker" in out


def test_installed_wheel_runs_the_edge_agent(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed / "edge-agent"), "--help"], cwd=tmp_path, env=_env())
    assert "Usage:" in out


def test_installed_wheel_decodes_an_event_written_with_a_committed_older_schema(
    installed: Path, tmp_path: Path
) -> None:
    event = Event("ab" * 16, "agent-1", "A81001", 1, bytes(32), 1_790_000_000_000 << 16, 1_790_000_000_000,
                  "cd" * 16, Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, ()))  # fmt: skip
    data = encode_event(event, version=1)  # Event v1: the installed reader resolves it to the current version
    out = _run([str(installed / "python"), "-c", DECODE, data.hex()], cwd=tmp_path, env=_env()).splitlines()
    venv = installed.parent.resolve()
    assert Path(out[0]).resolve().is_relative_to(venv), out[0]
    assert Path(out[1]).resolve().is_relative_to(venv), out[1]
    assert out[2] == f"{'ab' * 16} Objection NDOP"
