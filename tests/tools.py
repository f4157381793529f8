"""Where the independent checkers installed by ``tools/install-*.sh`` live (see tools/README.md)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = ROOT / ".cache" / "tools"


def tool_path(name: str, relative: str | None = None) -> Path:
    """The installed tool ``name`` (``relative`` inside its folder, default ``bin/<name>``).

    A missing tool is an error naming the script that installs it: checks never skip silently.
    """
    path = TOOLS_DIR / name / (relative or f"bin/{name}")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make tools` (tools/install-{name}.sh)")
    return path
