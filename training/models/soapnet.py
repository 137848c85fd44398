"""SOAPNet (the paper's descriptor model): SOAP power spectrum -> 5-layer MLP -> features.

The descriptor is computed inside the model (``soap.SOAP``) from the edge list, so forces and
the virial come by autograd and the model exports to TorchScript like SchNet. The per-atom
energy head and the sum pooling are the ``Potential``'s.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from .layers import mlp
from .soap import SOAP

# Standard deviations are floored at this fraction of the largest one: a feature (nearly)
# constant in the fitting atoms must not be blown up when it varies later.
RELATIVE_STD_FLOOR = 1e-4


class SOAPNet(nn.Module):
    """Per-atom features [N, num_features]: MLP(standardised SOAP power spectrum).

    Parameters
    ----------
    num_species, cutoff_angstrom: of the model; the SOAP neighbour radius is the cutoff.
    r_cut_angstrom: dscribe's GTO ``r_cut`` (default: the cutoff).
    n_max, l_max, sigma_angstrom: SOAP settings (the paper: 8, 6, 1.0 Å -> 252 features).
    smooth_cutoff, smooth_width_angstrom: taper neighbours to zero over the last
        ``smooth_width_angstrom`` before the cutoff (needed for energy-conserving MD).
    num_features, num_dense: width and number of the dense layers (the paper: 128, 5).
    """

    def __init__(
        self,
        num_species: int,
        cutoff_angstrom: float = 5.0,
        r_cut_angstrom: float | None = None,
        n_max: int = 8,
        l_max: int = 6,
        sigma_angstrom: float = 1.0,
        smooth_cutoff: bool = True,
        smooth_width_angstrom: float = 1.0,
        num_features: int = 128,
        num_dense: int = 5,
    ) -> None:
        super().__init__()
        if num_dense < 1:
            raise ValueError(f"num_dense must be at least 1, got {num_dense}")
        self.soap = SOAP(
            num_species,
            r_cut_angstrom=cutoff_angstrom if r_cut_angstrom is None else r_cut_angstrom,
            n_max=n_max,
            l_max=l_max,
            sigma_angstrom=sigma_angstrom,
            cutoff_angstrom=cutoff_angstrom,
            smooth_cutoff=smooth_cutoff,
            smooth_width_angstrom=smooth_width_angstrom,
        )
        # Descriptor-only model: no message passing, so ghost atoms need one cutoff only.
        self.num_layers = 1
        self.num_features = num_features
        self.dense = mlp([self.soap.num_features] + [num_features] * num_dense, activate_last=True)
        # SOAP features span many orders of magnitude (1e-9 .. 1e3 on Si): the MLP sees
        # (p - mean) / std. The statistics come from ``fit_standardization`` or, if it was not
        # called, from the first batch seen in training mode (a data-dependent init, so any
        # trainer gets a standardised SOAPNet); they are buffers, saved with the weights.
        self.register_buffer("feature_mean", torch.zeros(self.soap.num_features))
        self.register_buffer("feature_std", torch.ones(self.soap.num_features))
        self.register_buffer("standardized", torch.tensor(False))
        self.relative_std_floor = RELATIVE_STD_FLOOR

    def fit_standardization(self, descriptors: torch.Tensor) -> None:
        """Set the input standardisation from SOAP features [M, num_soap] of training atoms."""
        if descriptors.dim() != 2 or descriptors.shape[1] != self.soap.num_features:
            raise ValueError(
                f"descriptors must be [atoms, {self.soap.num_features}], "
                f"got {list(descriptors.shape)}"
            )
        if descriptors.shape[0] < 2:
            raise ValueError("fit_standardization needs the descriptors of at least 2 atoms")
        self._set_statistics(descriptors)

    def _set_statistics(self, descriptors: torch.Tensor) -> None:
        with torch.no_grad():
            descriptors = descriptors.detach().to(self.feature_mean.dtype)
            std = descriptors.std(dim=0, unbiased=False)
            floor = torch.clamp(std.max() * self.relative_std_floor, min=1e-12)
            self.feature_mean.copy_(descriptors.mean(dim=0))
            self.feature_std.copy_(torch.maximum(std, floor))
            self.standardized.fill_(True)

    def forward(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        layer_edges: Optional[List[int]] = None,  # one layer: its edges are all the edges
    ) -> torch.Tensor:
        return self.features_of(self.soap(species, edge_index, vectors, lengths))

    def features_of(self, descriptors: torch.Tensor) -> torch.Tensor:
        """Per-atom features [N, F] from SOAP features [N, num_soap]: all the weights of the
        model are here, the descriptor has none (so training can compute it once:
        ``training/train/descriptors.py``)."""
        if self.training and not bool(self.standardized) and descriptors.shape[0] > 1:
            self._set_statistics(descriptors)
        return self.dense((descriptors - self.feature_mean) / self.feature_std)  # [N, F]

    @torch.jit.unused
    def descriptors_and_jacobians(
        self, species: torch.Tensor, edge_index: torch.Tensor, vectors: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """SOAP features [N, num_soap] and dp_i/dr_e [E, num_soap, 3] (``SOAP``'s)."""
        return self.soap.descriptors_and_jacobians(species, edge_index, vectors)
