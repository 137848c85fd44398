"""Model specs and the one registry: model kind -> representation builder."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from .cgcnn import CGCNN
from .gemnet import GemNet
from .potential import AtomwiseHead, Potential
from .schnet import SchNet
from .soapnet import SOAPNet


@dataclass
class ModelSpec:
    """What a model is: kind, ordered species, cutoff (Å) and the kind's hyper-parameters."""

    kind: str
    species: list[str]
    cutoff_angstrom: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    head_hidden: int = 128


def _schnet(spec: ModelSpec) -> nn.Module:
    return SchNet(len(spec.species), spec.cutoff_angstrom, **spec.hyperparameters)


def _soapnet(spec: ModelSpec) -> nn.Module:
    return SOAPNet(len(spec.species), spec.cutoff_angstrom, **spec.hyperparameters)


def _cgcnn(spec: ModelSpec) -> nn.Module:
    return CGCNN(len(spec.species), spec.cutoff_angstrom, **spec.hyperparameters)


def _gemnet(spec: ModelSpec) -> nn.Module:
    return GemNet(len(spec.species), spec.cutoff_angstrom, **spec.hyperparameters)


REPRESENTATIONS: dict[str, Callable[[ModelSpec], nn.Module]] = {"schnet": _schnet, "soapnet": _soapnet,
                                                               "cgcnn": _cgcnn, "gemnet": _gemnet}


def build_representation(spec: ModelSpec) -> nn.Module:
    if spec.kind not in REPRESENTATIONS:
        raise ValueError(
            f"unknown model kind '{spec.kind}'; known: {', '.join(sorted(REPRESENTATIONS))}"
        )
    return REPRESENTATIONS[spec.kind](spec)


def feature_size(representation: nn.Module) -> int:
    """Width of the per-atom features a representation emits: every representation
    declares it as ``num_features``."""
    return int(representation.num_features)


def build_potential(spec: ModelSpec, num_outputs: int = 1) -> Potential:
    """A fresh potential of ``spec`` with ``num_outputs`` energies per atom (K for MP)."""
    representation = build_representation(spec)
    head = AtomwiseHead(feature_size(representation), spec.head_hidden, num_outputs)
    return Potential(representation, head, len(spec.species), spec.cutoff_angstrom)
