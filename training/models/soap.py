"""SOAP power spectrum with dscribe's GTO radial basis, computed in torch from an edge list.

What dscribe 2.x computes (``SOAP(rbf="gto")``), and so what this module computes:

* Each neighbour j (and the central atom itself, at r = 0) carries a Gaussian density
  exp(-|r - r_j|^2 / (2 sigma^2)); the densities of one species are expanded in
  g_nl(r) Y_lm(r_hat), with real spherical harmonics and the Löwdin-orthonormalised GTOs
  g_nl(r) = sum_k beta_nkl r^l exp(-alpha_kl r^2). The overlap integral over all space is
  analytic: c_nlm = pi^{3/2} sum_k b_lnk sum_j w_j exp(a_lk r_j^2) r_j^l Y_lm(r_hat_j), with
  a_lk = -alpha_kl eta / (alpha_kl + eta),
  b_lnk = eta^{-3/2} beta_nkl (1 + alpha_kl/eta)^{-(l+3/2)}, eta = 1 / (2 sigma^2).
* p^{ZZ'}_{nn'l} = pi sqrt(8 / (2l + 1)) sum_m c^Z_nlm c^Z'_n'lm, ordered as dscribe orders
  it: species pairs Z <= Z' (in the model's species order), then l, then n, n' (n <= n' when
  Z == Z').
* dscribe takes neighbours up to r_cut + sigma sqrt(-2 ln 1e-3) (its "cutoff padding") with
  no taper, so its features jump when an atom crosses that sphere. With ``smooth_cutoff``
  every neighbour's density is multiplied by a switch that goes from 1 to 0 (value, first and
  second derivatives) over [cutoff - smooth_width, cutoff]: each neighbour's contribution to
  every feature, and its derivative, reach zero at the cutoff, which MD needs.

Everything is vectorised over edges, so forces and the virial come by autograd.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import torch
from torch import nn
from torch.autograd import forward_ad

from eipnn_calc.errors import EIPNNError


# dscribe's GTOs decay to this value at their own radii, and its neighbour search reaches
# where the atomic Gaussian has decayed to this value past r_cut.
GTO_DECAY_THRESHOLD = 1e-3
DSCRIBE_PADDING_THRESHOLD = 1e-3


class SOAPSettingsError(EIPNNError, ValueError):
    """The SOAP settings cannot define a descriptor (bad n_max, l_max, sigma or cutoffs)."""


def dscribe_cutoff_angstrom(r_cut_angstrom: float, sigma_angstrom: float) -> float:
    """The neighbour radius dscribe uses for ``r_cut``: r_cut + sigma sqrt(-2 ln 1e-3).

    Build edges with this cutoff (and ``smooth_cutoff=False``) to reproduce dscribe."""
    return r_cut_angstrom + sigma_angstrom * math.sqrt(-2.0 * math.log(DSCRIBE_PADDING_THRESHOLD))


def gto_basis(r_cut_angstrom: float, n_max: int, l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """dscribe's GTO exponents alpha [l_max+1, n_max] (1/Å^2) and Löwdin coefficients
    beta [l_max+1, n_max, n_max] that make the GTOs of each l orthonormal on r^2 dr."""
    radii = np.linspace(1.0, r_cut_angstrom, n_max)
    alphas = np.zeros((l_max + 1, n_max))
    betas = np.zeros((l_max + 1, n_max, n_max))
    for l in range(l_max + 1):
        alpha = -np.log(GTO_DECAY_THRESHOLD / radii**l) / radii**2
        # Overlap of r^l exp(-a r^2) and r^l exp(-a' r^2) on r^2 dr.
        overlap = 0.5 * math.gamma(l + 1.5) * (alpha[:, None] + alpha[None, :]) ** (-l - 1.5)
        eigenvalues, eigenvectors = np.linalg.eigh(overlap)
        if eigenvalues.min() <= 0.0:
            raise SOAPSettingsError(
                f"the GTO overlap matrix for l={l} is not positive definite with r_cut="
                f"{r_cut_angstrom} Å, n_max={n_max}: lower n_max or raise r_cut"
            )
        # S^{-1/2} (the symmetric square root of the inverse, as dscribe's sqrtm(inv(S))).
        betas[l] = (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T
        alphas[l] = alpha
    return alphas, betas


def power_spectrum_size(num_species: int, n_max: int, l_max: int) -> int:
    """Number of SOAP features: (S n)(S n + 1)/2 (l_max + 1), dscribe's count."""
    radial = num_species * n_max
    return radial * (radial + 1) // 2 * (l_max + 1)


