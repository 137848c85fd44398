"""Small building blocks shared by every model."""
from __future__ import annotations

import math

import torch
from torch import nn


class ShiftedSoftplus(nn.Module):
    """ssp(x) = softplus(x) - ln 2, so ssp(0) = 0."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(math.log(2.0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - self.shift


class GaussianRBF(nn.Module):
    """Gaussians centred on a uniform grid over [0, cutoff]; width = grid spacing."""

    def __init__(self, num_basis: int, cutoff_angstrom: float) -> None:
        super().__init__()
        centers = torch.linspace(0.0, cutoff_angstrom, num_basis)
        spacing = cutoff_angstrom / (num_basis - 1)
        self.register_buffer("centers", centers)
        self.register_buffer("coefficient", torch.tensor(-0.5 / spacing**2))

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        # [E] -> [E, num_basis]
        diff = distance.unsqueeze(-1) - self.centers
        return torch.exp(self.coefficient * diff * diff)


class CosineCutoff(nn.Module):
    """0.5 (cos(pi r / r_c) + 1) inside r_c, 0 outside: value and slope vanish at r_c,
    so energies and forces go smoothly to zero there (needed for energy-conserving MD)."""

    def __init__(self, cutoff_angstrom: float) -> None:
        super().__init__()
        self.register_buffer("cutoff", torch.tensor(float(cutoff_angstrom)))

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        value = 0.5 * (torch.cos(distance * (math.pi / self.cutoff)) + 1.0)
        return value * (distance < self.cutoff).to(distance.dtype)


def mlp(sizes: list[int], activate_last: bool = False) -> nn.Sequential:
    """Dense layers with shifted-softplus activations between them."""
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if k < len(sizes) - 2 or activate_last:
            layers.append(ShiftedSoftplus())
    return nn.Sequential(*layers)


def scatter_sum(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum rows of ``values`` into ``size`` bins given by ``index`` (index_add_, no deps)."""
    out = torch.zeros((size,) + values.shape[1:], dtype=values.dtype, device=values.device)
    return out.index_add_(0, index, values)
