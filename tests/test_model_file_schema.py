"""The model file's schema: a damaged archive, invalid metadata, or a network that does not
match its metadata or the format's forward is refused on load with a ModelFileError that
names the file, the field and what is wrong."""
from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path
from typing import Dict, Optional

import pytest
import torch

from eipnn_calc import EIPNNCalculator, ModelFileError, ModelFormatVersionError
from eipnn_calc import load_model, read_metadata
from eipnn_calc.model_file import FORMAT_VERSION, METADATA_NAME, ModelMetadata, save_model

# ---------------------------------------------------------------- edited copies of a model


def rewrite_entry(source: Path, target: Path, suffix: str, change) -> Path:
    """Copy a model archive, passing the bytes of the entry ending in ``suffix`` through
    ``change`` (zipfile writes fresh checksums: the copy is a sound zip)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename.endswith(suffix):
                data = change(data)
            new.writestr(item, data)
    return target


def rewrite_metadata(source: Path, target: Path, change) -> Path:
    """Copy a model archive, passing its decoded metadata JSON through ``change``."""
    encode = lambda data: json.dumps(change(json.loads(data))).encode()  # noqa: E731
    return rewrite_entry(source, target, METADATA_NAME, encode)


def with_field(source: Path, target: Path, name: str, value) -> Path:
    return rewrite_metadata(source, target, lambda metadata: {**metadata, name: value})


def entry(path: Path, kind: str) -> zipfile.ZipInfo:
    """The archive's metadata, its largest tensor ("weights") or the SchNet code entry."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    if kind == "weights":
        return max((i for i in infos if "/data/" in i.filename), key=lambda i: i.compress_size)
    suffix = {"metadata": METADATA_NAME, "code": "eipnn_training/models/schnet.py"}[kind]
    return next(i for i in infos if i.filename.endswith(suffix))


