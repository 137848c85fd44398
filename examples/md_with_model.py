"""Run NVE molecular dynamics of diamond silicon with an exported eipnn model.

    python examples/md_with_model.py MODEL.pt [--steps 100] [--temperature 300] [--device auto]

Prints the potential, kinetic and total energy per atom every 10 steps.
"""
import argparse

import numpy as np
from ase import units
from ase.build import bulk
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from eipnn_calc import EIPNNCalculator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=300.0, help="initial temperature, K")
    parser.add_argument("--repeat", type=int, default=2, help="cubic 8-atom cells per side")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(args.repeat)
    thermalize_momenta(atoms, temperature_K=args.temperature, rng=np.random.default_rng(args.seed))
    Stationary(atoms)
    atoms.calc = EIPNNCalculator(args.model, device=args.device)
    n = len(atoms)
    print(f"NVE MD of {n} Si atoms, 1 fs steps, model {args.model}")
    print(f"{'step':>6} {'E_pot/atom':>12} {'E_kin/atom':>12} {'E_tot/atom':>12} {'T (K)':>8}")

    def report() -> None:
        epot, ekin = atoms.get_potential_energy() / n, atoms.get_kinetic_energy() / n
        print(f"{dyn.nsteps:6d} {epot:12.5f} {ekin:12.5f} {epot + ekin:12.5f} {atoms.get_temperature():8.1f}")

    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.attach(report, interval=10)
    dyn.run(args.steps)


if __name__ == "__main__":
    main()
