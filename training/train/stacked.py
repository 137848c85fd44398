"""K SOAPNet ensemble members stepped as one: their weights stacked, one cached descriptor.

With its descriptor cached (``descriptors.py``) a SOAPNet step is the MLP and the products
with the descriptor's Jacobians J. Members of an ensemble (the alpha search, a committee)
share the batch, hence the descriptors and J: only their weights differ. Here the members'
weights are stacked ([K, ...], ``torch.func.stack_module_state``) and their MLPs run as one
``torch.func.vmap``; the forces of all members come from one product with J per
configuration:

    g_k = dE_k/dp [N, K, D] (a gradient with its graph),  dE_k/dr_e = J_e^T g_k,
    F_k = sum over the edges into an atom minus those out of it,

which is -dE_k/dx of the linearised model of ``descriptors.py`` without taking it through
the positions. The loss is the sum of the members' own losses (each member's weights see
only theirs); each member's gradient is clipped by its own norm, and one Adam steps them all,
which is K Adams with the same settings (Adam is elementwise): member k ends as the
member-by-member ensemble would have trained it, to float rounding (a test).

The members' modules and optimisers stay the source of truth between epochs: ``to_members``
writes the stacked weights and Adam moments back before validation and checkpoints, so the
checkpoint is the ensemble's usual one and resumes either way; ``from_members`` stacks them
again. A batch the cache cannot hold goes member by member between the two.
"""
from __future__ import annotations

import copy
import re
import warnings
from typing import Optional

import torch
from torch import nn

from ..data.batching import Batch, select_rows
from ..models.layers import scatter_sum
from ..models.potential import Potential
from .descriptors import DescriptorCache, atomic_energies_of, forces_from_gradients
from .loop import FitSettings
from .losses import rows_for_forces
from .optimizer import adam

# Settings the members must share to take one Adam step with one schedule.
OPTIMISER_SETTINGS = ("lr", "lr_final", "grad_clip", "schedule", "max_atoms_per_pass")


