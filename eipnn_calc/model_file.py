"""The model file: one TorchScript archive holding the network and its metadata.

This file is the one contract between ``eipnn_training`` (which writes it) and the runtime
(which reads it). The metadata travels as a JSON document in the archive's extra files; its
schema is ``METADATA_SCHEMA`` below, and the network's part of the contract (its
``forward``) is ``forward_contract``. ``read_metadata`` checks the archive and the
metadata; ``load_model`` also checks the network against them.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from ase.data import chemical_symbols

from .errors import ModelFileError, ModelFormatVersionError

# 2: forward takes an optional sixth input, layer_edges (see training/models/potential.py);
# readers of format 2 still read format 1 files, and do not pass it to them.
# 3: forward also returns edge_gradients, dE/dr_e per given edge (inputs as in format 2);
# the KIM driver folds periodic padding particles only for files of format 3 on.
FORMAT_VERSION = 3
METADATA_NAME = "eipnn_metadata.json"
# The dtypes a model file may declare and EIPNNCalculator / the KIM driver run a model in.
DTYPES = {"float32": torch.float32, "float64": torch.float64}
UNITS = {"energy": "eV", "length": "Angstrom"}  # the runtime converts no units
ELEMENTS = frozenset(chemical_symbols[1:])  # [0] is "X", ASE's placeholder, not an element
# The metadata's cutoff is a JSON copy of the network's float: it may differ in the last bit.
CUTOFF_RELATIVE_TOLERANCE = 1e-9
REEXPORT = "re-export the model with `eipnn-export`"
# What zipfile raises on a damaged archive: bad headers, CRC mismatch, bad deflate stream,
# a file name that differs from the central directory's, a read past the end.
DAMAGED_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


@dataclass
class ModelMetadata:
    """Everything a consumer needs to run a model file.

    ``species`` is ordered: the model's integer species index ``k`` means ``species[k]``.
    ``num_layers`` is the number of message-passing steps, so the receptive field of one
    atom reaches ``cutoff_angstrom * num_layers`` (the ghost region KIM/LAMMPS must supply).
    """

    species: list[str]
    cutoff_angstrom: float
    num_layers: int
    dtype: str
    model: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


# ---------------------------------------------------------------- the metadata schema
# One check per field, on the value as json.loads decoded it: None when valid, else what
# is wrong with it, in words that quote the file. Python's bool is an int, so booleans are
# refused explicitly (JSON true would pass as the integer 1).


def _json(value: Any) -> str:
    """``value`` as the metadata file spells it ("Si", null, Infinity), cut to one line."""
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_format_version(value: Any) -> Optional[str]:
    if not _is_integer(value) or value < 1:
        return f"{_json(value)} is not an integer >= 1"
    return None


def _check_species(value: Any) -> Optional[str]:
    if not isinstance(value, list) or not value:
        return f'{_json(value)} is not a non-empty list of chemical symbols (such as ["Si", "C"])'
    unknown = [item for item in value if not (isinstance(item, str) and item in ELEMENTS)]
    if unknown:
        return f"{_json(value)} holds {', '.join(map(_json, unknown))}: not a chemical symbol"
    repeated = sorted({item for item in value if value.count(item) > 1})
    if repeated:
        return (
            f"{_json(value)} lists {', '.join(repeated)} more than once (a species' position "
            "in the list is the model's index for it)"
        )
    return None


def _check_cutoff(value: Any) -> Optional[str]:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        return f"{_json(value)} is not a finite number of Å > 0"
    return None


def _check_num_layers(value: Any) -> Optional[str]:
    if not _is_integer(value) or value < 1:
        return f"{_json(value)} is not an integer >= 1 (the number of message-passing layers)"
    return None


def _check_dtype(value: Any) -> Optional[str]:
    if value not in DTYPES:
        return f"{_json(value)} is not a dtype the runtime runs ({', '.join(DTYPES)})"
    return None


def _check_units(value: Any) -> Optional[str]:
    if value != UNITS:
        return f"{_json(value)} is not {_json(UNITS)}: the runtime converts no units"
    return None


def _check_mapping(value: Any) -> Optional[str]:
    if not isinstance(value, dict):
        return f"{_json(value)} is not a JSON object"
    return None


FieldCheck = Callable[[Any], Optional[str]]
METADATA_SCHEMA: dict[str, FieldCheck] = {
    "format_version": _check_format_version,
    "species": _check_species,
    "cutoff_angstrom": _check_cutoff,
    "num_layers": _check_num_layers,
    "dtype": _check_dtype,
    "units": _check_units,
    "model": _check_mapping,
    "versions": _check_mapping,
    "provenance": _check_mapping,
}
REQUIRED_KEYS = tuple(METADATA_SCHEMA)  # every field is required


# ---------------------------------------------------------------- the network's contract


@dataclass(frozen=True)
class ForwardInput:
    """One input of the network's ``forward``: its name, its TorchScript type, and whether
    it must default to None (inputs that callers may leave out)."""

    name: str
    type: str
    defaults_to_none: bool = False

    def __str__(self) -> str:
        return f"{self.name}: {self.type}" + (" = None" if self.defaults_to_none else "")


FORMAT_1_ARGUMENTS = tuple(
    ForwardInput(name, "Tensor")
    for name in ("positions", "species", "edge_index", "edge_shift", "node_mask")
)
FORMAT_2_ARGUMENTS = FORMAT_1_ARGUMENTS + (ForwardInput("layer_edges", "Optional[Tensor]", True),)
FORWARD_RETURNS = "Dict[str, Tensor]"


def forward_contract(format_version: int) -> tuple[ForwardInput, ...]:
    """The inputs (after ``self``) that a network of ``format_version`` must take."""
    return FORMAT_2_ARGUMENTS if format_version >= 2 else FORMAT_1_ARGUMENTS


def _signature(arguments: tuple[ForwardInput, ...]) -> str:
    return f"forward(self, {', '.join(map(str, arguments))}) -> {FORWARD_RETURNS}"


def _forward_problem(schema: Any, expected: tuple[ForwardInput, ...]) -> Optional[str]:
    """What is wrong with a ``torch._C.FunctionSchema`` of forward, or None."""
    actual = schema.arguments[1:]  # [0] is self
    if len(actual) < len(expected):
        return f"it takes {len(actual)} inputs, not {len(expected)}"
    for want, have in zip(expected, actual):
        if have.name != want.name or str(have.type) != want.type:
            return f"its input '{have.name}: {have.type}' should be '{want.name}: {want.type}'"
        if want.defaults_to_none and not (have.has_default_value() and have.default_value is None):
            return f"its input '{have.name}' has no default None (callers may leave it out)"
    for extra in actual[len(expected):]:
        if not extra.has_default_value():
            return f"its extra input '{extra.name}' has no default (callers never pass it)"
    returns = [str(output.type) for output in schema.returns]
    if returns != [FORWARD_RETURNS]:
        return f"it returns {', '.join(returns) or 'nothing'}, not {FORWARD_RETURNS}"
    return None


def _check_forward(module: torch.jit.ScriptModule, metadata: ModelMetadata, path: Path) -> None:
    expected = forward_contract(metadata.format_version)
    # A scripted module without forward raises AttributeError, which getattr turns into None.
    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is None:
        problem, found = "it has no scripted forward method", "none"
    else:
        problem, found = _forward_problem(schema, expected), str(schema)
    if problem is not None:
        raise ModelFileError(
            f"the network in '{path}' does not have the forward of model format "
            f"{metadata.format_version}: {problem}. Expected {_signature(expected)}, found "
            f"{found}; {REEXPORT}, which scripts eipnn_training's Potential"
        )


def _network_attribute(module: torch.nn.Module, *names: str) -> Any:
    """``module.names[0].names[1]...``, or None where the scripted network lacks one."""
    for name in names:
        # hasattr is safe on a ScriptModule: a missing attribute raises AttributeError.
        if not hasattr(module, name):
            return None
        module = getattr(module, name)
    return module


def _check_network_matches(
    module: torch.jit.ScriptModule, metadata: ModelMetadata, path: Path
) -> None:
    """The metadata describes this network: the cutoff and the number of layers that
    neighbour lists and KIM ghost shells are built from are the network's own. Networks
    that do not expose them (not a Potential) are taken at their metadata's word."""
    cutoff = _network_attribute(module, "cutoff")
    if _is_number(cutoff) and not math.isclose(
        cutoff, metadata.cutoff_angstrom, rel_tol=CUTOFF_RELATIVE_TOLERANCE
    ):
        raise ModelFileError(
            f"the metadata of '{path}' says cutoff_angstrom {metadata.cutoff_angstrom} but its "
            f"network cuts edges at {cutoff} Å: the metadata was edited or belongs to another "
            f"network; {REEXPORT}"
        )
    layers = _network_attribute(module, "representation", "num_layers")
    if _is_integer(layers) and layers != metadata.num_layers:
        raise ModelFileError(
            f"the metadata of '{path}' says num_layers {metadata.num_layers} but its network has "
            f"{layers} message-passing layers: the metadata was edited or belongs to another "
            f"network; {REEXPORT}"
        )


