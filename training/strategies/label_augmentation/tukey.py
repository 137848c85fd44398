"""Tukey's biweight loss and the LA training loss (METHOD.md "Label augmentation", 4).

    loss = MSE(DFT rows) + alpha * (N_train / N_added) * Tukey(EIP rows)

Tukey: residuals are scaled by ``s = 1.4826 * median |y - y_hat|`` over every row of the
batch with a target (DFT and EIP rows, predictions detached, so ``s`` is a constant of the
step), ``r = (y - y_hat) / s`` and ``rho(r) = c²/6 [1 - (1 - (r/c)²)³]`` for |r| <= c,
``c²/6`` beyond, averaged over the EIP rows. An EIP label far from what the DFT-trained
model predicts (an EIP that is wrong there) then pulls with zero force.

Forces (``la.force_weight`` > 0, beyond the paper): the selected rows also carry their EIP's
forces, under the same robust loss with its own scale: ``s_F = 1.4826 * median |F - F_hat|``
over every present force component of the batch (DFT rows' when DFT forces are trained,
and EIP rows'; detached), rho of the EIP rows' components / s_F, averaged over them:

    force term = w_DFT * MSE(DFT forces) + alpha * balance * la.force_weight * Tukey(EIP forces)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...distributed import batch_mean, gather_objects, world
from ...data.batching import KIND_DFT, KIND_EIP, Batch
from ...train.losses import force_rows, labelled_rows, masked_force_mse, masked_mse

TUKEY_C = 4.6851  # 95 % efficiency at the normal distribution
MAD_TO_SIGMA = 1.4826  # MAD * 1.4826 = sigma for normal residuals


def tukey_rho(r: torch.Tensor, c: float = TUKEY_C) -> torch.Tensor:
    """rho(r) elementwise; zero gradient for |r| >= c."""
    # Clamping (instead of torch.where) keeps the gradient exactly 0 beyond c and never
    # evaluates the polynomial on a huge r, whose overflow would turn 0 * inf into NaN.
    inside = r.clamp(-c, c) / c
    return (c * c / 6.0) * (1.0 - (1.0 - inside * inside) ** 3)


def mad_scale(residuals_ev: torch.Tensor) -> torch.Tensor:
    """1.4826 * median |residual| (eV) of a detached residual vector, never exactly 0;
    under DDP of the residuals of the global batch (every rank's, gathered)."""
    absolute = residuals_ev.detach().abs()
    if world().distributed:
        absolute = torch.cat([part.to(absolute.device) for part in gather_objects(absolute.cpu())])
    if absolute.numel() == 0:  # nothing to scale (the term is then 0)
        return torch.ones((), dtype=absolute.dtype, device=absolute.device)
    scale = MAD_TO_SIGMA * torch.quantile(absolute, 0.5)  # the usual median (mean of middle two)
    # s = 0 only when most residuals are exactly 0: any non-zero one is then an outlier.
    return scale.clamp_min(torch.finfo(absolute.dtype).tiny)


def tukey_term(predicted: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean rho over the EIP rows of ``batch`` (first output); 0 without EIP rows."""
    present = batch.target_mask[:, 0]
    eip = present & (batch.kind == KIND_EIP)
    residuals = batch.targets[:, 0] - predicted[:, 0]  # [B] eV
    scale = mad_scale(residuals[present])  # DFT and EIP rows together
    return batch_mean(tukey_rho(residuals[eip] / scale))


@dataclass
class AugmentedLoss:
    """``MSE(DFT) + alpha * balance * EIP term``; ``balance`` = N_train / N_added.

    ``eip_loss`` "mse" replaces Tukey by the plain MSE of the EIP rows (the ablation).
    """

    alpha: float
    balance: float
    eip_loss: str = "tukey"

    def __post_init__(self) -> None:
        if self.eip_loss not in ("tukey", "mse"):
            raise ValueError(f"eip_loss must be 'tukey' or 'mse', not '{self.eip_loss}'")

    def __call__(self, predicted: torch.Tensor, batch: Batch) -> torch.Tensor:
        dft = masked_mse(predicted, batch, batch.kind == KIND_DFT)
        if self.eip_loss == "tukey":
            eip = tukey_term(predicted, batch)
        else:
            eip = masked_mse(predicted, batch, batch.kind == KIND_EIP)
        return dft + self.alpha * self.balance * eip


def tukey_force_term(forces: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean rho over the force components of the EIP rows' atoms (forces [N, 1, 3] eV/Å),
    scaled by the MAD of every present force component of the batch; 0 without any."""
    eip = force_rows(batch, batch.kind == KIND_EIP)  # [N, 1]
    if batch.forces is None:  # no force labels in this batch at all
        return batch_mean(forces.sum().reshape(1)[:0])
    residuals = batch.forces - forces  # [N, 1, 3] eV/Å
    scale = mad_scale(residuals[batch.force_mask])  # DFT and EIP atoms together
    return batch_mean(tukey_rho(residuals[eip] / scale))


@dataclass
class AugmentedForceLoss:
    """``dft_weight * MSE(DFT forces) + alpha * balance * eip_weight * EIP force term``
    (Tukey, or plain MSE for the ablation); weights in Å², terms in (eV/Å)²."""

    dft_weight: float
    alpha: float
    balance: float
    eip_weight: float
    eip_loss: str = "tukey"

    def __call__(self, forces: torch.Tensor, batch: Batch) -> torch.Tensor:
        dft = masked_force_mse(forces, batch, batch.kind == KIND_DFT) if self.dft_weight > 0 else 0.0
        if self.eip_loss == "tukey":
            eip = tukey_force_term(forces, batch)
        else:
            eip = masked_force_mse(forces, batch, batch.kind == KIND_EIP)
        return self.dft_weight * dft + self.alpha * self.balance * self.eip_weight * eip

    def rows(self, batch: Batch) -> torch.Tensor:
        """[B] bool: the rows whose forces enter the term (a weight of 0 leaves its rows out:
        LA with DFT forces only needs no forces of its EIP rows)."""
        used = ((batch.kind == KIND_DFT) & (self.dft_weight > 0)) | (
            (batch.kind == KIND_EIP) & (self.alpha * self.balance * self.eip_weight > 0))
        return labelled_rows(batch, used)
