"""Time per MD step: LAMMPS through KIM (pair_style kim + the eipnn driver) vs ASE with
EIPNNCalculator, on the same diamond-Si cell and model, both with the same number of threads.

    .venv/bin/python benchmarks/bench_kim.py --sizes 512 4096 --steps 20 --threads 2
    .venv/bin/python benchmarks/bench_kim.py --compare-evaluated   # + padding as particles
    .venv/bin/python benchmarks/bench_kim.py --compare-all-edges   # + the driver without pruning

The model is a random-init SchNet built here (no training needed for timing); its
receptive field (cutoff x interactions) sets how many padding particles LAMMPS supplies.
With --compare-all-edges the same model is also installed under a second name with its
metadata marked model-file format 1, so the driver gives every layer every edge (no
per-layer pruning, as before format 2): the gain of the pruning on the same machine.
The driver folds LAMMPS's ghost atoms onto the atoms they image (periodic_images = fold, the
default; eipnn_calc/kim/driver/periodic_images.hpp); with --compare-evaluated the same model
is also installed with periodic_images = evaluate, which runs the model on the ghost atoms as
particles of their own (what MPI domains get): the gain of folding.
Everything is written under --workdir (default runs/bench_kim); the KIM collection used is
private to that folder.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.io import write
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase import units

from eipnn_calc.calculator import EIPNNCalculator
from eipnn_calc.model_file import read_metadata
from eipnn_calc.kim.collections import apply_environment, isolated_collection_environment
from eipnn_calc.kim.portable_model import install_portable_model, write_portable_model
from eipnn_training.markdown_section import write_section

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


def make_model(path: Path, features: int, interactions: int, cutoff_angstrom: float, dtype: str) -> Path:
    from eipnn_training.export import export_model
    from eipnn_training.models.build import ModelSpec, build_potential

    torch.manual_seed(0)
    hyper = {"num_features": features, "num_interactions": interactions, "num_rbf": features}
    spec = ModelSpec("schnet", ["Si"], cutoff_angstrom, hyper, head_hidden=features)
    potential = build_potential(spec)
    with torch.no_grad():
        potential.atom_ref[:] = -5.4
    export_model(potential, spec, path, dtype=dtype)
    return path


def as_format_1(model: Path, target: Path) -> Path:
    """A copy of ``model`` whose metadata says format 1: the driver then passes no
    layer_edges and every layer runs over every edge."""
    from eipnn_calc.model_file import METADATA_NAME

    with zipfile.ZipFile(model) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename.endswith(METADATA_NAME):
                data = json.dumps({**json.loads(data), "format_version": 1}).encode()
            new.writestr(item, data)
    return target


def si_cell(num_atoms: int):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((CELLS_PER_SIDE[num_atoms],) * 3)
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    return atoms


def ase_seconds_per_step(atoms, model: Path, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per velocity-Verlet step with EIPNNCalculator, in the dtype of the
    model file as the KIM driver runs it (the calculator's own default is float64)."""
    atoms = atoms.copy()
    atoms.calc = EIPNNCalculator(model, dtype=read_metadata(model).dtype)
    dynamics = VelocityVerlet(atoms, timestep=TIMESTEP_PS * 1000 * units.fs)
    dynamics.run(2)  # warm-up: TorchScript profiling runs, first neighbour list
    wall, cpu = time.perf_counter(), time.process_time()
    dynamics.run(steps)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def run_lammps(atoms, model_name: str, steps: int, workdir: Path, env: dict) -> dict:
    """One LAMMPS run: its loop time of the timed run (wall s), its CPU time (s), its
    largest resident size (MB) and the ghost count, from wait4 on that process alone."""
    data = workdir / f"si_{len(atoms)}.data"
    write(data, atoms, format="lammps-data", specorder=["Si"], velocities=True, units="metal")
    script = workdir / f"in.bench_{len(atoms)}_{steps}"
    script.write_text(LAMMPS_INPUT.format(model=model_name, data=data, steps=steps, timestep_ps=TIMESTEP_PS))
    log = workdir / f"out.{model_name}_{len(atoms)}_{steps}"
    with open(log, "w") as output:
        process = subprocess.Popen(["lmp", "-in", str(script), "-log", "none"], cwd=workdir,
                                   stdout=output, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if process.returncode != 0:
        raise RuntimeError(f"LAMMPS failed ({process.returncode}):\n" + text[-4000:])
    loop = re.findall(r"Loop time of ([\d.eE+-]+) on \d+ procs for \d+ steps", text)[-1]
    ghosts = re.findall(r"Nghost:\s+(\d+)", text)
    return {"wall": float(loop), "cpu": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": usage.ru_maxrss / 1024, "ghosts": ghosts[-1] if ghosts else "?"}


def lammps_seconds_per_step(atoms, model_name: str, steps: int, workdir: Path, env: dict) -> dict:
    """Wall and CPU seconds per step, largest resident size, ghosts. CPU from two runs of
    different length, so start-up (libtorch, model load, warm-up) cancels; CPU time is the
    steadier number on a busy host."""
    long = run_lammps(atoms, model_name, 2 * steps, workdir, env)
    short = run_lammps(atoms, model_name, steps, workdir, env)
    return {"wall": long["wall"] / (2 * steps), "cpu": (long["cpu"] - short["cpu"]) / steps,
            "max_rss_mb": max(long["max_rss_mb"], short["max_rss_mb"]), "ghosts": long["ghosts"]}


def markdown(summary: dict) -> str:
    """The generated section of docs/kim_lammps.md for one model."""
    m = summary["model"]
    rows = summary["rows"]
    lines = [f"Generated by `benchmarks/bench_kim.py {summary['command']}` on {summary['date']}: "
             f"random-init SchNet, {m['features']} features, {m['interactions']} interactions, "
             f"r_c {m['cutoff_angstrom']:g} Å (influence distance {m['interactions'] * m['cutoff_angstrom']:g} Å), "
             f"{summary['dtype']}, {summary['threads']} thread(s) in both paths; load average "
             f"{summary['load_before']:.1f} before, {summary['load_after']:.1f} after, {os.cpu_count()} CPUs.", "",
             "| atoms | LAMMPS ghosts | ASE ms/step (wall / CPU) | KIM ms/step (wall / CPU) "
             "| KIM / ASE (wall) | KIM / ASE (CPU) | KIM, ghosts evaluated (wall / CPU) | gain of folding (wall) "
             "| KIM, ghosts evaluated, every layer all edges (wall / CPU) "
             "| gain of per-layer edges (wall) | LAMMPS max RSS (folded / evaluated) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def pair(r: dict, key: str) -> str:
        return f"{r[key + '_wall_ms']:.1f} / {r[key + '_cpu_ms']:.1f}" if key + "_wall_ms" in r else "not run"

    for r in rows:
        folding = f"{r['folding_gain_wall']:.2f}x" if "folding_gain_wall" in r else ""
        pruning = f"{r['pruning_gain_wall']:.2f}x" if "pruning_gain_wall" in r else ""
        memory = f"{r['kim_max_rss_mb']:,}" + (f" / {r['kim_evaluated_max_rss_mb']:,}" if "kim_evaluated_max_rss_mb" in r else "")
        lines.append(f"| {r['atoms']:,} | {int(r['lammps_ghosts']):,} | {r['ase_wall_ms']:.1f} / {r['ase_cpu_ms']:.1f} "
                     f"| {r['kim_wall_ms']:.1f} / {r['kim_cpu_ms']:.1f} | {r['kim_over_ase_wall']:.2f} "
                     f"| {r['kim_over_ase_cpu']:.2f} | {pair(r, 'kim_evaluated')} | {folding} "
                     f"| {pair(r, 'kim_all_edges')} | {pruning} | {memory} MB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 4096], choices=sorted(CELLS_PER_SIDE))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--interactions", type=int, default=2)
    parser.add_argument("--cutoff", type=float, default=5.0, help="Å")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="of the exported model")
    parser.add_argument("--workdir", default=str(REPO / "runs" / "bench_kim"))
    parser.add_argument("--compare-evaluated", action="store_true",
                        help="also time the driver with periodic_images = evaluate (ghosts as particles)")
    parser.add_argument("--compare-all-edges", action="store_true",
                        help="also time the driver with ghosts evaluated and every layer over every edge (format 1)")
    parser.add_argument("--doc", default=str(REPO / "docs" / "kim_lammps.md"),
                        help="markdown file whose bench-kim-f<F>-i<I> section gets the table ('' = none)")
    args = parser.parse_args(argv)
    args.compare_evaluated |= args.compare_all_edges  # per-layer edges are a gain of the evaluated path
    load_before = os.getloadavg()[0]

    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    kim_variables = isolated_collection_environment(workdir / "kim", REPO / "build" / "kim-driver")
    env = apply_environment(kim_variables, {**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    os.environ.update({k: v for k, v in kim_variables.items() if v is not None})

    model_name = f"eipnn_bench_f{args.features}_i{args.interactions}_{args.dtype}"
    model = make_model(workdir / f"{model_name}.pt", args.features, args.interactions, args.cutoff, args.dtype)
    install_portable_model(write_portable_model(model, model_name, workdir / "packages"), "user")
    if args.compare_evaluated:
        install_portable_model(write_portable_model(model, f"{model_name}_evaluated", workdir / "packages",
                                                    periodic_images="evaluate"), "user")
    if args.compare_all_edges:  # format 1: neither per-layer edges nor folding (format 3)
        unpruned = as_format_1(model, workdir / f"{model_name}_all_edges.pt")
        install_portable_model(
            write_portable_model(unpruned, f"{model_name}_all_edges", workdir / "packages"), "user")

    rows = []
    for size in args.sizes:
        atoms = si_cell(size)
        ase_wall, ase_cpu = ase_seconds_per_step(atoms, model, args.steps)
        kim = lammps_seconds_per_step(atoms, model_name, args.steps, workdir, env)
        kim_wall, kim_cpu = kim["wall"], kim["cpu"]
        row = {"atoms": size, "lammps_ghosts": kim["ghosts"], "kim_max_rss_mb": round(kim["max_rss_mb"]),
               "ase_wall_ms": round(1e3 * ase_wall, 1), "kim_wall_ms": round(1e3 * kim_wall, 1),
               "ase_cpu_ms": round(1e3 * ase_cpu, 1), "kim_cpu_ms": round(1e3 * kim_cpu, 1),
               "kim_over_ase_wall": round(kim_wall / ase_wall, 2),
               "kim_over_ase_cpu": round(kim_cpu / ase_cpu, 2)}
        if args.compare_evaluated:
            evaluated = lammps_seconds_per_step(atoms, f"{model_name}_evaluated", args.steps, workdir, env)
            row.update({"kim_evaluated_wall_ms": round(1e3 * evaluated["wall"], 1),
                        "kim_evaluated_cpu_ms": round(1e3 * evaluated["cpu"], 1),
                        "kim_evaluated_max_rss_mb": round(evaluated["max_rss_mb"]),
                        "folding_gain_wall": round(evaluated["wall"] / kim_wall, 2)})
        if args.compare_all_edges:
            every = lammps_seconds_per_step(atoms, f"{model_name}_all_edges", args.steps, workdir, env)
            row.update({"kim_all_edges_wall_ms": round(1e3 * every["wall"], 1),
                        "kim_all_edges_cpu_ms": round(1e3 * every["cpu"], 1),
                        "kim_all_edges_max_rss_mb": round(every["max_rss_mb"]),
                        "pruning_gain_wall": round(every["wall"] / evaluated["wall"], 2)})
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {"model": {"features": args.features, "interactions": args.interactions,
                         "cutoff_angstrom": args.cutoff}, "threads": args.threads, "rows": rows, "dtype": args.dtype,
               "command": " ".join(argv if argv is not None else sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "load_before": load_before, "load_after": os.getloadavg()[0]}
    (workdir / "results.json").write_text(json.dumps(summary, indent=2))
    if args.doc:
        name = f"bench-kim-f{args.features}-i{args.interactions}-{args.dtype}-t{args.threads}"
        write_section(Path(args.doc), f"<!-- {name}:begin -->\n{markdown(summary)}\n<!-- {name}:end -->",
                      f"<!-- {name}:begin -->", f"<!-- {name}:end -->", "# KIM")
        print(f"table written to {args.doc} (section {name})")


if __name__ == "__main__":
    main()