def data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where the stored bytes of ``info`` start: after its local header, whose name and
    extra field lengths are at bytes 26-29."""
    with open(path, "rb") as file:
        file.seek(info.header_offset)
        header = file.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


def damaged_copy(source: Path, target: Path, offset: int, length: int) -> Path:
    """A byte-for-byte copy of ``source`` with ``length`` bytes inverted from ``offset``."""
    data = bytearray(source.read_bytes())
    data[offset:offset + length] = bytes(b ^ 0xFF for b in data[offset:offset + length])
    target.write_bytes(bytes(data))
    return target


def assert_refused(path: Path, match: str, error=ModelFileError, load=load_model) -> str:
    """``load(path)`` raises ``error`` with a message that matches and names the file."""
    with pytest.raises(error, match=match) as caught:
        load(path)
    message = str(caught.value)
    assert f"'{path}'" in message
    return message


# ---------------------------------------------------------------- a damaged archive


def test_a_truncated_file_is_refused(random_si_model, tmp_path):
    target = tmp_path / "truncated.pt"
    target.write_bytes(random_si_model.read_bytes()[:-1000])
    assert_refused(target, "not a TorchScript file .*cut short", load=read_metadata)
    assert_refused(target, "not a TorchScript file .*cut short")


@pytest.mark.parametrize("kind", ["metadata", "weights", "code"])
def test_bytes_changed_inside_an_entry_are_refused(random_si_model, tmp_path, kind):
    """The weights included: torch.jit.load checks no checksum and would run them."""
    info = entry(random_si_model, kind)
    middle = data_offset(random_si_model, info) + info.compress_size // 2
    target = damaged_copy(random_si_model, tmp_path / "damaged.pt", middle, 4)
    # A CRC mismatch ("is damaged: its entry ...") or a bad deflate stream ("is a damaged zip").
    assert_refused(target, "is (a )?damaged", load=read_metadata)
    assert_refused(target, "is (a )?damaged")
    with pytest.raises(ModelFileError, match="is (a )?damaged"):
        EIPNNCalculator(target)


def test_a_damaged_entry_header_is_refused(random_si_model, tmp_path):
    info = entry(random_si_model, "code")
    # The entry's name in its local header, which must equal the central directory's.
    target = damaged_copy(random_si_model, tmp_path / "damaged.pt", info.header_offset + 30, 8)
    assert_refused(target, "is a damaged zip archive", load=read_metadata)


def test_a_sound_zip_that_torch_cannot_load_is_refused(random_si_model, tmp_path):
    garbage = lambda _: b"not python"  # noqa: E731
    target = rewrite_entry(random_si_model, tmp_path / "garbage.pt", "models/potential.py", garbage)
    read_metadata(target)  # the archive and its metadata are fine
    assert_refused(target, "could not be loaded as TorchScript")


# ---------------------------------------------------------------- the metadata


def test_metadata_that_is_not_an_object_is_refused(random_si_model, tmp_path):
    target = rewrite_metadata(random_si_model, tmp_path / "null.pt", lambda _: None)
    assert_refused(target, "is null, not a JSON object of fields", load=read_metadata)


def test_metadata_that_is_not_json_is_refused(random_si_model, tmp_path):
    not_json = lambda _: b"\xff{species"  # noqa: E731
    target = rewrite_entry(random_si_model, tmp_path / "text.pt", METADATA_NAME, not_json)
    assert_refused(target, "is not valid JSON", load=read_metadata)


UNITS_PROBLEM = (
    '{"energy": "kcal/mol", "length": "Angstrom"} is not {"energy": "eV", "length": "Angstrom"}: '
    "the runtime converts no units"
)
INVALID_FIELDS = [  # (field, value, the problem the message states, not a regex)
    ("cutoff_angstrom", "abc", '"abc" is not a finite number of Å > 0'),
    ("cutoff_angstrom", None, "null is not a finite number of Å > 0"),
    ("cutoff_angstrom", float("inf"), "Infinity is not a finite number of Å > 0"),
    ("cutoff_angstrom", float("nan"), "NaN is not a finite number of Å > 0"),
    ("cutoff_angstrom", 0, "0 is not a finite number of Å > 0"),
    ("cutoff_angstrom", -5.0, "-5.0 is not a finite number of Å > 0"),
    ("cutoff_angstrom", True, "true is not a finite number of Å > 0"),
    ("species", "Si", '"Si" is not a non-empty list of chemical symbols (such as ["Si", "C"])'),
    ("species", [], "[] is not a non-empty list of chemical symbols"),
    ("species", ["Xx"], '["Xx"] holds "Xx": not a chemical symbol'),
    ("species", ["Si", 14], '["Si", 14] holds 14: not a chemical symbol'),
    ("species", ["Si", "C", "Si"], '["Si", "C", "Si"] lists Si more than once'),
    ("num_layers", "two", '"two" is not an integer >= 1 (the number of message-passing layers)'),
    ("num_layers", 0, "0 is not an integer >= 1"),
    ("num_layers", 2.0, "2.0 is not an integer >= 1"),
    ("num_layers", True, "true is not an integer >= 1"),
    ("dtype", "float16", '"float16" is not a dtype the runtime runs (float32, float64)'),
    ("dtype", None, "null is not a dtype the runtime runs"),
    ("units", {"energy": "kcal/mol", "length": "Angstrom"}, UNITS_PROBLEM),
    ("units", {"energy": "eV"}, '{"energy": "eV"} is not {"energy": "eV", "length": "Angstrom"}'),
    ("model", "schnet", '"schnet" is not a JSON object'),
    ("provenance", [1, 2], "[1, 2] is not a JSON object"),
    ("versions", None, "null is not a JSON object"),
]


@pytest.mark.parametrize("name, value, problem", INVALID_FIELDS)
def test_an_invalid_field_is_refused_naming_it(random_si_model, tmp_path, name, value, problem):
    target = with_field(random_si_model, tmp_path / "edited.pt", name, value)
    stated = re.escape(f"is invalid: {name}: {problem}")
    message = assert_refused(target, stated, load=read_metadata)
    assert message.endswith("re-export the model with `eipnn-export`")  # what to do
    assert_refused(target, stated)


def test_every_invalid_field_is_reported_at_once(random_si_model, tmp_path):
    change = lambda m: {**m, "dtype": "float16", "num_layers": 0}  # noqa: E731
    target = rewrite_metadata(random_si_model, tmp_path / "edited.pt", change)
    assert_refused(target, 'num_layers: 0 is not an integer.*; dtype: "float16" is not', load=read_metadata)


@pytest.mark.parametrize("version", [0, -5, "2", True, 2.0, None])
def test_a_format_version_that_is_not_a_positive_integer_is_refused(random_si_model, tmp_path, version):
    target = with_field(random_si_model, tmp_path / "edited.pt", "format_version", version)
    stated = re.escape(f"has an invalid format_version: {json.dumps(version)} is not an integer >= 1")
    message = assert_refused(target, stated)
    assert "newer" not in message


def test_newer_format_version(random_si_model, tmp_path):
    target = with_field(random_si_model, tmp_path / "future.pt", "format_version", 99)
    stated = rf"format version 99, newer than this eipnn reads \({FORMAT_VERSION}\); upgrade eipnn"
    assert_refused(target, stated, ModelFormatVersionError)


def test_a_newer_format_is_reported_before_what_it_lacks(random_si_model, tmp_path):
    target = rewrite_metadata(random_si_model, tmp_path / "future.pt", lambda _: {"format_version": FORMAT_VERSION + 1})
    assert_refused(target, "newer than this eipnn reads", ModelFormatVersionError, read_metadata)


def test_missing_metadata_keys(random_si_model, tmp_path):
    drop = lambda m: {k: v for k, v in m.items() if k != "cutoff_angstrom"}  # noqa: E731
    target = rewrite_metadata(random_si_model, tmp_path / "partial.pt", drop)
    assert_refused(target, "lacks cutoff_angstrom")


def test_valid_edits_still_load(random_si_model, tmp_path):
    """An integer cutoff, format 1 (a format-2 network is a valid format-1 one: layer_edges
    has a default) and fields a newer writer added all load."""
    change = lambda m: {**m, "cutoff_angstrom": 5, "format_version": 1, "added_later": [1]}  # noqa: E731
    _, metadata = load_model(rewrite_metadata(random_si_model, tmp_path / "edited.pt", change))
    assert metadata.cutoff_angstrom == 5.0 and isinstance(metadata.cutoff_angstrom, float)
    assert metadata.format_version == 1


# ---------------------------------------------------------------- the network against the metadata


def test_a_cutoff_other_than_the_networks_is_refused(random_si_model, tmp_path):
    target = with_field(random_si_model, tmp_path / "edited.pt", "cutoff_angstrom", 6.0)
    read_metadata(target)  # valid on its own
    assert_refused(target, "says cutoff_angstrom 6.0 but its network cuts edges at 5.0 Å")


def test_a_cutoff_equal_to_the_networks_up_to_rounding_loads(random_si_model, tmp_path):
    rounded = 5.0 * (1 + 1e-12)
    _, metadata = load_model(with_field(random_si_model, tmp_path / "edited.pt", "cutoff_angstrom", rounded))
    assert metadata.cutoff_angstrom == rounded


def test_a_layer_count_other_than_the_networks_is_refused(random_si_model, tmp_path):
    target = with_field(random_si_model, tmp_path / "edited.pt", "num_layers", 3)
    read_metadata(target)
    assert_refused(target, "says num_layers 3 but its network has 2 message-passing layers")


class Format2Forward(torch.nn.Module):
    def forward(
        self,
        positions: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        node_mask: torch.Tensor,
        layer_edges: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        return {"energy": positions.sum()}


class Format1Forward(torch.nn.Module):
    def forward(
        self,
        positions: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        node_mask: torch.Tensor,
    ) -> Dict[str, torch.Tensor]:
        return {"energy": positions.sum()}


class NoForward(torch.nn.Module):
    @torch.jit.export
    def energy(self, positions: torch.Tensor) -> torch.Tensor:
        return positions.sum()


class TwoInputs(torch.nn.Module):
    def forward(self, positions: torch.Tensor, species: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"energy": positions.sum()}


class RenamedInput(torch.nn.Module):
    def forward(
        self,
        positions: torch.Tensor,
        numbers: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        node_mask: torch.Tensor,
        layer_edges: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        return {"energy": positions.sum()}


class RequiredLayerEdges(torch.nn.Module):
    def forward(
        self,
        positions: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        node_mask: torch.Tensor,
        layer_edges: Optional[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        return {"energy": positions.sum()}


class TensorReturn(torch.nn.Module):
    def forward(
        self,
        positions: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        node_mask: torch.Tensor,
        layer_edges: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        return positions.sum()


def save_module(module: torch.nn.Module, path: Path, format_version: int = FORMAT_VERSION) -> Path:
    """``module`` scripted into a model file with valid Si metadata of ``format_version``."""
    metadata = ModelMetadata(["Si"], cutoff_angstrom=5.0, num_layers=1, dtype="float64", model={})
    save_model(torch.jit.script(module), path, metadata)
    if format_version == FORMAT_VERSION:
        return path
    target = path.with_name(f"format{format_version}_{path.name}")
    return with_field(path, target, "format_version", format_version)


def test_a_network_with_the_contract_forward_loads(tmp_path):
    module, _ = load_model(save_module(Format2Forward(), tmp_path / "m.pt"))
    assert float(module(torch.ones(2, 3), *[torch.zeros(1)] * 4)["energy"]) == 6.0
    load_model(save_module(Format1Forward(), tmp_path / "m1.pt", format_version=1))


FORMAT_2_SIGNATURE = (
    "forward(self, positions: Tensor, species: Tensor, edge_index: Tensor, edge_shift: Tensor, "
    "node_mask: Tensor, layer_edges: Optional[Tensor] = None) -> Dict[str, Tensor]"
)
WRONG_FORWARDS = [
    (NoForward, "it has no scripted forward method"),
    (TwoInputs, "it takes 2 inputs, not 6"),
    (Format1Forward, "it takes 5 inputs, not 6"),
    (RenamedInput, "its input 'numbers: Tensor' should be 'species: Tensor'"),
    (RequiredLayerEdges, "its input 'layer_edges' has no default None"),
    (TensorReturn, "it returns Tensor, not Dict[str, Tensor]"),
]


@pytest.mark.parametrize("module, problem", WRONG_FORWARDS, ids=[m.__name__ for m, _ in WRONG_FORWARDS])
def test_a_network_without_the_contract_forward_is_refused(tmp_path, module, problem):
    target = save_module(module(), tmp_path / "m.pt")
    read_metadata(target)  # the metadata is fine
    message = assert_refused(target, re.escape(f"does not have the forward of model format {FORMAT_VERSION}: {problem}"))
    assert f"Expected {FORMAT_2_SIGNATURE}, found " in message


def test_a_format_1_network_takes_the_five_inputs(tmp_path):
    message = assert_refused(
        save_module(TwoInputs(), tmp_path / "m.pt", format_version=1),
        "forward of model format 1: it takes 2 inputs, not 5",
    )
    assert "node_mask: Tensor) -> Dict[str, Tensor]" in message
    assert_refused(
        save_module(RequiredLayerEdges(), tmp_path / "required.pt", format_version=1),
        re.escape("its extra input 'layer_edges' has no default (callers never pass it)"),
    )


def test_the_calculator_refuses_a_network_without_the_contract_forward(tmp_path):
    with pytest.raises(ModelFileError, match=f"forward of model format {FORMAT_VERSION}"):
        EIPNNCalculator(save_module(TensorReturn(), tmp_path / "m.pt"))
