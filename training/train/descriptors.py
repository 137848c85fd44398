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
  ever sees the MLP and batched matrix products with J, one per configuration.
  Derivatives of second order in the positions are not those of the model (the descriptor's
  curvature is absent), and training needs none.

The cache lives in memory under a budget (``train.descriptor_cache_mb``; None = a quarter of
the memory available when it is made, 0 = off); a batch with a configuration the budget
could not hold takes the ordinary path, which computes the same function. Training fills
the cache before its first epoch, from its loaders in their row order (not the shuffled
one), so a configuration's values do not depend on the epoch it first came in, and a resumed
run sees the numbers of an uninterrupted one. Ensemble members (the alpha search,
committees) share one cache.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

import torch
from tqdm import tqdm

from ..data.batching import Batch, BatchLoader, select_rows
from ..models.derivatives import predicted_forces
from ..models.layers import scatter_sum
from ..models.soap import dense_slots
from ..models.potential import Potential, edge_vectors
from .losses import labelled_rows
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


@dataclass
class _Row:
    """One configuration's cached values: descriptors [n, D]; with Jacobians, those of the
    edges into each atom side by side, [n, M 3, D] (M = the most edges into one of its atoms,
    zero-padded), and the slot (atom M + rank) of each of its edges."""

    descriptors: torch.Tensor
    jacobians: Optional[torch.Tensor] = None
    slots: Optional[torch.Tensor] = None

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.descriptors, self.jacobians, self.slots)
                   if t is not None)


@dataclass
class Cached:
    """A batch's cached values: descriptors [N, D]; with Jacobians, each configuration's
    [n, M 3, D] block and each edge's slot [E] among the batch's ``num_slots``."""

    descriptors: torch.Tensor
    jacobians: Optional[tuple[torch.Tensor, ...]] = None
    slots: Optional[torch.Tensor] = None
    num_slots: int = 0


