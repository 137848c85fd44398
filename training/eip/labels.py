"""The result of labelling: a dense [n_configurations, K] table of EIP energies."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass
class Labels:
    """EIP energies of ``n`` configurations under ``K`` EIPs.

    ``energies`` [n, K] total energies in eV, NaN where missing; ``present`` [n, K] bool;
    ``reasons`` [n, K] object array, "" where present, else "<category>: <detail>" (category
    one of ``unsupported-species``, ``eip-error``, ``energy-too-high``, ``non-finite``);
    ``forces`` is None unless forces were asked for, then ``forces[k][i]`` is [N_i, 3] eV/Å
    or None where missing. ``names`` are the names as asked, ``eip_ids`` the store keys.
    ``n_computed`` [K] counts the entries this call computed (the rest came from the store).
    """

    names: list[str]
    eip_ids: list[str]
    hashes: list[str]
    n_atoms: np.ndarray
    energies: np.ndarray
    present: np.ndarray
    reasons: np.ndarray
    forces: list[list[np.ndarray | None]] | None = None
    n_computed: np.ndarray | None = None

    def column(self, name: str) -> int:
        """Index k of an EIP by its name or its eip_id."""
        for k, (short, eip_id) in enumerate(zip(self.names, self.eip_ids)):
            if name in (short, eip_id):
                return k
        raise KeyError(f"EIP '{name}' is not among the labelled ones: {self.names}")

    def energies_per_atom(self) -> np.ndarray:
        """[n, K] eV/atom, NaN where missing."""
        return self.energies / self.n_atoms[:, None]

    def summary(self) -> dict[str, dict[str, int]]:
        """Per EIP name: {"present": count, "missing": count, <category>: count, ...}."""
        table = {}
        for k, name in enumerate(self.names):
            missing = self.reasons[~self.present[:, k], k]
            categories = Counter(str(reason).split(":", 1)[0] for reason in missing)
            table[name] = {
                "present": int(self.present[:, k].sum()),
                "missing": int(len(missing)),
                **dict(sorted(categories.items())),
            }
        return table

    def summary_text(self) -> str:
        lines = []
        for name, counts in self.summary().items():
            details = ", ".join(
                f"{key} {value}"
                for key, value in counts.items()
                if key not in ("present", "missing")
            )
            line = f"{name:28s} present {counts['present']:6d}  missing {counts['missing']:6d}"
            lines.append(line + (f"  ({details})" if details else ""))
        return "\n".join(lines)
