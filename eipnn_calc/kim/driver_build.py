"""Building and installing the eipnn KIM model driver (the C++ sources in ``driver/``).

The driver links the libtorch inside the installed torch wheel, so a build is only valid
for one torch install: builds are keyed by a hash of the driver sources and the torch
version and location, and a cached build is reused when the key matches.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from .errors import KIMBuildError
from .kim_tools import collections_management, find_item

DRIVER_NAME = "eipnn_model_driver"
DRIVER_LIBRARY = "libkim-api-model-driver.so"
SOURCE_DIR = Path(__file__).parent / "driver"
BUILD_INFO_NAME = "eipnn-driver-build.txt"
DEFAULT_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "eipnn" / "kim-driver"


def torch_cmake_dir() -> Path:
    """The folder holding TorchConfig.cmake inside the installed torch wheel."""
    return Path(torch.utils.cmake_prefix_path) / "Torch"


def source_files() -> list[Path]:
    return sorted(p for p in SOURCE_DIR.iterdir() if p.suffix in {".cpp", ".hpp", ".txt"})


def build_key() -> str:
    """Hash of everything a driver build depends on: sources, torch version and location."""
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{torch.__version__}\0{torch_cmake_dir()}".encode())
    return digest.hexdigest()[:16]


def stage_driver_sources(destination: str | os.PathLike) -> Path:
    """Copy the driver sources to ``destination`` with the torch location filled in,
    ready for CMake or ``kim-api-collections-management install``."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for path in source_files():
        shutil.copy2(path, destination / path.name)
    (destination / "torch-location.cmake").write_text(
        f'set(Torch_DIR "{torch_cmake_dir()}")\n'
    )
    (destination / BUILD_INFO_NAME).write_text(
        f"eipnn driver build key {build_key()}; torch {torch.__version__}\n"
    )
    return destination


def _run(command: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise KIMBuildError(
            f"{what} failed ({' '.join(command)}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )


def build_driver(cache_dir: str | os.PathLike | None = None, jobs: int = 2) -> Path:
    """Build the driver into ``cache_dir`` (once per build key) and return the folder to use
    as a KIM model-drivers directory (e.g. ``KIM_API_MODEL_DRIVERS_DIR``)."""
    root = Path(cache_dir or DEFAULT_CACHE_DIR).resolve() / build_key()
    drivers_dir = root / "model-drivers"
    library = drivers_dir / DRIVER_NAME / DRIVER_LIBRARY
    root.mkdir(parents=True, exist_ok=True)
    # One build at a time per key: parallel test sessions wait for the first one.
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not library.exists():
            _compile_and_install(root, drivers_dir, jobs)
    return drivers_dir


def _compile_and_install(root: Path, drivers_dir: Path, jobs: int) -> None:
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        source = stage_driver_sources(Path(scratch) / "source")
        build = Path(scratch) / "build"
        build.mkdir()
        _run(
            [
                "cmake",
                str(source),
                "-DKIM_API_INSTALL_COLLECTION=ENVIRONMENT",
                f"-DKIM_API_MODEL_DRIVER_INSTALL_PREFIX={drivers_dir}",
            ],
            build,
            "configuring the eipnn KIM driver",
        )
        _run(["cmake", "--build", ".", f"-j{jobs}"], build, "compiling the eipnn KIM driver")
        _run(["cmake", "--install", "."], build, "installing the eipnn KIM driver")


def install_driver(collection: str = "user", reinstall: bool = False) -> bool:
    """Install the driver into a KIM collection with kim-api-collections-management.

    Returns False (and does nothing) when a driver of that name is already installed in any
    collection and ``reinstall`` is False; compiling it takes a few minutes.
    """
    if find_item("model_drivers", DRIVER_NAME) and not reinstall:
        return False
    with tempfile.TemporaryDirectory() as scratch:
        source = stage_driver_sources(Path(scratch) / DRIVER_NAME)
        options = ["--force"] if reinstall else []
        collections_management(["install", *options, collection, str(source)])
    return True
