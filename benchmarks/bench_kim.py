"""Time per MD step: LAMMPS through KIM (pair_style kim + the eipnn driver) vs ASE with
EIPNNCalculator, on the same diamond-Si cell and model, both with the same number of threads.

    .venv/bin/python benchmarks/bench_kim.py --sizes 512 4096 --steps 20 --threads 2

The model is a random-init SchNet built here (no training needed for timing); its
receptive field (cutoff x interactions) sets how many padding particles LAMMPS supplies.
Everything is written under --workdir (default runs/bench_kim); the KIM collection used is
private to that folder.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.io import write
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase import units

from eipnn_calc.calculator import EIPNNCalculator
from eipnn_calc.kim.collections import apply_environment, isolated_collection_environment
from eipnn_calc.kim.portable_model import install_portable_model, write_portable_model

REPO = Path(__file__).resolve().parents[1]
CELLS_PER_SIDE = {64: 2, 512: 4, 4096: 8}
TIMESTEP_PS = 0.001

LAMMPS_INPUT = """\
kim init {model} metal
atom_style atomic
boundary p p p
read_data {data}
kim interactions Si
mass * 28.0855
timestep {timestep_ps}
thermo {steps}
fix integrate all nve
run 2
run {steps}
"""


def make_model(path: Path, features: int, interactions: int, cutoff_angstrom: float) -> Path:
    from eipnn_training.export import export_model
    from eipnn_training.models.build import ModelSpec, build_potential

    torch.manual_seed(0)
    hyper = {"num_features": features, "num_interactions": interactions, "num_rbf": features}
    spec = ModelSpec("schnet", ["Si"], cutoff_angstrom, hyper, head_hidden=features)
    potential = build_potential(spec)
    with torch.no_grad():
        potential.atom_ref[:] = -5.4
    export_model(potential, spec, path)
    return path


def si_cell(num_atoms: int):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((CELLS_PER_SIDE[num_atoms],) * 3)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    return atoms


def ase_seconds_per_step(atoms, model: Path, steps: int) -> float:
    atoms = atoms.copy()
    atoms.calc = EIPNNCalculator(model)
    dynamics = VelocityVerlet(atoms, timestep=TIMESTEP_PS * 1000 * units.fs)
    dynamics.run(2)  # warm-up: TorchScript profiling runs, first neighbour list
    start = time.perf_counter()
    dynamics.run(steps)
    return (time.perf_counter() - start) / steps


def lammps_seconds_per_step(atoms, model_name: str, steps: int, workdir: Path, env: dict) -> tuple[float, str]:
    data = workdir / f"si_{len(atoms)}.data"
    write(data, atoms, format="lammps-data", specorder=["Si"], velocities=True, units="metal")
    script = workdir / f"in.bench_{len(atoms)}"
    script.write_text(LAMMPS_INPUT.format(model=model_name, data=data, steps=steps, timestep_ps=TIMESTEP_PS))
    result = subprocess.run(["lmp", "-in", str(script), "-log", "none"], cwd=workdir,
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:] + result.stderr[-2000:])
    loops = re.findall(r"Loop time of ([\d.eE+-]+) on \d+ procs for (\d+) steps", result.stdout)
    seconds, counted = float(loops[-1][0]), int(loops[-1][1])  # the last run: after warm-up
    ghosts = re.findall(r"Nghost:\s+(\d+)", result.stdout)
    return seconds / counted, (ghosts[-1] if ghosts else "?")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 4096], choices=sorted(CELLS_PER_SIDE))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--interactions", type=int, default=2)
    parser.add_argument("--cutoff", type=float, default=5.0, help="Å")
    parser.add_argument("--workdir", default=str(REPO / "runs" / "bench_kim"))
    args = parser.parse_args(argv)

    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    kim_variables = isolated_collection_environment(workdir / "kim", REPO / "build" / "kim-driver")
    env = apply_environment(kim_variables, {**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    os.environ.update({k: v for k, v in kim_variables.items() if v is not None})

    model_name = f"eipnn_bench_f{args.features}_i{args.interactions}"
    model = make_model(workdir / f"{model_name}.pt", args.features, args.interactions, args.cutoff)
    install_portable_model(write_portable_model(model, model_name, workdir / "packages"), "user")

    rows = []
    for size in args.sizes:
        atoms = si_cell(size)
        ase_step = ase_seconds_per_step(atoms, model, args.steps)
        kim_step, ghosts = lammps_seconds_per_step(atoms, model_name, args.steps, workdir, env)
        row = {"atoms": size, "lammps_ghosts": ghosts, "ase_ms_per_step": 1e3 * ase_step,
               "lammps_kim_ms_per_step": 1e3 * kim_step, "kim_over_ase": kim_step / ase_step}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {"model": {"features": args.features, "interactions": args.interactions,
                         "cutoff_angstrom": args.cutoff}, "threads": args.threads, "rows": rows}
    (workdir / "results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