def _solid_harmonic_norms(l_max: int) -> list[float]:
    """Normalisation of the real solid harmonics r^l Y_lm, m = -l..l for each l."""
    norms = []
    for l in range(l_max + 1):
        for m in range(-l, l + 1):
            a = abs(m)
            ratio = math.factorial(l - a) / math.factorial(l + a)
            value = math.sqrt((2 * l + 1) / (4 * math.pi) * ratio)
            norms.append(value * (math.sqrt(2.0) if m != 0 else 1.0))
    return norms


class RealSolidHarmonics(nn.Module):
    """r^l Y_lm(r_hat) for l = 0..l_max, m = -l..l: [E, 3] -> [E, (l_max+1)^2].

    Polynomials in x, y, z (no division by r), so they and their gradients stay finite at
    r = 0. Sign conventions do not matter: the power spectrum sums over m."""

    def __init__(self, l_max: int) -> None:
        super().__init__()
        self.l_max = l_max
        norms = torch.tensor(_solid_harmonic_norms(l_max), dtype=torch.float64)
        self.register_buffer("norms", norms)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        x, y, z = vectors[:, 0], vectors[:, 1], vectors[:, 2]
        r2 = x * x + y * y + z * z
        ones = torch.ones_like(x)
        # cos_m[m] + i sin_m[m] = (x + i y)^m
        cos_m = [ones]
        sin_m = [torch.zeros_like(x)]
        for m in range(self.l_max):
            cos_m.append(x * cos_m[m] - y * sin_m[m])
            sin_m.append(x * sin_m[m] + y * cos_m[m])
        # legendre[m][l - m] = r^{l-m} d^m P_l / dx^m (z / r), by the associated-Legendre
        # recurrence multiplied through by powers of r.
        legendre: list[list[torch.Tensor]] = []
        double_factorial = 1.0
        for m in range(self.l_max + 1):
            if m > 0:
                double_factorial *= 2 * m - 1
            column = [ones * double_factorial]
            if m < self.l_max:
                column.append((2 * m + 1) * z * column[0])
            for l in range(m + 2, self.l_max + 1):
                previous, before = column[l - m - 1], column[l - m - 2]
                column.append(((2 * l - 1) * z * previous - (l + m - 1) * r2 * before) / (l - m))
            legendre.append(column)
        out: list[torch.Tensor] = []
        for l in range(self.l_max + 1):
            for m in range(-l, l + 1):
                if m < 0:
                    out.append(legendre[-m][l + m] * sin_m[-m])
                else:
                    out.append(legendre[m][l - m] * cos_m[m])
        return torch.stack(out, dim=1) * self.norms.to(vectors.dtype)


class SmoothSwitch(nn.Module):
    """1 below ``cutoff - width``, 0 at and beyond ``cutoff``, the quintic smoothstep in
    between: value, first and second derivatives are continuous everywhere."""

    def __init__(self, cutoff_angstrom: float, width_angstrom: float) -> None:
        super().__init__()
        self.cutoff = float(cutoff_angstrom)
        self.width = float(width_angstrom)

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        t = ((distance - (self.cutoff - self.width)) / self.width).clamp(0.0, 1.0)
        return 1.0 - t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)


