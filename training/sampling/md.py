"""Langevin molecular dynamics with an EIP (through the KIM API), for thermal snapshots.

Three recipes: a hot solid, a liquid (melted from the crystal), and a solid–liquid cell
(half of an elongated crystal melted with the other half held fixed, then all of it run
near the melting point, so the interface moves). Each returns snapshots taken every
``interval`` steps after an equilibration. The thermostat's random numbers come from the
generator passed in, so trajectories are reproducible from the pool's seed.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.constraints import FixAtoms
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

FRICTION_PER_FS = 0.02


def _timestep_fs(temperature_K: float) -> float:
    return 2.0 if temperature_K <= 1200 else 1.0


def _calculator(eip_name: str):
    """One EIPCalculator per EIP per process (creating a KIM model costs milliseconds)."""
    from ..eip.calculator import EIPCalculator

    calculator = _CALCULATORS.get(eip_name)
    if calculator is None:
        calculator = _CALCULATORS[eip_name] = EIPCalculator(eip_name)
    return calculator


_CALCULATORS: dict = {}


def _dynamics(atoms: Atoms, eip_name: str, temperature_K: float, rng: np.random.Generator):
    atoms.calc = _calculator(eip_name)
    thermalize_momenta(atoms, temperature_K, rng=rng)
    Stationary(atoms)
    return Langevin(
        atoms,
        timestep=_timestep_fs(temperature_K) * units.fs,
        temperature_K=temperature_K,
        friction=FRICTION_PER_FS / units.fs,
        fixcm=False,  # the drift of the centre of mass does not matter for snapshots
        rng=rng,
    )


def _snapshot(atoms: Atoms, **info) -> Atoms:
    frame = Atoms(
        numbers=atoms.numbers, positions=atoms.get_positions(wrap=True), cell=atoms.cell,
        pbc=atoms.pbc,
    )
    frame.info.update(atoms.info)  # what the start cell carried (lattice, facet, ...)
    frame.info.update(info)
    return frame


def thermal_snapshots(
    atoms: Atoms,
    eip_name: str,
    temperature_K: float,
    rng: np.random.Generator,
    count: int,
    equilibration_steps: int = 400,
    interval: int = 50,
) -> list[Atoms]:
    """``count`` snapshots of a Langevin run at ``temperature_K`` started from ``atoms``
    (a crystal for a hot solid, or one far above melting for a liquid)."""
    atoms = atoms.copy()
    dynamics = _dynamics(atoms, eip_name, temperature_K, rng)
    dynamics.run(equilibration_steps)
    frames = []
    for _ in range(count):
        dynamics.run(interval)
        frames.append(_snapshot(atoms, temperature_K=round(float(temperature_K), 1)))
    return frames


def solid_liquid_snapshots(
    atoms: Atoms,
    eip_name: str,
    melt_temperature_K: float,
    temperature_K: float,
    rng: np.random.Generator,
    count: int,
    melt_steps: int = 600,
    interval: int = 25,
) -> list[Atoms]:
    """An elongated crystal (longest axis = the last cell vector), its upper half melted at
    ``melt_temperature_K`` with the lower half fixed, then the whole cell at
    ``temperature_K`` (near melting): ``count`` snapshots every ``interval`` steps."""
    atoms = atoms.copy()
    fractional = atoms.get_scaled_positions()[:, 2]
    lower = fractional < 0.5
    atoms.set_constraint(FixAtoms(mask=lower))
    dynamics = _dynamics(atoms, eip_name, melt_temperature_K, rng)
    dynamics.run(melt_steps)
    atoms.set_constraint()
    dynamics = _dynamics(atoms, eip_name, temperature_K, rng)
    frames = []
    for _ in range(count):
        dynamics.run(interval)
        frames.append(_snapshot(atoms, temperature_K=round(float(temperature_K), 1)))
    return frames
