"""Are the production settings converged? Energies and forces against tighter settings.

``convergence_check`` runs each configuration under the candidate settings and under a
reference (the same settings with a higher cut-off and a denser k-point grid) and reports,
per configuration and candidate, |ΔE|/N (meV/atom) and the largest force-component
difference (eV/Å). The targets (``ENERGY_TARGET_MEV_PER_ATOM``, ``FORCE_TARGET_EV_PER_A``)
are those of docs/dft.md. Results go through the label store like any other label, so a
rerun of the check costs nothing and the production labels it shares are reused.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .settings import DFTSettings

ENERGY_TARGET_MEV_PER_ATOM = 2.0
FORCE_TARGET_EV_PER_A = 0.05


@dataclass
class ConvergenceRow:
    """One configuration under one candidate, against the reference."""

    configuration: str
    n_atoms: int
    candidate: DFTSettings
    energy_error_mev_per_atom: float  # |E_candidate - E_reference| / N, meV/atom
    force_error_ev_per_angstrom: float  # max |F_candidate - F_reference|, eV/Å
    seconds: float  # the candidate's wall time, s
    kpoint_grid: tuple[int, int, int]

    @property
    def converged(self) -> bool:
        return (
            self.energy_error_mev_per_atom <= ENERGY_TARGET_MEV_PER_ATOM
            and self.force_error_ev_per_angstrom <= FORCE_TARGET_EV_PER_A
        )


def convergence_check(
    configurations: dict[str, object],
    candidates: list[DFTSettings],
    reference: DFTSettings,
    *,
    store=None,
    workers: int = 1,
    progress: bool = False,
) -> list[ConvergenceRow]:
    """Rows for every (configuration, candidate); ``configurations``: name -> ASE Atoms.
    A failed calculation gives NaN errors (its reason is in the store)."""
    from .engine import label_dft

    atoms_list = list(configurations.values())
    reference_labels = label_dft(
        atoms_list, reference, store=store, workers=workers, progress=progress
    )
    rows = []
    for candidate in candidates:
        labels = label_dft(atoms_list, candidate, store=store, workers=workers, progress=progress)
        for i, name in enumerate(configurations):
            n = int(labels.n_atoms[i])
            energy_error = abs(labels.energies[i] - reference_labels.energies[i]) / n * 1000.0
            if labels.forces[i] is None or reference_labels.forces[i] is None:
                force_error = float("nan")
            else:
                force_error = float(np.abs(labels.forces[i] - reference_labels.forces[i]).max())
            rows.append(
                ConvergenceRow(
                    name, n, candidate, float(energy_error), force_error,
                    float(labels.records[i].get("seconds", float("nan"))),
                    tuple(candidate.kpoint_grid(atoms_list[i])),
                )
            )
    return rows


def convergence_table(rows: list[ConvergenceRow], reference: DFTSettings) -> str:
    """A Markdown table of the rows (docs/dft.md)."""
    lines = [
        f"Reference: PW {reference.ecut_ev:g} eV, k-point density "
        f"{reference.kpoint_density_per_inverse_angstrom:g} Å⁻¹, {reference.smearing} "
        f"{reference.smearing_width_ev:g} eV.",
        "",
        "| configuration | atoms | cut-off eV | k density Å⁻¹ | k grid | ΔE meV/atom | "
        "max ΔF eV/Å | s | within targets |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.configuration} | {row.n_atoms} | {row.candidate.ecut_ev:g} | "
            f"{row.candidate.kpoint_density_per_inverse_angstrom:g} | "
            f"{'×'.join(map(str, row.kpoint_grid))} | "
            f"{row.energy_error_mev_per_atom:.2f} | {row.force_error_ev_per_angstrom:.3f} | "
            f"{row.seconds:.0f} | {'yes' if row.converged else 'no'} |"
        )
    return "\n".join(lines)
