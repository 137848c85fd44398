"""Training a descriptor model (SOAPNet) on a descriptor computed once per configuration.

SOAPNet's weights are all after its descriptor: per-atom energies are MLP(p), with p the
SOAP power spectrum of the fixed geometry of a training configuration. Recomputing p on
every step is most of an energy-only step, and with forces the step also keeps SOAP's whole
autograd graph and differentiates it twice. Neither is needed:

* energies need p, the same on every epoch: it is computed once per configuration;
* forces need dp_i/dr_e, the Jacobian of atom i's descriptor by the vectors of the edges
  into i (``SOAP.descriptors_and_jacobians``), also fixed. The model is given
  p + sum_e J_e (r_e - r_e.detach()), whose value is p and whose derivative by the edge
  vectors is J: the forces -dE/dx and their weight gradient (the double backward of a
  force loss) are those of the full model, to float rounding (a test), while autograd only
  ever sees the MLP, one batched matrix product per batch and the gathers of the edges.
  Derivatives of second order in the positions are not those of the model (the descriptor's
  curvature is absent), and training needs none.

The cache lives in memory under a budget (``train.descriptor_cache_mb``; None = a quarter of
the memory available when it is made, 0 = off); a batch with a configuration the budget
could not hold takes the ordinary path, which computes the same function. Each
configuration is computed on its own, so its values do not depend on the batch it first came
in, and a resumed run sees the numbers of an uninterrupted one. Ensemble members (the alpha
search, committees) share one cache.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Optional

import torch

from ..data.batching import Batch
from ..models.layers import scatter_sum
from ..models.potential import Potential
from .passes import sub_batch

log = logging.getLogger(__name__)
MIB = 1 << 20


def available_memory_bytes() -> Optional[int]:
    """MemAvailable of /proc/meminfo (None where there is no such file)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def budget_bytes(descriptor_cache_mb: Optional[float]) -> int:
    """The cache's budget: the setting in MiB, or a quarter of the available memory (1 GiB
    where that is unknown)."""
    if descriptor_cache_mb is not None:
        return int(descriptor_cache_mb * MIB)
    available = available_memory_bytes()
    return available // 4 if available is not None else 1 << 30


def has_fixed_descriptor(potential: Potential) -> bool:
    """True for a representation whose weights all come after a weight-free descriptor."""
    representation = potential.representation
    return callable(getattr(representation, "features_of", None)) and callable(
        getattr(representation, "descriptors_and_jacobians", None))


def _signature(potential: Potential, dtype: torch.dtype) -> tuple:
    """What the descriptor's values depend on: a cache serves potentials that agree on it."""
    soap = potential.representation.soap
    return (type(soap).__name__, soap.num_species, soap.r_cut, soap.sigma, soap.n_max, soap.l_max,
            soap.cutoff, soap.smooth_cutoff, soap.smooth_width, potential.cutoff, dtype)


