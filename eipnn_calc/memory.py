"""How much memory one evaluation needs, estimated before any work, and the limit it is held to.

The estimate is per edge (a directed pair within the cutoff): every model here keeps a few
feature vectors per edge and layer for the backward pass that gives the forces, and that
dominates at any size that can run out of memory. The constants are calibrated against the
peak RSS that ``benchmarks/bench_memory.py`` measures (docs/benchmarks.md, section "memory"),
rounded up so that the estimate is an upper bound there.
"""
from __future__ import annotations

import os
from typing import Any

import torch

# Feature vectors of width ``num_features`` kept per edge and interaction block (SchNet: the
# filter network's activations, the envelope product, the gathered neighbour features and
# their gradients) and RBF values per edge (once for all blocks).
SCHNET_FEATURES_PER_EDGE_AND_LAYER = 18.0
SCHNET_RBF_PER_EDGE = 4.0
# SchNet exported with tabulated filters (the default, metadata "filter_table"): the gathered
# neighbour features, the filter and their gradients; no filter network, no RBF (measured
# 3.4 at 4,096 atoms in float64).
SCHNET_TABULATED_FEATURES_PER_EDGE_AND_LAYER = 5.0
# SOAPNet: the radial x angular expansion per edge and species channel, and its gradient.
SOAP_EXPANSION_PER_EDGE = 4.0
# Fixed cost per edge: indices, shifts, vectors, lengths and their gradients (in values).
VALUES_PER_EDGE = 32.0
# Memory besides the edges: the process, torch, the model (bytes).
BASELINE_BYTES = 600 * 2**20
# Share of the machine's memory one calculator may plan to use by default.
DEFAULT_LIMIT_FRACTION = 0.5


def values_per_edge(model: dict[str, Any], num_species: int) -> float:
    """Numbers held per edge in one energy + forces + virial evaluation of this model kind."""
    kind = model.get("kind")
    hyper = dict(model.get("spec", {}).get("hyperparameters", {}))
    if kind == "schnet":
        width = hyper.get("num_features", 128)
        layers = hyper.get("num_interactions", 5)
        rbf = hyper.get("num_rbf", 128)
        if "filter_table" in model:
            return VALUES_PER_EDGE + SCHNET_TABULATED_FEATURES_PER_EDGE_AND_LAYER * width * layers
        return VALUES_PER_EDGE + SCHNET_FEATURES_PER_EDGE_AND_LAYER * width * layers + SCHNET_RBF_PER_EDGE * rbf
    if kind == "soapnet":
        n_max, l_max = hyper.get("n_max", 8), hyper.get("l_max", 6)
        return VALUES_PER_EDGE + SOAP_EXPANSION_PER_EDGE * n_max * (l_max + 1) ** 2 * num_species
    # A kind this runtime has no figure for: assume a 128-wide, 5-layer message passing model.
    return VALUES_PER_EDGE + SCHNET_FEATURES_PER_EDGE_AND_LAYER * 128 * 5


def estimated_bytes(edges: int, model: dict[str, Any], num_species: int, dtype: torch.dtype) -> int:
    """Peak memory (bytes) of one evaluation with ``edges`` directed pairs."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return int(BASELINE_BYTES + edges * values_per_edge(model, num_species) * itemsize)


def default_limit_bytes(device: torch.device) -> int:
    """Half of the device's memory: the host's RAM, or the CUDA device's own."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(DEFAULT_LIMIT_FRACTION * total)