# ---------------------------------------------------------------- save and load


def _current_versions() -> dict[str, str]:
    from . import __version__

    return {"torch": torch.__version__, "eipnn": __version__}


def save_model(module: torch.jit.ScriptModule, path: str | os.PathLike, metadata: ModelMetadata) -> None:
    """Write a scripted model and its metadata to ``path``."""
    if not isinstance(module, torch.jit.ScriptModule):
        raise TypeError("save_model needs a scripted module: pass torch.jit.script(model)")
    metadata.versions = {**_current_versions(), **metadata.versions}
    metadata.format_version = FORMAT_VERSION
    torch.jit.save(module, str(path), _extra_files={METADATA_NAME: metadata.to_json()})


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read and validate the metadata of a model file without loading the network."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: '{path}'")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"'{path}' is not a TorchScript file (not a zip archive, or one cut short, e.g. "
            "by an interrupted copy); export a trained model with `eipnn-export` first, or "
            "copy the file again"
        )
    return _parse_metadata(_read_metadata_entry(path), path)


def _read_metadata_entry(path: Path) -> bytes:
    """The metadata JSON of the archive at ``path``, once every entry's checksum is checked:
    torch.jit.load checks none, and would run a network whose weights were damaged."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            names = [n for n in archive.namelist() if n.endswith("/extra/" + METADATA_NAME)]
            raw = archive.read(names[0]) if damaged is None and names else None
    except DAMAGED_ZIP_ERRORS as err:
        raise ModelFileError(
            f"'{path}' is a damaged zip archive ({type(err).__name__}: {err}); copy the file "
            f"again, or {REEXPORT}"
        ) from err
    if damaged is not None:
        raise ModelFileError(
            f"'{path}' is damaged: its entry '{damaged}' does not match its zip checksum "
            f"(bytes changed after it was written); copy the file again, or {REEXPORT}"
        )
    if raw is None:
        raise ModelFileError(
            f"'{path}' is a TorchScript/zip file but not an eipnn model: "
            f"it has no '{METADATA_NAME}' (was it written by eipnn's save_model?)"
        )
    return raw


def _decode_metadata(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise ModelFileError(
            f"the metadata of '{path}' is not valid JSON: {err}; {REEXPORT}"
        ) from err
    if not isinstance(data, dict):
        raise ModelFileError(
            f"the metadata of '{path}' is {_json(data)}, not a JSON object of fields; {REEXPORT}"
        )
    return data


def _check_format_version_of(data: dict[str, Any], path: Path) -> None:
    """First, since a newer format may have other fields: 'upgrade' is then the answer."""
    if "format_version" not in data:
        return  # reported with the other missing fields
    version = data["format_version"]
    problem = _check_format_version(version)
    if problem is not None:
        raise ModelFileError(
            f"the metadata of '{path}' has an invalid format_version: {problem}; {REEXPORT}"
        )
    if version > FORMAT_VERSION:
        raise ModelFormatVersionError(
            f"'{path}' has model format version {version}, newer than this eipnn reads "
            f"({FORMAT_VERSION}); upgrade eipnn"
        )


def _parse_metadata(raw: bytes, path: Path) -> ModelMetadata:
    data = _decode_metadata(raw, path)
    _check_format_version_of(data, path)
    missing = [key for key in METADATA_SCHEMA if key not in data]
    if missing:
        raise ModelFileError(f"the metadata of '{path}' lacks {', '.join(missing)}; {REEXPORT}")
    problems = [
        f"{name}: {problem}"
        for name, check in METADATA_SCHEMA.items()
        if (problem := check(data[name])) is not None
    ]
    if problems:
        raise ModelFileError(
            f"the metadata of '{path}' is invalid: {'; '.join(problems)}; {REEXPORT}"
        )
    # Fields a newer writer of this format added are ignored, not refused.
    known = {key: data[key] for key in ModelMetadata.__dataclass_fields__ if key in data}
    known["cutoff_angstrom"] = float(known["cutoff_angstrom"])  # JSON may hold 5 for 5.0
    return ModelMetadata(**known)


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load a model file: the scripted network (in eval mode) and its validated metadata,
    after checking that the network has the format's forward and the metadata's cutoff
    and number of layers."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        module = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError, OSError) as err:
        raise ModelFileError(
            f"'{path}' could not be loaded as TorchScript by torch {torch.__version__}: {err}; "
            f"copy the file again, or {REEXPORT}"
        ) from err
    _check_forward(module, metadata, path)
    _check_network_matches(module, metadata, path)
    module.eval()
    return module, metadata
