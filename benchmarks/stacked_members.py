"""K potentials of one architecture as one set of stacked parameters, evaluated together:
the vmap alternative to ``training.train.ensemble``'s member-by-member steps, kept here
because ``bench_training_step.py --part ensemble`` measures it against them (it computes the
same function; on this CPU it is slower).

Every parameter and buffer of the K members is stacked along a new leading dimension
([K, ...]) and the members run as one ``torch.func.vmap`` of the shared architecture: a
dense layer becomes one batched matmul, and everything that depends on the batch alone (the
edge geometry, the distinct edge lengths, the radial basis, SOAP descriptors) is computed
once for all K members. Members never mix: member k's energies depend on slice k alone, so
the gradient of the summed losses is, slice by slice, each member's own gradient.

Forces need one derivative per member. Each member gets its own copy of the positions
([K, N, 3], one leaf), so one backward pass gives all K force sets: their graphs are
disjoint, and d(sum_k E_k)/dx_k = dE_k/dx_k.
"""
from __future__ import annotations

import copy
from typing import Dict, List

import torch
from torch import nn
from torch.func import functional_call, vmap

from eipnn_training.data.batching import Batch
from eipnn_training.models.potential import Potential


class _FromEdges(nn.Module):
    """``potential.atomic_energies_from_edges`` as a module's forward, for functional_call."""

    def __init__(self, potential: Potential) -> None:
        super().__init__()
        self.potential = potential

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, vectors: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        # Every layer's edges named: inside vmap ``lengths.requires_grad`` reads False, and
        # SchNet would take its energy-only path (distinct lengths, which vmap cannot do and
        # whose forces would be wrong); with them named it computes the same function per edge.
        every_edge = [int(lengths.shape[-1])] * int(getattr(self.potential.representation, "num_layers", 1))
        return self.potential.atomic_energies_from_edges(species, edge_index, vectors, lengths, every_edge)


class _FromPositions(_FromEdges):
    def forward(self, positions: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                edge_shift: torch.Tensor) -> torch.Tensor:
        return self.potential.atomic_energies(positions, species, edge_index, edge_shift)


class StackedPotentials:
    """K members of one architecture; ``params`` are leaves [K, ...] an optimiser updates.

    The members are evaluated in eval mode (no model here behaves differently in training
    but SOAPNet's first-batch standardisation, which must have happened before stacking:
    ``training.train.ensemble`` does it member by member, as ``fit`` would)."""

    def __init__(self, members: List[Potential]) -> None:
        if not members:
            raise ValueError("a stack needs at least one member")
        self.template = copy.deepcopy(members[0]).eval()
        names = [name for name, _ in self.template.named_parameters()]
        buffer_names = [name for name, _ in self.template.named_buffers()]
        states = [dict(m.named_parameters()) | dict(m.named_buffers()) for m in members]
        self.params: Dict[str, torch.Tensor] = {
            name: torch.stack([s[name].detach() for s in states]).requires_grad_(True) for name in names
        }
        self.buffers: Dict[str, torch.Tensor] = {
            name: torch.stack([s[name].detach() for s in states]) for name in buffer_names
        }
        self.size = len(members)
        self._from_edges = _FromEdges(self.template)
        self._from_positions = _FromPositions(self.template)

    def _state(self, prefix: str = "potential.") -> Dict[str, torch.Tensor]:
        return {prefix + name: value for name, value in (self.params | self.buffers).items()}

    def member_state(self, k: int) -> Dict[str, torch.Tensor]:
        """Member k's state dict (detached copies, the keys of ``Potential.state_dict``)."""
        values = self.params | self.buffers
        return {name: values[name][k].detach().clone() for name in self.template.state_dict()}

    def load_member_state(self, k: int, state: Dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, value in (self.params | self.buffers).items():
                value[k].copy_(state[name])

    def member(self, k: int) -> Potential:
        """A stand-alone copy of member k (a ``Potential`` with its weights)."""
        potential = copy.deepcopy(self.template)
        potential.load_state_dict(self.member_state(k))
        return potential

    def to(self, device: torch.device, dtype: torch.dtype) -> "StackedPotentials":
        cast = lambda t: t.to(device=device, dtype=dtype if t.is_floating_point() else None)  # noqa: E731
        self.params = {n: cast(p.detach()).requires_grad_(True) for n, p in self.params.items()}
        self.buffers = {n: cast(b) for n, b in self.buffers.items()}
        self.template.to(device=device, dtype=dtype)
        return self

    def atomic_energies(self, batch: Batch) -> torch.Tensor:
        """[K, N, outputs] eV, no derivative by the geometry (energy training, evaluation)."""
        def member(state, positions, species, edge_index, edge_shift):
            return functional_call(self._from_positions, state, (positions, species, edge_index, edge_shift))
        return vmap(member, in_dims=(0, None, None, None, None))(
            self._state(), batch.positions, batch.species, batch.edge_index, batch.edge_shift)

    def atomic_energies_and_positions(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """([K, N, outputs] eV, the [K, N, 3] positions leaf they depend on, one copy per member)."""
        positions = batch.positions.detach().unsqueeze(0).repeat(self.size, 1, 1).requires_grad_(True)
        # The kept edges from the shared positions (the same for every copy), then per-member
        # vectors: the vmapped members see batched geometry but no data-dependent choice.
        edge_index, _, _, kept = self.template.edges_inside(batch.positions, batch.edge_index, batch.edge_shift)
        shift = batch.edge_shift if kept is None else batch.edge_shift.index_select(0, kept)
        vectors = positions[:, edge_index[1]] - positions[:, edge_index[0]] + shift
        lengths = torch.linalg.vector_norm(vectors, dim=2)

        def member(state, vectors, lengths, species, edge_index):
            return functional_call(self._from_edges, state, (species, edge_index, vectors, lengths))
        atomic = vmap(member, in_dims=(0, 0, 0, None, None))(
            self._state(), vectors, lengths, batch.species, edge_index)
        return atomic, positions


def configuration_energies(atomic: torch.Tensor, batch: Batch) -> torch.Tensor:
    """[K, B, outputs] eV: the members' per-atom energies [K, N, outputs] summed per row."""
    out = atomic.new_zeros((atomic.shape[0], batch.num_rows, atomic.shape[2]))
    return out.index_add(1, batch.batch, atomic)


def member_forces(energies: torch.Tensor, positions: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """[K, N, outputs, 3] eV/Å from energies [K, B, outputs] and the positions leaf [K, N, 3];
    one backward pass per output (one for a single-output potential)."""
    grads = [torch.autograd.grad(energies[:, :, k].sum(), positions, create_graph=create_graph,
                                 retain_graph=True)[0] for k in range(energies.shape[2])]
    return -torch.stack(grads, dim=2)
