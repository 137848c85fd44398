"""Thin wrappers over the KIM API's command-line tools (Debian's libkim-api-dev)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .errors import KIMToolError

MANAGEMENT = "kim-api-collections-management"
# kim-api-collections-management finds this helper next to itself, under ../libexec.
INFO_RELATIVE = Path("..") / "libexec" / "kim-api" / "kim-api-collections-info"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KIMToolError(
            f"'{name}' not found on PATH: install the KIM API (Debian: apt-get install "
            "libkim-api-dev)"
        )
    return path


def collections_info_path() -> Path:
    management = Path(_tool(MANAGEMENT)).resolve()
    info = (management.parent / INFO_RELATIVE).resolve()
    if not info.exists():
        raise KIMToolError(f"kim-api-collections-info not found at '{info}'")
    return info


def collections_management(arguments: list[str]) -> str:
    """Run kim-api-collections-management with ``arguments``; its output, or an error."""
    command = [_tool(MANAGEMENT), *arguments]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise KIMToolError(
            f"'{' '.join(command)}' failed (exit {result.returncode}):\n"
            f"{result.stdout[-6000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def find_item(kind: str, name: str) -> str | None:
    """The collection ('user', 'system', ...) holding item ``name`` of ``kind``
    ('model_drivers' or 'portable_models'), or None when it is not installed."""
    result = subprocess.run(
        [str(collections_info_path()), kind, "find", name], capture_output=True, text=True
    )
    line = result.stdout.strip()
    return line.split()[0] if line else None
