"""Selection from the unlabelled pool (METHOD.md "Label augmentation", 3).

Every pool configuration predicted as an EIP class (not K) joins training, labelled with
that EIP's energy; the softmax probability of the predicted class is its confidence.
Options: keep only a subset of EIPs (ablations) and only the low / medium / high third of
the confidences (cut at their 0.33 and 0.66 quantiles).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.batching import KIND_EIP, Rows

CONFIDENCE_QUANTILES = (0.33, 0.66)


@dataclass
class Selection:
    """The selected pool configurations and how the pool was sorted."""

    indices: np.ndarray  # [M] dataset indices
    classes: np.ndarray  # [M] predicted EIP column (never K)
    confidence: np.ndarray  # [M] softmax probability of that class
    energies_ev: np.ndarray  # [M] the label: the predicted EIP's (aligned) total energy
    num_pool: int
    num_predicted_none: int  # predicted class K
    num_missing_label: int  # predicted EIP has no energy there (it failed)
    num_dropped_by_options: int  # other EIPs or other confidence thirds

    def __len__(self) -> int:
        return len(self.indices)

    def rows(self, forces: list[np.ndarray | None] | None = None) -> Rows:
        """Training rows of kind ``KIND_EIP`` (no DFT target, so no DFT energy is read);
        ``forces``: per selected configuration its EIP's forces [N_i, 3] eV/Å (or None)."""
        return Rows(self.indices, self.energies_ev[:, None], np.ones(len(self)),
                    np.full(len(self), KIND_EIP), forces)


def confidence_third(confidence: np.ndarray, third: str) -> np.ndarray:
    """[M] bool mask of the ``third`` ("low", "medium", "high", or "all") of ``confidence``."""
    if third == "all" or len(confidence) == 0:
        return np.ones(len(confidence), dtype=bool)
    low, high = np.quantile(confidence, CONFIDENCE_QUANTILES)
    masks = {"low": confidence <= low, "medium": (confidence > low) & (confidence <= high),
             "high": confidence > high}
    if third not in masks:
        raise ValueError(f"confidence third must be all, low, medium or high, not '{third}'")
    return masks[third]


def select(pool: np.ndarray, probabilities: np.ndarray, eip_energies_ev: np.ndarray,
           eip_columns: list[int] | None = None, third: str = "all") -> Selection:
    """Select from ``pool`` [P] given class probabilities [P, K+1] and EIP energies [P, K]."""
    num_eips = eip_energies_ev.shape[1]
    if probabilities.shape != (len(pool), num_eips + 1):
        raise ValueError(
            f"probabilities {probabilities.shape} must be [pool {len(pool)}, K+1 = {num_eips + 1}]"
        )
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(pool)), predicted]
    is_eip = predicted < num_eips
    label = np.full(len(pool), np.nan)
    label[is_eip] = eip_energies_ev[np.flatnonzero(is_eip), predicted[is_eip]]
    usable = is_eip & np.isfinite(label)
    keep = usable.copy()
    if eip_columns is not None:
        keep &= np.isin(predicted, eip_columns)
    keep[keep] = confidence_third(confidence[keep], third)
    if (predicted[keep] == num_eips).any():  # the invariant the whole method rests on
        raise AssertionError("a configuration predicted as class K was selected")
    return Selection(
        indices=np.asarray(pool)[keep], classes=predicted[keep], confidence=confidence[keep],
        energies_ev=label[keep], num_pool=len(pool), num_predicted_none=int((~is_eip).sum()),
        num_missing_label=int((is_eip & ~usable).sum()), num_dropped_by_options=int(usable.sum() - keep.sum()),
    )