class SOAP(nn.Module):
    """Per-atom SOAP power spectrum [N, num_features] from the model file's edge list.

    Parameters
    ----------
    num_species: species of the model; species index k is the k-th species channel.
    r_cut_angstrom: dscribe's ``r_cut``: it places the GTOs (decay radii 1 Å .. r_cut).
    n_max, l_max, sigma_angstrom: dscribe's ``n_max``, ``l_max``, ``sigma``.
    cutoff_angstrom: neighbour radius. Edges beyond it are ignored. Use
        ``dscribe_cutoff_angstrom(r_cut, sigma)`` with ``smooth_cutoff=False`` to reproduce
        dscribe; a model for MD uses the model cutoff with ``smooth_cutoff=True``.
    smooth_cutoff: taper each neighbour's density to zero over the last ``smooth_width``.
    """

    def __init__(
        self,
        num_species: int,
        r_cut_angstrom: float = 5.0,
        n_max: int = 8,
        l_max: int = 6,
        sigma_angstrom: float = 1.0,
        cutoff_angstrom: float | None = None,
        smooth_cutoff: bool = True,
        smooth_width_angstrom: float = 1.0,
    ) -> None:
        super().__init__()
        cutoff_angstrom = r_cut_angstrom if cutoff_angstrom is None else cutoff_angstrom
        _check_settings(num_species, r_cut_angstrom, n_max, l_max, sigma_angstrom, cutoff_angstrom)
        if smooth_cutoff and not 0.0 < smooth_width_angstrom <= cutoff_angstrom:
            raise SOAPSettingsError(
                f"smooth_width_angstrom must be in (0, cutoff={cutoff_angstrom}] Å, "
                f"got {smooth_width_angstrom}"
            )
        self.num_species = num_species
        # The settings as given, so that a copy (tabulated.TabulatedSOAP) can be built alike.
        self.r_cut = float(r_cut_angstrom)
        self.sigma = float(sigma_angstrom)
        self.smooth_width = float(smooth_width_angstrom)
        self.n_max = n_max
        self.l_max = l_max
        self.cutoff = float(cutoff_angstrom)
        self.smooth_cutoff = smooth_cutoff
        self.num_features = power_spectrum_size(num_species, n_max, l_max)
        self.harmonics = RealSolidHarmonics(l_max)
        self.switch = SmoothSwitch(cutoff_angstrom, smooth_width_angstrom if smooth_cutoff else 1.0)
        self._register_constants(r_cut_angstrom, sigma_angstrom)

    def _register_constants(self, r_cut_angstrom: float, sigma_angstrom: float) -> None:
        n_max, l_max = self.n_max, self.l_max
        alphas, betas = gto_basis(r_cut_angstrom, n_max, l_max)
        eta = 1.0 / (2.0 * sigma_angstrom**2)
        ls = np.arange(l_max + 1)[:, None]
        exponents = -alphas * eta / (alphas + eta)  # [L, K]
        damping = eta**-1.5 * (1.0 + alphas / eta) ** (-(ls + 1.5))  # [L, K]
        # b[l, n, k] = beta[l, n, k] * damping[l, k]; pi^{3/2} folded in here.
        coefficients = math.pi**1.5 * betas * damping[:, None, :]
        self.register_buffer("exponents", torch.tensor(exponents))
        self.register_buffer("coefficients_l", torch.tensor(coefficients))  # [L, N, K]
        # The centre's own Gaussian at r = 0 only has l = 0: c_n00 += b[0, n, :].sum() Y_00.
        self_term = coefficients[0].sum(axis=1) / math.sqrt(4 * math.pi)
        self.register_buffer("self_term", torch.tensor(self_term))
        prefactors = [math.pi * math.sqrt(8.0 / (2 * l + 1)) for l in range(l_max + 1)]
        self.register_buffer("prefactors", torch.tensor(prefactors))
        # Position of (l, m) of block l in [L, LM] flattened: l (LM) + l^2 + m, m < 2l + 1.
        # Derived from l_max, so a plain attribute and not a buffer: state dicts stay as they
        # were, and checkpoints written before it still load.
        harmonics = (l_max + 1) ** 2
        self.diagonal_positions = [l * harmonics + l * l + m for l in range(l_max + 1) for m in range(2 * l + 1)]
        feature_index = _feature_index(self.num_species, n_max, l_max)
        self.register_buffer("feature_index", torch.tensor(feature_index))

    def radial(self, lengths: torch.Tensor) -> torch.Tensor:
        """The radial part of each neighbour's expansion [E, L, n], a function of its distance
        alone: pi^{3/2} sum_k b_lnk exp(a_lk r^2), times the switch (the r^l is in the solid
        harmonics). The exported model reads it from a table (``tabulated.TabulatedSOAP``)."""
        dtype = lengths.dtype
        weights = self.switch(lengths) if self.smooth_cutoff else torch.ones_like(lengths)
        squared = (lengths * lengths).view(-1, 1, 1)
        radial = torch.exp(squared * self.exponents.to(dtype))  # [E, L, K]
        radial = torch.einsum("elk,lnk->eln", radial, self.coefficients_l.to(dtype))
        return radial * weights.view(-1, 1, 1)

    def coefficients(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
    ) -> List[torch.Tensor]:
        """Expansion coefficients of each atom's densities, one tensor per l:
        c_l [N, S n_max, 2l+1] (rows: neighbour species, then n)."""
        num_atoms = species.shape[0]
        dtype = vectors.dtype
        radial = self.radial(lengths)  # [E, L, n]
        neighbour_species = species.index_select(0, edge_index[1])
        neighbour = torch.nn.functional.one_hot(neighbour_species, self.num_species).to(dtype)
        radial = radial.unsqueeze(2) * neighbour.view(-1, 1, self.num_species, 1)  # [E, L, S, n]
        angular = self.harmonics(vectors)  # [E, LM]
        # Neighbours laid out densely per centre, [N, M, ...]: then each c_l is one batched
        # matmul, and no [E, n, LM] outer product is ever stored (it dominated time/memory).
        flat, width = dense_slots(edge_index[0], num_atoms)
        radial = radial.reshape(radial.shape[0], (self.l_max + 1) * self.num_species * self.n_max)
        radial = _densify(radial, flat, num_atoms, width)
        angular = _densify(angular, flat, num_atoms, width)  # [N, M, LM]
        # One large batched matmul for all (l, l') pairs, of which only l = l' is kept: 7x
        # the FLOPs of per-l products at l_max 6, yet several times faster than 7 small ones.
        products = torch.bmm(radial.transpose(1, 2), angular)  # [N, L S n, LM]
        channels = self.num_species * self.n_max
        products = products.view(num_atoms, self.l_max + 1, channels, -1).transpose(1, 2)
        # The l = l' blocks in one index_select over (l, m): [N, S n, LM]. Seven slices of
        # ``products`` would each cost the backward a zero-filled copy of all of it; the
        # gather's backward fills one (a 512-atom SOAPNet force call 7 % faster).
        index = torch.tensor(self.diagonal_positions, dtype=torch.int64, device=products.device)
        diagonal = products.reshape(num_atoms, channels, -1).index_select(2, index)
        own = torch.nn.functional.one_hot(species, self.num_species).to(dtype)  # [N, S]
        self_term = (own.unsqueeze(2) * self.self_term.to(dtype)).reshape(num_atoms, -1, 1)
        out: List[torch.Tensor] = []
        for l in range(self.l_max + 1):
            c_l = diagonal[:, :, l * l : (l + 1) * (l + 1)]
            out.append(c_l + self_term if l == 0 else c_l)
        return out

    def forward(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Power spectrum [N, num_features]; edges at or beyond the cutoff are ignored."""
        inside = lengths < self.cutoff
        if not bool(inside.all()):
            keep = torch.nonzero(inside).squeeze(1)
            edge_index = edge_index.index_select(1, keep)
            vectors = vectors.index_select(0, keep)
            lengths = lengths.index_select(0, keep)
        coefficients = self.coefficients(species, edge_index, vectors, lengths)
        num_atoms = species.shape[0]
        blocks: List[torch.Tensor] = []
        for l, c_l in enumerate(coefficients):  # c_l [N, S n, 2l+1]
            products = torch.bmm(c_l, c_l.transpose(1, 2)) * self.prefactors[l].to(c_l.dtype)
            blocks.append(products.reshape(num_atoms, -1))
        everything = torch.cat(blocks, dim=1)  # [N, L (S n)^2]
        return everything.index_select(1, self.feature_index)

    def descriptors_and_jacobians(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        max_edges_per_chunk: int = 4096,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The power spectrum p [N, num_features] and, for each edge e with receiver i, the
        Jacobian dp_i/dr_e [E, num_features, 3] (zero for edges at or beyond the cutoff);
        no autograd graph is kept.

        Atom i's features depend on the vectors of the edges into i alone, through
        c_i = sum_e phi(r_e) + self term, with phi(r_e) [S n, LM] a function of r_e only, so
        dp_i/dr_e = pref_l (dphi_e c_i^T + c_i dphi_e^T) per l: three forward-mode derivatives
        of phi (one per Cartesian direction, all edges at once) and a contraction, instead of
        one backward pass per feature. Training uses it to fit forces through a descriptor
        computed once (``training/train/descriptors.py``)."""
        with torch.no_grad():
            lengths = torch.linalg.vector_norm(vectors, dim=1)
            descriptors = self.forward(species, edge_index, vectors, lengths)
            jacobians = vectors.new_zeros(vectors.shape[0], self.num_features, 3)
            inside = torch.nonzero(lengths < self.cutoff).squeeze(1)
            receivers = edge_index[0].index_select(0, inside)
            senders = species.index_select(0, edge_index[1].index_select(0, inside))
            kept = vectors.index_select(0, inside)
            num_atoms, channels = species.shape[0], self.num_species * self.n_max
            phi = self._edge_expansion(senders, kept)  # [E', S n, LM]
            density = torch.zeros(num_atoms, channels, phi.shape[2], dtype=phi.dtype, device=phi.device)
            density = density.index_add(0, receivers, phi)
            own = torch.nn.functional.one_hot(species, self.num_species).to(phi.dtype)
            density[:, :, 0] += (own.unsqueeze(2) * self.self_term.to(phi.dtype)).reshape(num_atoms, -1)
            for start in range(0, kept.shape[0], max_edges_per_chunk):
                part = slice(start, start + max_edges_per_chunk)
                block = self._jacobian_block(senders[part], kept[part], density.index_select(0, receivers[part]))
                jacobians.index_copy_(0, inside[part], block)
        return descriptors, jacobians

    def _edge_expansion(self, senders: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """phi(r_e) [E, S n, LM]: each edge's own term of its receiver's coefficients."""
        lengths = torch.linalg.vector_norm(vectors, dim=1)
        radial = self.radial(lengths)  # [E, L, n]
        l_of = torch.tensor([l for l in range(self.l_max + 1) for _ in range(2 * l + 1)], device=vectors.device)
        radial = radial.index_select(1, l_of)  # [E, LM, n]
        neighbour = torch.nn.functional.one_hot(senders, self.num_species).to(vectors.dtype)
        angular = self.harmonics(vectors)  # [E, LM]
        terms = neighbour.view(-1, self.num_species, 1, 1) * (radial * angular.unsqueeze(2)).unsqueeze(1)
        return terms.transpose(2, 3).reshape(vectors.shape[0], -1, angular.shape[1])  # [E, S n, LM]

    def _jacobian_block(self, senders: torch.Tensor, vectors: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        """dp_i/dr_e [E, num_features, 3] of some edges, given their receivers' c_i [E, S n, LM]."""
        edges, channels = vectors.shape[0], density.shape[1]
        # The three directional derivatives in one forward-mode pass over the edges repeated
        # three times, with tangent x, y or z (torch.func.jvp was 10x slower here: its
        # per-operation decompositions cost more than the small products themselves).
        tangents = torch.eye(3, dtype=vectors.dtype, device=vectors.device).repeat_interleave(edges, dim=0)
        with forward_ad.dual_level():
            dual = forward_ad.make_dual(vectors.repeat(3, 1), tangents)
            derivative = forward_ad.unpack_dual(self._edge_expansion(senders.repeat(3), dual)).tangent
        dphi = derivative.view(3, edges, channels, -1).transpose(0, 1).reshape(edges, 3 * channels, -1)  # [E, 3 S n, LM]
        blocks: List[torch.Tensor] = []
        for l in range(self.l_max + 1):
            m = slice(l * l, (l + 1) * (l + 1))
            # sum_m dphi[e, k, a, m] c[e, b, m] as one batched matmul (einsum runs it as
            # elementwise products and sums here, 30x slower).
            half = torch.bmm(dphi[:, :, m], density[:, :, m].transpose(1, 2)).view(edges, 3, channels, channels)
            blocks.append((half + half.transpose(2, 3)) * self.prefactors[l].to(vectors.dtype))
        everything = torch.stack(blocks, dim=2).reshape(edges, 3, -1)  # [E, 3, L (S n)^2]
        return everything.index_select(2, self.feature_index).transpose(1, 2)  # [E, features, 3]


def dense_slots(receivers: torch.Tensor, num_atoms: int) -> Tuple[torch.Tensor, int]:
    """Row of each edge in a dense [num_atoms * M] neighbour layout (M = most neighbours of
    any atom): receiver * M + rank of the edge among its receiver's edges. Any edge order."""
    counts = torch.bincount(receivers, minlength=num_atoms)
    width = int(counts.max()) if receivers.numel() > 0 else 0
    sorted_receivers, order = torch.sort(receivers, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    positions = torch.arange(receivers.numel(), device=receivers.device)
    rank_sorted = positions - starts.index_select(0, sorted_receivers)
    rank = torch.empty_like(rank_sorted).index_copy_(0, order, rank_sorted)
    return receivers * width + rank, width


def _densify(values: torch.Tensor, rows: torch.Tensor, num_atoms: int, width: int) -> torch.Tensor:
    """[E, D] per-edge values -> [num_atoms, width, D], zero where an atom has fewer edges."""
    size = (num_atoms * width, values.shape[1])
    dense = torch.zeros(size, dtype=values.dtype, device=values.device)
    return dense.index_add(0, rows, values).view(num_atoms, width, values.shape[1])


def _feature_index(num_species: int, n_max: int, l_max: int) -> list[int]:
    """Where dscribe's feature f sits in the flattened [l, (Z n), (Z' n')] products."""
    radial = num_species * n_max
    block = radial * radial
    index = []
    for z in range(num_species):
        for z2 in range(z, num_species):
            for l in range(l_max + 1):
                for n in range(n_max):
                    for n2 in range(n if z == z2 else 0, n_max):
                        index.append(l * block + (z * n_max + n) * radial + z2 * n_max + n2)
    return index


def _check_settings(
    num_species: int,
    r_cut_angstrom: float,
    n_max: int,
    l_max: int,
    sigma_angstrom: float,
    cutoff_angstrom: float,
) -> None:
    if num_species < 1:
        raise SOAPSettingsError(f"SOAP needs at least one species, got num_species={num_species}")
    if n_max < 1:
        raise SOAPSettingsError(f"n_max must be at least 1, got {n_max}")
    if not 0 <= l_max <= 20:
        raise SOAPSettingsError(f"l_max must be in 0..20 (as in dscribe), got {l_max}")
    if sigma_angstrom <= 0:
        raise SOAPSettingsError(f"sigma_angstrom must be positive, got {sigma_angstrom}")
    if r_cut_angstrom <= 1.0:
        raise SOAPSettingsError(
            f"r_cut_angstrom must exceed 1 Å for the GTO basis (its radii start at 1 Å), "
            f"got {r_cut_angstrom}"
        )
    if cutoff_angstrom <= 0:
        raise SOAPSettingsError(f"cutoff_angstrom must be positive, got {cutoff_angstrom}")