class DescriptorCache:
    """Per configuration (``Batch.rows``): descriptors and, when ``jacobians``, the Jacobians
    of its edges grouped by receiving atom, within ``budget`` bytes: a loader's rows at once
    (``fill``, what training does before its first epoch), or each on first sight."""

    def __init__(self, jacobians: bool, budget: int) -> None:
        self.jacobians, self.budget, self.used = jacobians, budget, 0
        self.rows: dict[int, _Row] = {}
        self.signature: Optional[tuple] = None
        self.full = budget <= 0

    def of(self, potential: Potential, batch: Batch) -> Optional[Cached]:
        """The batch's cached values in batch order, or None when the budget cannot hold them;
        without Jacobians when a row has none (no force labels)."""
        self._check_signature(potential, batch.positions.dtype)
        rows = batch.rows.tolist()
        missing = [k for k, row in enumerate(rows) if row not in self.rows]
        if missing and self.full:
            return None
        for k in missing:  # each alone, so that the values do not depend on the batch
            (values,) = self._compute(potential, sub_batch(batch, k, k + 1))
            if not self._store(rows[k], values):
                return None
        parts = [self.rows[row] for row in rows]
        descriptors = torch.cat([part.descriptors for part in parts])
        if not self.jacobians or any(part.jacobians is None for part in parts):
            return Cached(descriptors)
        slots, start = [], 0
        for part in parts:
            assert part.jacobians is not None and part.slots is not None
            slots.append(part.slots + start)
            start += part.jacobians.shape[0] * (part.jacobians.shape[1] // 3)
        return Cached(descriptors, tuple(part.jacobians for part in parts), torch.cat(slots), start)  # type: ignore[misc]

    def fill(self, potential: Potential, loader: BatchLoader, device: torch.device, dtype: torch.dtype,
             progress: bool = False) -> None:
        """Cache every row of ``loader`` that is not yet, in the loader's row order and in
        groups of its batch size (one descriptor call per group is ~7x cheaper per
        configuration than one each, and the groups do not depend on the epoch's shuffle:
        a resumed run refills the same values). Stops where the budget is full."""
        if self.full:
            return
        self._check_signature(potential, dtype)
        ordered = BatchLoader(loader.graphs, loader.species_index, loader.rows, loader.batch_size)
        with tqdm(total=len(loader.rows), desc="descriptors", unit="config", disable=not progress,
                  dynamic_ncols=True, leave=False) as bar:
            for batch in ordered.epoch(0):
                rows = batch.rows.tolist()
                if any(row not in self.rows for row in rows):
                    batch = batch.to(device, dtype)
                    for row, values in zip(rows, self._compute(potential, batch)):
                        if row not in self.rows and not self._store(row, values):
                            return
                bar.update(len(rows))

    def _check_signature(self, potential: Potential, dtype: torch.dtype) -> None:
        signature = _signature(potential, dtype)
        if self.signature is None:
            self.signature = signature
        elif signature != self.signature:
            raise ValueError("one descriptor cache serves models with the same descriptor settings and dtype")

    def _store(self, row: int, values: _Row) -> bool:
        """Keep ``values`` for ``row`` if the budget allows (False, and full from now on, if not)."""
        if self.used + values.nbytes() > self.budget:
            self.full = True
            log.info("descriptor cache full at %.0f MiB (%d configurations): the rest take the "
                     "ordinary path (train.descriptor_cache_mb)", self.used / MIB, len(self.rows))
            return False
        self.rows[row] = values
        self.used += values.nbytes()
        return True

    def _compute(self, potential: Potential, batch: Batch) -> list[_Row]:
        """The values of each configuration of ``batch`` (its edges are contiguous per
        configuration, in row order), from one descriptor call per kind of row: Jacobians
        only for rows with force labels (LA's EIP rows have none, and are most of its rows:
        on al-pbe 4,298 of 4,355)."""
        if not self.jacobians:
            return self._descriptors(potential, batch)
        labelled = labelled_rows(batch, torch.ones(batch.num_rows, dtype=torch.bool, device=batch.num_atoms.device))
        if bool(labelled.all()):
            return self._with_jacobians(potential, batch)
        values: list[Optional[_Row]] = [None] * batch.num_rows
        for keep, compute in ((labelled, self._with_jacobians), (~labelled, self._descriptors)):
            if bool(keep.any()):
                for k, row in zip(keep.nonzero()[:, 0].tolist(), compute(potential, select_rows(batch, keep))):
                    values[k] = row
        return [row for row in values if row is not None]

    @staticmethod
    def _descriptors(potential: Potential, batch: Batch) -> list[_Row]:
        """Descriptors alone, per configuration."""
        # SOAP ignores edges at or beyond its cutoff (the model's), as the model does.
        vectors = edge_vectors(batch.positions, batch.edge_index, batch.edge_shift).detach()
        with torch.no_grad():
            lengths = torch.linalg.vector_norm(vectors, dim=1)
            descriptors = potential.representation.soap(batch.species, batch.edge_index, vectors, lengths)
        return [_Row(part) for part in descriptors.split(batch.num_atoms.tolist())]

    @staticmethod
    def _with_jacobians(potential: Potential, batch: Batch) -> list[_Row]:
        """Descriptors and Jacobians, per configuration (edges beyond the cutoff have zero
        Jacobians, so they stay aligned with the batch's edges)."""
        vectors = edge_vectors(batch.positions, batch.edge_index, batch.edge_shift).detach()
        descriptors, jacobians = potential.representation.descriptors_and_jacobians(batch.species, batch.edge_index,
                                                                                    vectors)
        atoms = batch.num_atoms.tolist()
        edges = torch.bincount(batch.batch.index_select(0, batch.edge_index[0]), minlength=batch.num_rows).tolist()
        rows, start = [], 0
        for p, j, receivers, n in zip(descriptors.split(atoms), jacobians.split(edges),
                                      batch.edge_index[0].split(edges), atoms):
            rows.append(_grouped(p, j, receivers - start, n))
            start += n
        return rows


def _grouped(descriptors: torch.Tensor, jacobians: torch.Tensor, receivers: torch.Tensor, num_atoms: int) -> _Row:
    """One configuration's values with its Jacobians [E, D, 3] grouped by receiving atom, so
    that the sums over an atom's edges are batched matrix products and no per-edge [E, D]
    tensor is made (their gathers and scatters were most of a step)."""
    features = jacobians.shape[1]
    slots, width = dense_slots(receivers, num_atoms)
    grouped = jacobians.new_zeros(num_atoms * width, 3, features).index_copy_(0, slots, jacobians.transpose(1, 2))
    return _Row(descriptors, grouped.reshape(num_atoms, width * 3, features).contiguous(), slots)


class CachedEnergies:
    """The stand-in for ``potential.atomic_energies`` on cached descriptors
    (``metrics.AtomicEnergies``): a call gives per-atom energies [N, K] (None: take the
    ordinary path, also for forces of a row cached without Jacobians); ``with_forces`` gives
    them with the forces of all K outputs at once."""

    def __init__(self, potential: Potential, cache: DescriptorCache) -> None:
        self.potential, self.cache = potential, cache

    def __call__(self, batch: Batch) -> Optional[torch.Tensor]:
        cached = self.cache.of(self.potential, batch)
        if cached is None:
            return None
        descriptors = cached.descriptors
        if batch.positions.requires_grad:
            if cached.jacobians is None:  # a row without force labels: no Jacobians kept
                return None
            vectors = edge_vectors(batch.positions, batch.edge_index, batch.edge_shift)
            change = vectors - vectors.detach()  # 0 in value, the identity in derivative
            descriptors = descriptors + linear_change(cached, change)
        return atomic_energies_of(self.potential, descriptors, batch.species)

    def with_forces(self, batch: Batch, create_graph: bool = True) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """Per-atom energies [N, K] and forces -dE_k/dx [N, K, 3], with their graphs when
        ``create_graph``; None when the cache cannot hold the batch. The K gradients dE_k/dp
        go through the MLP only, and one product with J per configuration serves all K
        (through the positions, each output would take its own pass over J)."""
        cached = self.cache.of(self.potential, batch)
        if cached is None:
            return None
        if cached.jacobians is None:  # a row without force labels: no Jacobians kept
            return None
        descriptors = cached.descriptors.detach().requires_grad_(True)
        atomic = atomic_energies_of(self.potential, descriptors, batch.species)  # [N, K]
        gradients = -predicted_forces(atomic, descriptors, create_graph=create_graph)  # [N, K, D]
        forces = forces_from_gradients(cached, batch, gradients)
        return (atomic, forces) if create_graph else (atomic.detach(), forces.detach())

def atomic_energies_of(potential: Potential, descriptors: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
    """A descriptor model's per-atom energies [N, K] from its descriptors [N, D]."""
    return potential.energies_of(potential.representation.features_of(descriptors), species)


def cached_energies(potential: Potential, cache: DescriptorCache) -> CachedEnergies:
    """Per-atom energies [N, K] of a batch from the cache (None: take the ordinary path)."""
    return CachedEnergies(potential, cache)


# J v and its adjoint J^T g for K columns at once (K ensemble members, or 1), each the other's
# derivative, so the double backward of a force loss stays in these batched matrix products.
# J comes as one [n, M 3, D] block per configuration (the edges into each atom side by side),
# never concatenated: a batch's copy of them cost as much as the products. J is a constant.
def _apply(jacobians: tuple[torch.Tensor, ...], values: torch.Tensor) -> torch.Tensor:
    """Edge vectors in slots [S, K, 3] -> sum_e J_e v_e per receiving atom [N, K, D]."""
    count = values.shape[1]
    out = values.new_empty(sum(j.shape[0] for j in jacobians), count, jacobians[0].shape[2])
    atom, slot = 0, 0
    for jacobian in jacobians:
        atoms, width = jacobian.shape[0], jacobian.shape[1] // 3
        block = values[slot:slot + atoms * width].view(atoms, width, count, 3)
        block = block.permute(0, 2, 1, 3).reshape(atoms, count, width * 3)
        torch.bmm(block, jacobian, out=out[atom:atom + atoms])
        atom, slot = atom + atoms, slot + atoms * width
    return out


def _transpose(jacobians: tuple[torch.Tensor, ...], values: torch.Tensor, num_slots: int) -> torch.Tensor:
    """Per-atom gradients [N, K, D] -> J_e^T g_i of each edge, in slots [S, K, 3]."""
    count = values.shape[1]
    out = values.new_empty(num_slots, count, 3)
    atom, slot = 0, 0
    for jacobian in jacobians:
        atoms, width = jacobian.shape[0], jacobian.shape[1] // 3
        products = torch.bmm(values[atom:atom + atoms], jacobian.transpose(1, 2))  # [n, K, M 3]
        out[slot:slot + atoms * width].view(atoms, width, count, 3).copy_(
            products.view(atoms, count, width, 3).permute(0, 2, 1, 3))
        atom, slot = atom + atoms, slot + atoms * width
    return out


class _Apply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: torch.Tensor, *jacobians: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(*jacobians)
        ctx.num_slots = values.shape[0]
        return _apply(jacobians, values)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return (_Transpose.apply(grad, ctx.num_slots, *ctx.saved_tensors),) + (None,) * len(ctx.saved_tensors)


class _Transpose(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad: torch.Tensor, num_slots: int, *jacobians: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(*jacobians)
        return _transpose(jacobians, grad, num_slots)

    @staticmethod
    def backward(ctx, upstream: torch.Tensor):
        return (_Apply.apply(upstream, *ctx.saved_tensors), None) + (None,) * len(ctx.saved_tensors)


def linear_change(cached: Cached, change: torch.Tensor) -> torch.Tensor:
    """sum_e J_e dr_e into each atom [N, D] for edge vector changes [E, 3]."""
    assert cached.jacobians is not None and cached.slots is not None
    slotted = change.new_zeros(cached.num_slots, 3).index_add(0, cached.slots, change)  # one edge per slot
    return _Apply.apply(slotted.unsqueeze(1), *cached.jacobians).squeeze(1)


def edge_gradients(cached: Cached, descriptor_gradients: torch.Tensor) -> torch.Tensor:
    """dE_k/dr_e = J_e^T dE_k/dp_i [E, K, 3] from per-atom gradients [N, K, D]."""
    assert cached.jacobians is not None and cached.slots is not None
    slotted = _Transpose.apply(descriptor_gradients, cached.num_slots, *cached.jacobians)
    return slotted.index_select(0, cached.slots)


def forces_from_gradients(cached: Cached, batch: Batch, descriptor_gradients: torch.Tensor) -> torch.Tensor:
    """Forces -dE_k/dx [N, K, 3] from per-atom gradients dE_k/dp_i [N, K, D]: each edge's
    dE_k/dr_e (r_e = x_sender - x_receiver + shift) pushes its receiver by +, its sender by -."""
    edges = edge_gradients(cached, descriptor_gradients)  # [E, K, 3]
    receivers, senders = batch.edge_index[0], batch.edge_index[1]
    num_atoms = batch.positions.shape[0]
    return scatter_sum(edges, receivers, num_atoms) - scatter_sum(edges, senders, num_atoms)
