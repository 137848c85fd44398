"""Small building blocks shared by every model: activations, MLPs, scatter, and the radial
bases and cutoff envelopes of the message-passing models (docs/radial_basis.md)."""
from __future__ import annotations

import math
import warnings
from typing import Callable, Dict

import torch
from torch import nn


class ShiftedSoftplus(nn.Module):
    """ssp(x) = softplus(x) - ln 2, so ssp(0) = 0."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(math.log(2.0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - self.shift


# exp(x) for x below this is set to 0 rather than computed (GaussianRBF.forward).
SUBNORMAL_SAFE_EXPONENT = -80.0

# gamma of exp(-gamma (d - mu)^2) from the gap between neighbouring centres (Å).
GAUSSIAN_WIDTHS: Dict[str, Callable[[float], float]] = {
    # DGL-LifeSci's RBFExpansion, the paper's SchNet: gamma = 1/gap, sigma = sqrt(gap/2)
    # (0.14 Å for 128 centres on 5 Å). Dimensionally odd, as in DGL: the number 1/gap, read
    # as 1/Å^2, so the width depends on the length unit.
    "dgl": lambda gap: 1.0 / gap,
    # sigma = gap (0.039 Å for 128 centres on 5 Å): eipnn's width before issue 22.
    "spacing": lambda gap: 0.5 / gap**2,
}


class GaussianRBF(nn.Module):
    """exp(-gamma (d - mu_k)^2) with centres mu_k = linspace(0, cutoff, num_basis) and
    gamma = GAUSSIAN_WIDTHS[width](gap), gap = mu_1 - mu_0 = cutoff / (num_basis - 1).

    ``centers`` and ``coefficient`` (= -gamma) are buffers, so a state dict restores them:
    a loaded network keeps the width it was trained with whatever ``width`` built it (a
    warning says so when the two differ)."""

    def __init__(self, num_basis: int, cutoff_angstrom: float, width: str = "dgl") -> None:
        super().__init__()
        if width not in GAUSSIAN_WIDTHS:
            raise ValueError(f"unknown Gaussian width '{width}'; known: {', '.join(sorted(GAUSSIAN_WIDTHS))}")
        if num_basis < 2:
            raise ValueError(f"a Gaussian basis needs at least 2 centres, got num_basis={num_basis}")
        gap = cutoff_angstrom / (num_basis - 1)
        self.width = width
        self.gamma = GAUSSIAN_WIDTHS[width](gap)  # 1/Å^2, what ``width`` builds
        self.smallest_exponent = SUBNORMAL_SAFE_EXPONENT
        self.register_buffer("centers", torch.linspace(0.0, cutoff_angstrom, num_basis))
        self.register_buffer("coefficient", torch.tensor(-self.gamma))

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        # [E] -> [E, num_basis]
        diff = distance.unsqueeze(-1) - self.centers
        exponent = self.coefficient * diff * diff
        # Values below e^-80 (1.8e-35) become exact zeros: in float32 the band e^-87..e^-103
        # is subnormal, and x86 arithmetic on subnormals is ~30x slower. With the DGL width
        # every edge has centres in that band, and every matmul and product that touched them
        # (forward and backward) ran at a fraction of its speed: 2x on a whole training step
        # (docs/training.md). The change to any value is below 1.8e-35, so invisible in float64 too.
        return torch.where(exponent > self.smallest_exponent, torch.exp(exponent), torch.zeros_like(exponent))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        loaded = state_dict.get(prefix + "coefficient")
        if loaded is not None and not math.isclose(-float(loaded), self.gamma, rel_tol=1e-5):
            warnings.warn(
                f"{prefix}coefficient: the loaded Gaussian width (gamma {-float(loaded):.4g}) replaces "
                f"the '{self.width}' width this model was built with (gamma {self.gamma:.4g}); the "
                "network is kept as it was trained. Weights from before the 'dgl' default (issue 22) "
                "give this: set rbf_width: spacing in their config to build them as they are."
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class BesselRBF(nn.Module):
    """sin(n pi x) / x with x = r / r_c, n = 1..num_basis: the Bessel functions of DimeNet
    and NequIP, sin(n pi r / r_c) / r, in units of r_c, with fixed frequencies.

    Dimensionless and O(1) at bonding distances, like the Gaussians (2 sin(n pi x) at the
    nearest neighbours of Si, x = 0.47), where DimeNet's sqrt(2 / r_c) normalisation gives
    values 8x smaller at 5 Å, which trained worse (docs/radial_basis.md). Each function is 0
    at r_c (not its slope: the envelope that multiplies the filters takes care of that); the
    highest has wavelength 2 r_c / num_basis."""

    def __init__(self, num_basis: int, cutoff_angstrom: float) -> None:
        super().__init__()
        if num_basis < 1:
            raise ValueError(f"a Bessel basis needs at least 1 function, got num_basis={num_basis}")
        # n and r_c kept apart, so that n r / r_c is an integer at r = r_c in float32 too.
        self.register_buffer("n", torch.arange(1, num_basis + 1).to(torch.get_default_dtype()))
        self.register_buffer("cutoff", torch.tensor(float(cutoff_angstrom)))

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        # [E] -> [E, num_basis]. sin(n pi x) / x = pi n sinc(n x): finite and smooth at r = 0.
        nx = distance.unsqueeze(-1) / self.cutoff * self.n
        return math.pi * self.n * torch.sinc(nx)


class CosineCutoff(nn.Module):
    """0.5 (cos(pi r / r_c) + 1) inside r_c, 0 outside: value and slope vanish at r_c,
    so energies and forces go smoothly to zero there (needed for energy-conserving MD);
    the curvature does not (pi^2 / (2 r_c^2) just inside)."""

    def __init__(self, cutoff_angstrom: float) -> None:
        super().__init__()
        self.register_buffer("cutoff", torch.tensor(float(cutoff_angstrom)))

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        value = 0.5 * (torch.cos(distance * (math.pi / self.cutoff)) + 1.0)
        return value * (distance < self.cutoff).to(distance.dtype)


class PolynomialCutoff(nn.Module):
    """1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), x = r / r_c, inside r_c and
    0 outside (DimeNet's envelope without its 1/r, NequIP's PolynomialCutoff; p = 6 by
    default: 1 - 28 x^6 + 48 x^7 - 21 x^8). Value, slope and curvature vanish at r_c, so
    the force constants are continuous too; it falls monotonically and stays near 1 up to
    about r_c / 2."""

    def __init__(self, cutoff_angstrom: float, exponent: int = 6) -> None:
        super().__init__()
        p = float(exponent)
        self.register_buffer("cutoff", torch.tensor(float(cutoff_angstrom)))
        self.exponent = int(exponent)
        self.c0 = -(p + 1.0) * (p + 2.0) / 2.0
        self.c1 = p * (p + 2.0)
        self.c2 = -p * (p + 1.0) / 2.0

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        x = distance / self.cutoff
        power = x.pow(self.exponent)
        value = 1.0 + power * (self.c0 + x * (self.c1 + x * self.c2))
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
