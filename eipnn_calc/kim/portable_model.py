"""An eipnn model file as a KIM portable-model folder (CMakeLists.txt, parameter file,
model file), and its installation into a KIM collection."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..errors import ModelFileError
from ..model_file import ModelMetadata, read_metadata
from ..shipped import resolve_model
from .driver_build import DRIVER_NAME
from .errors import KIMExportError
from .kim_tools import collections_management

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

CMAKE_TEMPLATE = """\
# KIM portable model '{name}': an eipnn model file run by the eipnn KIM model driver.
# Written by eipnn-export-kim; install with
#   kim-api-collections-management install user <this folder>
cmake_minimum_required(VERSION 3.10)

list(APPEND CMAKE_PREFIX_PATH $ENV{{KIM_API_CMAKE_PREFIX_DIR}})
find_package(KIM-API-ITEMS 2.2 REQUIRED CONFIG)
kim_api_items_setup_before_project(ITEM_TYPE "portableModel")
project({name})
kim_api_items_setup_after_project(ITEM_TYPE "portableModel")

add_kim_api_model_library(
  NAME ${{PROJECT_NAME}}
  DRIVER_NAME "{driver}"
  PARAMETER_FILES {parameter_files}
)
"""

PERIODIC_IMAGES = ("fold", "evaluate")  # the driver's parameter of that name
PARAMETER_TEMPLATE = """\
# eipnn KIM driver parameters for '{name}'
# species: {species}; cutoff {cutoff} A x {layers} layers = influence distance {influence} A
model_file = {model_file}
device = {device}
# fold: padding particles that are periodic images run as edges to their owners;
# evaluate: as particles of their own (slower; what MPI domains always get)
periodic_images = {periodic_images}
"""


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise KIMExportError(
            f"'{name}' is not a valid KIM item name: use letters, digits and '_' only, not "
            "starting with a digit (e.g. 'Si_schnet')"
        )


def write_portable_model(
    model_path: str | os.PathLike,
    name: str,
    output_dir: str | os.PathLike = ".",
    embed: bool = True,
    device: str = "cpu",
    periodic_images: str = "fold",
) -> Path:
    """Write the portable-model folder ``output_dir/name`` and return its path.

    With ``embed`` (the default) the model file is copied into the folder and becomes part
    of the installed model; without it the parameter file points at the model file's
    absolute path, which must then stay where it is.
    """
    check_name(name)
    if periodic_images not in PERIODIC_IMAGES:
        raise KIMExportError(f"periodic_images must be one of {', '.join(PERIODIC_IMAGES)}, not '{periodic_images}'")
    try:
        model_path = resolve_model(model_path).resolve()
        metadata = read_metadata(model_path)
    except ModelFileError as err:
        raise KIMExportError(f"cannot export '{model_path}' to KIM: {err}") from err
    folder = Path(output_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    parameter_file = f"{name}.params"
    files = [parameter_file]
    if embed:
        model_file = f"{name}.pt"
        shutil.copyfile(model_path, folder / model_file)
        files.append(model_file)
    else:
        model_file = str(model_path)
    (folder / parameter_file).write_text(_parameters(name, metadata, model_file, device, periodic_images))
    quoted = " ".join(f'"{f}"' for f in files)
    (folder / "CMakeLists.txt").write_text(
        CMAKE_TEMPLATE.format(name=name, driver=DRIVER_NAME, parameter_files=quoted)
    )
    return folder


def _parameters(name: str, metadata: ModelMetadata, model_file: str, device: str, periodic_images: str) -> str:
    return PARAMETER_TEMPLATE.format(
        name=name,
        species=" ".join(metadata.species),
        cutoff=metadata.cutoff_angstrom,
        layers=metadata.num_layers,
        influence=metadata.cutoff_angstrom * metadata.num_layers,
        model_file=model_file,
        device=device,
        periodic_images=periodic_images,
    )


def install_portable_model(folder: str | os.PathLike, collection: str = "user") -> None:
    """Install (replacing an older version of the same name) into a KIM collection."""
    collections_management(["install", "--force", collection, str(Path(folder).resolve())])
