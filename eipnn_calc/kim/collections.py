"""A throw-away KIM collection: a user collection in a folder of one's choosing, plus the
eipnn driver in the environment collection, for tests and benchmarks that must not touch
``~/.kim-api``. Apply the returned variables to ``os.environ`` (or a subprocess's env)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .driver_build import build_driver
from .kim_tools import collections_info_path

COLLECTION_FOLDERS = ("model-drivers", "portable-models", "simulator-models")


def isolated_collection_environment(
    root: str | os.PathLike, driver_cache_dir: str | os.PathLike | None = None
) -> dict[str, str | None]:
    """Create a KIM user collection under ``root``, build (or reuse) the driver, and return
    the environment variables that make the KIM API use them."""
    root = Path(root).resolve()
    folders = [root / name for name in COLLECTION_FOLDERS]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    config = root / "kim-api-config"
    subprocess.run(
        [str(collections_info_path()), "write_config_file", str(config), *map(str, folders)],
        check=True,
        capture_output=True,
    )
    return {
        "KIM_API_CONFIGURATION_FILE": str(config),
        "KIM_API_MODEL_DRIVERS_DIR": str(build_driver(driver_cache_dir)),
        # None: unset, so no other environment collection leaks in.
        "KIM_API_PORTABLE_MODELS_DIR": None,
        "KIM_API_SIMULATOR_MODELS_DIR": None,
    }


def apply_environment(variables: dict[str, str | None], environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with ``variables`` set (None: removed)."""
    result = dict(environ)
    for name, value in variables.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result