class _Energies(nn.Module):
    """A potential's per-atom energies [N, K] from descriptors: what is stacked."""

    def __init__(self, potential: Potential) -> None:
        super().__init__()
        self.potential = potential

    def forward(self, descriptors: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        return atomic_energies_of(self.potential, descriptors, species)


def stackable(potentials: list[Potential], settings: list[FitSettings], cache: Optional[DescriptorCache]) -> bool:
    """True when the members can step as one: several SOAPNets of one output each on a shared
    descriptor cache, with the same optimiser settings."""
    first = settings[0]
    return (cache is not None and len(potentials) > 1
            and all(p.head.num_outputs == 1 for p in potentials)
            and all(getattr(s, n) is getattr(first, n) or getattr(s, n) == getattr(first, n)
                    for s in settings for n in OPTIMISER_SETTINGS)
            and first.max_atoms_per_pass is None)


class StackedMembers:
    """The stacked form of ensemble members (their potentials, settings, optimisers and
    schedulers, as ``ensemble._Member`` holds them)."""

    def __init__(self, members: list, cache: DescriptorCache) -> None:
        self.members, self.cache = members, cache
        self.wrappers = [_Energies(m.potential) for m in members]
        # A weightless copy to call with the stacked weights; in eval mode, so that SOAPNet's
        # first-batch standardisation (already done, below) is not looked at under vmap.
        self.base = copy.deepcopy(self.wrappers[0]).to("meta").eval()
        self.names = [name for name, _ in self.wrappers[0].named_parameters()]
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        self.optimizer: Optional[torch.optim.Adam] = None
        self.with_forces = any(m.settings.force_term() is not None for m in members)

    def from_members(self) -> None:
        """Stack the members' weights, buffers and Adam moments."""
        self.params, self.buffers = torch.func.stack_module_state(self.wrappers)
        stacked = [self.params[name] for name in self.names]
        self.optimizer = adam(stacked, self.members[0].optimizer.param_groups[0]["lr"])
        per_member = [list(m.potential.parameters()) for m in self.members]
        for i, parameter in enumerate(stacked):
            states = [m.optimizer.state.get(params[i]) for m, params in zip(self.members, per_member)]
            if states[0]:
                self.optimizer.state[parameter] = {
                    "step": states[0]["step"].clone(),
                    "exp_avg": torch.stack([s["exp_avg"] for s in states]),
                    "exp_avg_sq": torch.stack([s["exp_avg_sq"] for s in states]),
                }

    def to_members(self) -> None:
        """Write the stacked weights and Adam moments back into the members."""
        assert self.optimizer is not None
        with torch.no_grad():
            for k, m in enumerate(self.members):
                for name, parameter in zip(self.names, m.potential.parameters()):
                    parameter.copy_(self.params[name][k])
                    state = self.optimizer.state.get(self.params[name])
                    if state:
                        m.optimizer.state[parameter] = {"step": state["step"].clone(),
                                                        "exp_avg": state["exp_avg"][k].clone(),
                                                        "exp_avg_sq": state["exp_avg_sq"][k].clone()}

    def _standardize(self, descriptors: torch.Tensor) -> None:
        """SOAPNet's first-training-batch standardisation, as each member's first step does."""
        fresh = [m for m in self.members if not bool(m.potential.representation.standardized)]
        for m in fresh:
            m.potential.representation.features_of(descriptors)  # training mode: sets the statistics
        if fresh:
            self.from_members()

    def step(self, batch: Batch) -> Optional[list[float]]:
        """One optimiser step of every member on ``batch``; their losses, or None when the
        cache cannot hold the batch (then step member by member)."""
        cached = self.cache.of(self.members[0].potential, batch)
        if cached is None:
            return None
        needed = self._force_rows(batch)  # [B]: the rows whose forces some member's force term uses
        atoms = needed[batch.batch]  # [N]
        part, part_cached = batch, cached
        if bool(atoms.any()) and not bool(needed.all()):
            part = select_rows(batch, needed)
            part_cached = self.cache.of(self.members[0].potential, part)
        if bool(atoms.any()) and (part_cached is None or part_cached.jacobians is None):
            return None  # those rows were cached without Jacobians
        descriptors = cached.descriptors
        self._standardize(descriptors)
        assert self.optimizer is not None
        count = len(self.members)
        # The per-atom MLP in two calls: with the descriptor's gradient for those atoms only.
        inputs = descriptors.detach()[atoms].unsqueeze(0).expand(count, -1, -1).requires_grad_(True)
        energies_of = torch.func.vmap(self._energies, in_dims=(0, 0, 0, None))
        atomic = descriptors.new_zeros((count, descriptors.shape[0], 1))
        if bool(atoms.any()):
            atomic_forced = energies_of(self.params, self.buffers, inputs, batch.species[atoms])  # [K, N_f, 1]
            atomic = atomic.index_copy(1, atoms.nonzero()[:, 0], atomic_forced)
        if not bool(atoms.all()):
            rest = descriptors.detach()[~atoms].unsqueeze(0).expand(count, -1, -1)
            atomic = atomic.index_copy(1, (~atoms).nonzero()[:, 0],
                                       energies_of(self.params, self.buffers, rest, batch.species[~atoms]))
        energies = scatter_sum(atomic[:, :, 0].transpose(0, 1), batch.batch, batch.num_rows)  # [B, K]
        forces = None
        if self.with_forces:
            if batch.forces is None:
                raise ValueError("the loss has a force term but the batch has no force labels")
            forces = descriptors.new_zeros((descriptors.shape[0], count, 3))
            if bool(atoms.any()):
                assert part_cached is not None
                (gradients,) = torch.autograd.grad(atomic_forced.sum(), inputs, create_graph=True)  # [K, N_f, D]
                part_forces = forces_from_gradients(part_cached, part, gradients.transpose(0, 1).contiguous())
                forces = forces.index_copy(0, atoms.nonzero()[:, 0], part_forces)  # [N, K, 3]
        losses = []
        for k, m in enumerate(self.members):
            loss = m.settings.loss(energies[:, k:k + 1], batch)
            term = m.settings.force_term()
            if term is not None and forces is not None:
                loss = loss + term(forces[:, k:k + 1], batch)
            losses.append(loss)
        stacked = [self.params[name] for name in self.names]
        for parameter in stacked:
            parameter.grad = None
        torch.stack(losses).sum().backward(inputs=stacked)
        self._clip(stacked)
        self.optimizer.param_groups[0]["lr"] = self.members[0].optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        with warnings.catch_warnings():  # the members' own optimisers do not step here, by design
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            for m in self.members:
                m.scheduler.step()
        return [float(loss.detach()) for loss in losses]

    def _force_rows(self, batch: Batch) -> torch.Tensor:
        """[B] bool: the rows whose forces some member's force term uses (none without one)."""
        needed = torch.zeros(batch.num_rows, dtype=torch.bool, device=batch.num_atoms.device)
        for m in self.members:
            term = m.settings.force_term()
            if term is not None:
                needed |= rows_for_forces(term, batch)
        return needed

    def _energies(self, params: dict, buffers: dict, descriptors: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.base, (params, buffers), (descriptors, species))

    def _clip(self, stacked: list[torch.Tensor]) -> None:
        """Each member's gradient clipped by its own norm, as ``clip_grad_norm_`` does."""
        grads = [p.grad for p in stacked if p.grad is not None]
        count = len(self.members)
        norms = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.reshape(count, -1), dim=1)
                                                      for g in grads]), dim=0)  # [K]
        clip = torch.tensor([m.settings.grad_clip for m in self.members], dtype=norms.dtype)
        factor = torch.clamp(clip / (norms + 1e-6), max=1.0)
        for g in grads:
            g.mul_(factor.view(-1, *([1] * (g.dim() - 1))))