class DescriptorCache:
    """Per configuration (``Batch.rows``): descriptors [n, D] and, when ``jacobians``, the
    Jacobians of its edges as [e, 3, D], computed on first sight within ``budget`` bytes."""

    def __init__(self, jacobians: bool, budget: int) -> None:
        self.jacobians, self.budget, self.used = jacobians, budget, 0
        self.rows: dict[int, tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
        self.signature: Optional[tuple] = None
        self.full = budget <= 0

    def of(self, potential: Potential, batch: Batch) -> Optional[tuple[torch.Tensor, Optional[tuple[torch.Tensor, ...]]]]:
        """(descriptors [N, D], each configuration's Jacobians [e, 3, D] or None) of the
        batch's atoms and edges in batch order, or None when the budget cannot hold them."""
        dtype = batch.positions.dtype
        signature = _signature(potential, dtype)
        if self.signature is None:
            self.signature = signature
        elif signature != self.signature:
            raise ValueError("one descriptor cache serves models with the same descriptor settings and dtype")
        rows = batch.rows.tolist()
        missing = [k for k, row in enumerate(rows) if row not in self.rows]
        if missing and self.full:
            return None
        for k in missing:
            values = self._compute(potential, sub_batch(batch, k, k + 1))
            size = sum(v.numel() * v.element_size() for v in values if v is not None)
            if self.used + size > self.budget:
                self.full = True
                log.info("descriptor cache full at %.0f MiB (%d configurations): the rest take the "
                         "ordinary path (train.descriptor_cache_mb)", self.used / MIB, len(self.rows))
                return None
            self.rows[rows[k]] = values
            self.used += size
        parts = [self.rows[row] for row in rows]
        descriptors = torch.cat([p for p, _ in parts])
        jacobians = tuple(j for _, j in parts) if self.jacobians else None  # type: ignore[misc]
        return descriptors, jacobians

    def _compute(self, potential: Potential, row: Batch) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        # SOAP ignores edges at or beyond its cutoff (the model's), as the model does; their
        # Jacobians are zero, so they stay aligned with the batch's edges.
        vectors = (row.positions[row.edge_index[1]] - row.positions[row.edge_index[0]] + row.edge_shift).detach()
        representation = potential.representation
        if self.jacobians:  # stored [e, 3, D]: the products below run as fast batched matmuls
            descriptors, jacobians = representation.descriptors_and_jacobians(row.species, row.edge_index, vectors)
            return descriptors, jacobians.transpose(1, 2).contiguous()
        with torch.no_grad():
            lengths = torch.linalg.vector_norm(vectors, dim=1)
            return representation.soap(row.species, row.edge_index, vectors, lengths), None


def cached_energies(potential: Potential, cache: DescriptorCache) -> Callable[[Batch], Optional[torch.Tensor]]:
    """Per-atom energies [N, K] of a batch from the cache (None: take the ordinary path)."""
    def energies(batch: Batch) -> Optional[torch.Tensor]:
        cached = cache.of(potential, batch)
        if cached is None:
            return None
        descriptors, jacobians = cached
        if batch.positions.requires_grad:
            if jacobians is None:
                raise ValueError("the descriptor cache holds no Jacobians: make it with jacobians=True for forces")
            positions, edge_index = batch.positions, batch.edge_index
            vectors = positions[edge_index[1]] - positions[edge_index[0]] + batch.edge_shift
            change = vectors - vectors.detach()  # 0 in value, the identity in derivative
            linear = _Apply.apply(change.unsqueeze(1), *jacobians).squeeze(1)  # [E, D]
            descriptors = descriptors + scatter_sum(linear, edge_index[0], descriptors.shape[0])
        return potential.energies_of(potential.representation.features_of(descriptors), batch.species)
    return energies


# J x and its adjoint J^T g for K columns at once (K ensemble members, or 1), each the other's
# derivative, so the double backward of a force loss stays in these batched matrix products.
# The Jacobians come as one [e, 3, D] tensor per configuration, never concatenated: a batch's
# copy of them cost as much as the products. Autograd's own derivative of such a product
# transposes J into a strided product 3x slower (benchmarks/bench_training_step.py). J is a
# constant (no gradient).
def _products(jacobians: tuple[torch.Tensor, ...], values: torch.Tensor, transpose: bool) -> torch.Tensor:
    """Row blocks of ``values`` [E, K, 3] times their configurations' J -> [E, K, D], or with
    ``transpose`` [E, K, D] times J^T -> [E, K, 3]."""
    width = 3 if transpose else jacobians[0].shape[2]
    out = values.new_empty(values.shape[0], values.shape[1], width)
    start = 0
    for jacobian in jacobians:
        stop = start + jacobian.shape[0]
        factor = jacobian.transpose(1, 2) if transpose else jacobian
        torch.bmm(values[start:stop], factor, out=out[start:stop])
        start = stop
    return out


class _Apply(torch.autograd.Function):
    """[E, K, 3] vectors, the configurations' [e, 3, D] Jacobians -> [E, K, D]."""

    @staticmethod
    def forward(ctx, vectors: torch.Tensor, *jacobians: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(*jacobians)
        return _products(jacobians, vectors, transpose=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return (_Transpose.apply(grad, *ctx.saved_tensors),) + (None,) * len(ctx.saved_tensors)


class _Transpose(torch.autograd.Function):
    """[E, K, D] gradients, the configurations' [e, 3, D] Jacobians -> [E, K, 3]."""

    @staticmethod
    def forward(ctx, grad: torch.Tensor, *jacobians: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(*jacobians)
        return _products(jacobians, grad, transpose=True)

    @staticmethod
    def backward(ctx, upstream: torch.Tensor):
        return (_Apply.apply(upstream, *ctx.saved_tensors),) + (None,) * len(ctx.saved_tensors)


def edge_gradients(descriptor_gradients: torch.Tensor, receivers: torch.Tensor,
                   jacobians: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """dE_k/dr_e [E, K, 3] from dE_k/dp_i [N, K, D] (each edge's receiver's) and J."""
    return _Transpose.apply(descriptor_gradients.index_select(0, receivers), *jacobians)
