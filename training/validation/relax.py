"""Relaxation of atom positions at a fixed cell (BFGS), with an optional progress bar."""
from __future__ import annotations

from ase import Atoms
from ase.optimize import BFGS
from tqdm.auto import tqdm


def relax_positions(atoms: Atoms, fmax_ev_per_angstrom: float, max_steps: int,
                    progress: bool = False, label: str = "relax") -> tuple[bool, int]:
    """Move the atoms of ``atoms`` (its calculator attached) until every force is below
    ``fmax_ev_per_angstrom``; the cell stays fixed. Returns (converged, steps taken)."""
    optimizer = BFGS(atoms, logfile=None)
    with tqdm(total=max_steps, desc=label, disable=not progress, leave=False) as bar:
        optimizer.attach(lambda: bar.update(1))
        converged = optimizer.run(fmax=fmax_ev_per_angstrom, steps=max_steps)
    return bool(converged), int(optimizer.nsteps)
