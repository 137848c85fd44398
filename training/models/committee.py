"""A committee: K potentials of one architecture whose mean is the prediction and whose
spread says how far to trust it (the members agree where they saw data and drift apart away
from it).

``forward`` has the model file's contract (``Potential.forward``) plus two outputs:

    energy_std [] eV: the standard deviation of the members' total energies;
    forces_std [N, 3] eV/Å: that of each force component.

energy, energies, forces and virial are the members' means, so a consumer that reads only
those (the KIM driver, LAMMPS) runs the committee's mean potential.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from .potential import Potential


class Committee(nn.Module):
    def __init__(self, members: List[Potential]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"a committee needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)
        self.size = len(members)
        self.cutoff = members[0].cutoff

    def forward(
        self,
        positions: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        node_mask: torch.Tensor,
        layer_edges: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        outputs: List[Dict[str, torch.Tensor]] = []
        for member in self.members:
            # Each member differentiates its own energy: a fresh leaf per member.
            outputs.append(member(positions.detach(), species, edge_index, edge_shift, node_mask, layer_edges))
        result: Dict[str, torch.Tensor] = {}
        for key in ("energy", "energies", "forces", "virial", "edge_gradients"):
            result[key] = torch.stack([out[key] for out in outputs]).mean(0)
        energies = torch.stack([out["energy"] for out in outputs])
        forces = torch.stack([out["forces"] for out in outputs])
        result["energy_std"] = energies.std(0, unbiased=False)
        result["forces_std"] = forces.std(0, unbiased=False)
        return result

    @torch.jit.unused
    def atomic_energies(self, positions: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                        edge_shift: torch.Tensor) -> torch.Tensor:
        """The members' mean per-atom energies [N, 1] (what training's metrics evaluate)."""
        return torch.stack([m.atomic_energies(positions, species, edge_index, edge_shift)
                            for m in self.members]).mean(0)
