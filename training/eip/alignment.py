"""Reference-energy alignment of EIP energies to DFT (METHOD.md, "we extend").

DFT totals and EIP cohesive energies have different zeros. For each EIP we fit one offset
per species, ``E_DFT - E_EIP ≈ Σ_s n_s c_s``, by Huber-weighted least squares (iteratively
reweighted, scale from the median absolute residual) on a given subset of DFT-labelled
configurations, so a few configurations where the EIP is badly wrong do not drag the zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import AlignmentError
from .labels import Labels

HUBER_DELTA = 1.345  # 95 % efficiency at the normal distribution
_MAX_ITERATIONS = 100


def species_counts(
    configurations, species: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """[n, S] number of atoms of each species per configuration, and the species order
    (sorted symbols found, unless ``species`` is given)."""
    symbols = [atoms.get_chemical_symbols() for atoms in configurations]
    if species is None:
        species = sorted({s for row in symbols for s in row})
    column = {s: j for j, s in enumerate(species)}
    counts = np.zeros((len(symbols), len(species)), dtype=np.int64)
    for i, row in enumerate(symbols):
        for s in row:
            if s not in column:
                raise AlignmentError(f"species {s} of configuration {i} is not in {species}")
            counts[i, column[s]] += 1
    return counts, list(species)


def huber_offsets(counts: np.ndarray, residuals_ev: np.ndarray) -> np.ndarray:
    """Per-species offsets c [S] minimising Σ Huber((r_i - n_i·c) / scale)."""
    weights = np.ones(len(residuals_ev))
    offsets = np.zeros(counts.shape[1])
    for _ in range(_MAX_ITERATIONS):
        root = np.sqrt(weights)[:, None]
        new, *_ = np.linalg.lstsq(counts * root, residuals_ev * root[:, 0], rcond=None)
        error = residuals_ev - counts @ new
        scale = 1.4826 * np.median(np.abs(error))
        converged = np.allclose(new, offsets, rtol=0, atol=1e-12)
        offsets = new
        if scale == 0 or converged:
            break
        ratio = np.abs(error) / (HUBER_DELTA * scale)
        weights = np.where(ratio <= 1, 1.0, 1.0 / np.maximum(ratio, 1e-300))
    return offsets


@dataclass
class Alignment:
    """Offsets [K, S] (eV per atom of each species) to add to each EIP's energies.

    A species absent from the fitting subset has a NaN offset: configurations holding it
    come out NaN (missing) rather than silently unaligned.
    """

    names: list[str]
    eip_ids: list[str]
    species: list[str]
    offsets_ev: np.ndarray
    n_fitted: np.ndarray
    metadata: dict = field(default_factory=dict)

    def apply(self, labels: Labels | np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Aligned total energies [n, K] in eV (NaN where missing)."""
        energies = labels.energies if isinstance(labels, Labels) else np.asarray(labels)
        if isinstance(labels, Labels) and labels.eip_ids != self.eip_ids:
            raise AlignmentError(
                f"alignment was fitted for {self.names}, labels hold {labels.names}: "
                "fit the alignment on labels with the same EIPs in the same order"
            )
        if energies.shape[1] != len(self.eip_ids) or counts.shape[1] != len(self.species):
            raise AlignmentError(
                f"shapes do not match: energies {energies.shape}, counts {counts.shape}, "
                f"alignment for {len(self.eip_ids)} EIPs and species {self.species}"
            )
        used = counts > 0
        shift = np.where(used[:, None, :], counts[:, None, :] * self.offsets_ev[None], 0.0)
        return energies + shift.sum(axis=2)

    def to_dict(self) -> dict:
        return {
            "names": self.names,
            "eip_ids": self.eip_ids,
            "species": self.species,
            "offsets_ev": self.offsets_ev.tolist(),
            "n_fitted": self.n_fitted.tolist(),
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, payload: dict) -> "Alignment":
        return cls(
            names=list(payload["names"]),
            eip_ids=list(payload["eip_ids"]),
            species=list(payload["species"]),
            offsets_ev=np.asarray(payload["offsets_ev"], dtype=np.float64),
            n_fitted=np.asarray(payload["n_fitted"], dtype=np.int64),
            metadata=dict(payload.get("metadata", {})),
        )

    def save(self, store, name: str) -> None:
        """Keep the alignment in the label store under ``name`` (e.g. "si-pbe/seed1/train")."""
        store.save_alignment(name, self.to_dict())

    @classmethod
    def load(cls, store, name: str) -> "Alignment":
        return cls.from_dict(store.load_alignment(name))


def fit_alignment(
    labels: Labels,
    dft_energies_ev: np.ndarray,
    counts: np.ndarray,
    subset: np.ndarray,
    species: list[str] | None = None,
) -> Alignment:
    """Per-EIP, per-species offsets fitted on the configurations ``subset`` (indices).

    ``dft_energies_ev`` [n] and ``counts`` [n, S] are aligned with the labels' rows; only
    entries present for an EIP enter its fit. Raises :class:`AlignmentError` when an EIP has
    no present entry in the subset.
    """
    dft = np.asarray(dft_energies_ev, dtype=np.float64)
    subset = np.asarray(subset, dtype=np.int64)
    if dft.shape != (len(labels.hashes),) or counts.shape[0] != len(labels.hashes):
        raise AlignmentError(
            f"dft energies {dft.shape} and counts {counts.shape} must have one row per "
            f"labelled configuration ({len(labels.hashes)})"
        )
    species = species or [f"species{j}" for j in range(counts.shape[1])]
    offsets = np.full((len(labels.names), counts.shape[1]), np.nan)
    n_fitted = np.zeros(len(labels.names), dtype=np.int64)
    for k, name in enumerate(labels.names):
        rows = subset[labels.present[subset, k] & np.isfinite(dft[subset])]
        if len(rows) == 0:
            raise AlignmentError(
                f"no configuration of the subset has an energy for {name}: cannot fit its "
                "offsets (check the EIP supports these species)"
            )
        seen = counts[rows].sum(axis=0) > 0
        residuals_ev = dft[rows] - labels.energies[rows, k]
        fitted = huber_offsets(counts[rows][:, seen].astype(np.float64), residuals_ev)
        offsets[k, seen] = fitted
        n_fitted[k] = len(rows)
    return Alignment(list(labels.names), list(labels.eip_ids), list(species), offsets, n_fitted)
