"""Hot NVE molecular dynamics: does the crystal stay a crystal (no two atoms closer than a
threshold), and how well is the total energy conserved (drift in meV/atom/ps)?"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from ase import units
from ase.calculators.calculator import Calculator
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet
from tqdm.auto import tqdm

from eipnn_calc.errors import InvalidConfigurationError

try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # ase < 3.29: the same function under its old name
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

from .structures import cubic_supercell


@dataclass(frozen=True)
class NVERun:
    stable: bool
    steps_done: int
    steps_asked: int
    num_atoms: int
    timestep_fs: float
    min_distance_angstrom: float  # smallest seen at any check
    drift_mev_per_atom_per_ps: float  # slope of a line fitted to E_total(t) / N
    max_energy_excursion_mev_per_atom: float  # max |E_total - E_total(0)| / N
    mean_temperature_k: float  # over the second half of the run
    time_ps: np.ndarray  # [C] at each check
    total_energy_ev_per_atom: np.ndarray  # [C]
    temperature_k: np.ndarray  # [C]
    note: Optional[str] = None


def _min_distance(atoms) -> float:
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    return float(distances.min())


def nve_stability(calculator: Calculator, symbol: str, structure: str, a0_angstrom: float,
                  temperature_k: float, timestep_fs: float, steps: int, min_atoms: int,
                  check_every: int, min_distance_angstrom: float, seed: int = 0,
                  progress: bool = False) -> NVERun:
    """Velocity Verlet on the smallest cubic supercell with >= ``min_atoms`` atoms at
    ``a0_angstrom``, velocities drawn (Maxwell-Boltzmann, ``seed``) at 2 x
    ``temperature_k`` with zero total momentum: equipartition between kinetic and potential
    energy brings the crystal to about ``temperature_k``. Every ``check_every`` steps the
    smallest interatomic distance (minimum image) and the energies are recorded; the run
    stops as unstable when two atoms come closer than ``min_distance_angstrom`` (or the
    calculator refuses the configuration)."""
    atoms = cubic_supercell(symbol, structure, a0_angstrom, min_atoms)
    atoms.calc = calculator
    thermalize_momenta(atoms, temperature_K=2 * temperature_k, rng=np.random.default_rng(seed))
    Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs, logfile=None)
    n = len(atoms)
    times, energies, temperatures = [], [], []
    smallest, done, note = np.inf, 0, None

    def record() -> None:
        times.append(done * timestep_fs / 1000)
        energies.append((atoms.get_potential_energy() + atoms.get_kinetic_energy()) / n)
        temperatures.append(atoms.get_temperature())

    record()
    with tqdm(total=steps, desc=f"{symbol} NVE {temperature_k:g} K", disable=not progress, leave=False) as bar:
        while done < steps:
            chunk = min(check_every, steps - done)
            try:
                dynamics.run(chunk)
            except InvalidConfigurationError as error:  # e.g. atoms closer than 0.1 Å
                done += chunk
                smallest, note = 0.0, f"calculator refused the configuration: {error}"
                break
            done += chunk
            bar.update(chunk)
            smallest = min(smallest, _min_distance(atoms))
            record()
            if smallest < min_distance_angstrom:
                note = f"atoms {smallest:.2f} Å apart after {done} steps"
                break
    t, e, temperature = np.array(times), np.array(energies), np.array(temperatures)
    drift = float(np.polyfit(t, e, 1)[0] * 1000) if len(t) > 2 else float("nan")
    stable = note is None and bool(np.all(np.isfinite(e)))
    return NVERun(stable, done, steps, n, timestep_fs, float(smallest), drift,
                  float(1000 * np.abs(e - e[0]).max()), float(temperature[len(temperature) // 2:].mean()),
                  t, e, temperature, note)
