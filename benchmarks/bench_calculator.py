"""Time per MD step of EIPNNCalculator on diamond Si supercells (64, 512, 4,096 atoms).

Each step is split into neighbour list (amortised with the Verlet skin over a real NVE run),
model forward+backward, and the rest (tensor conversion, ASE bookkeeping, the integrator).
A KIM Stillinger-Weber step on the same cells is the classical reference point.

    python benchmarks/bench_calculator.py [--steps 20] [--device cpu] [--dtype float32]

Prints a table and writes it to docs/benchmarks.md (section "calculator").
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.build import bulk
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

from eipnn_calc import EIPNNCalculator
from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential

from eipnn_training.markdown_section import write_section

SIZES = {64: 2, 512: 4, 4096: 8}  # atoms -> repeats of the 8-atom cubic cell
SW_SI = "SW_StillingerWeber_1985_Si__MO_405512056662_005"


class TimedCalculator(EIPNNCalculator):
    """Accumulates wall time of the neighbour list and of the model call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timings = {"neighbors": 0.0, "model": 0.0}
        get, evaluate = self.neighbors.get, self._evaluate

        def timed_get(*args):
            start = time.perf_counter()
            result = get(*args)
            self.timings["neighbors"] += time.perf_counter() - start
            return result

        def timed_evaluate(*args):
            start = time.perf_counter()
            result = evaluate(*args)
            self.timings["model"] += time.perf_counter() - start
            return result

        self.neighbors.get, self._evaluate = timed_get, timed_evaluate


PAPER_SIZE = {  # model kind -> the paper's sizes
    "schnet": {"num_features": 128, "num_interactions": 5, "num_rbf": 128},
    "cgcnn": {"num_features": 128, "num_layers": 5, "num_rbf": 128},
}


def paper_size_model(path: Path, kind: str = "schnet") -> Path:
    torch.manual_seed(0)
    spec = ModelSpec(kind, ["Si"], 5.0, dict(PAPER_SIZE[kind]))
    potential = build_potential(spec)
    potential.atom_ref.fill_(-5.4)
    export_model(potential, spec, path)
    return path


def md_cell(repeat: int):
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(repeat)
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    return atoms


def time_nn(model: Path, repeat: int, steps: int, device: str, dtype: str, tune: bool) -> dict[str, float]:
    atoms = md_cell(repeat)
    calc = TimedCalculator(model, device=device, dtype=dtype, skin=1.0, tune_malloc=tune)
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(2)  # warm-up: first neighbour list, TorchScript profiling runs
    calc.timings = {"neighbors": 0.0, "model": 0.0}
    builds = calc.neighbors.builds
    start = time.perf_counter()
    dyn.run(steps)
    total = (time.perf_counter() - start) / steps
    neighbors = calc.timings["neighbors"] / steps
    model = calc.timings["model"] / steps
    return {
        "step_ms": 1e3 * total,
        "neighbors_ms": 1e3 * neighbors,
        "model_ms": 1e3 * model,
        "rest_ms": 1e3 * (total - neighbors - model),
        "rebuilds": calc.neighbors.builds - builds,
    }


def time_rebuild(model: Path, repeat: int, repeats: int = 5) -> float:
    """Cost of one neighbour-list build (ms), to show what the skin saves."""
    atoms = md_cell(repeat)
    calc = EIPNNCalculator(model, skin=1.0)
    start = time.perf_counter()
    for _ in range(repeats):
        calc.neighbors._reference = None
        calc.neighbors.get(atoms)
    return 1e3 * (time.perf_counter() - start) / repeats


def time_kim(repeat: int, steps: int) -> float | None:
    try:
        from ase.calculators.kim import KIM
    except ImportError:
        return None
    atoms = md_cell(repeat)
    atoms.calc = KIM(SW_SI)
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(2)
    start = time.perf_counter()
    dyn.run(steps)
    return 1e3 * (time.perf_counter() - start) / steps


def table(rows: list[dict], device: str, dtype: str, tune: bool, kind: str = "schnet") -> str:
    model = {"schnet": "SchNet 128 features, 5 interactions", "cgcnn": "CGCNN 128 features, 5 layers"}[kind]
    lines = [
        f"Device {device}, {dtype}, tune_malloc={tune}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; "
        f"{model}, 128 RBF, 5 Å cutoff, exported with its radial part tabulated; skin 1 Å; NVE 300 K.",
        "",
        "| atoms | ms/step | atom-steps/s | neighbour list ms (%) | model fwd+bwd ms | rest ms "
        "| µs/atom/step | one NL build ms | KIM SW ms/step |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        kim = f"{r['kim_ms']:.2f}" if r["kim_ms"] is not None else "n/a"
        lines.append(
            f"| {r['atoms']} | {r['step_ms']:.1f} | {r['atoms'] / r['step_ms'] * 1e3:,.0f} "
            f"| {r['neighbors_ms']:.2f} ({100 * r['neighbors_ms'] / r['step_ms']:.1f} %) "
            f"| {r['model_ms']:.1f} | {r['rest_ms']:.2f} | {1e3 * r['step_ms'] / r['atoms']:.1f} "
            f"| {r['build_ms']:.1f} | {kim} |"
        )
    per_atom = {r["atoms"]: r["step_ms"] / r["atoms"] for r in rows}
    if 512 in per_atom and 4096 in per_atom:
        lines.append("")
        lines.append(f"Cost per atom at 4,096 / at 512 atoms: {per_atom[4096] / per_atom[512]:.2f}x")
    return "\n".join(lines)


def write_benchmark_section(text: str, name: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    begin, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    write_section(path, f"{begin}\n{text}\n{end}", begin, end, "# Benchmarks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--tune-malloc", action="store_true", help="EIPNNCalculator(tune_malloc=True)")
    parser.add_argument("--kind", default="schnet", choices=sorted(PAPER_SIZE), help="the paper-size model")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = paper_size_model(Path(tmp) / f"{args.kind}.pt", args.kind)
        for n_atoms in args.sizes:
            repeat = SIZES[n_atoms]
            steps = max(3, args.steps * 512 // max(n_atoms, 512))
            row = {"atoms": n_atoms, **time_nn(model, repeat, steps, args.device, args.dtype, args.tune_malloc)}
            row["build_ms"] = time_rebuild(model, repeat)
            row["kim_ms"] = time_kim(repeat, steps)
            rows.append(row)
            print(f"{n_atoms} atoms: {row['step_ms']:.1f} ms/step", flush=True)
    text = table(rows, args.device, args.dtype, args.tune_malloc, args.kind)
    print(text)
    if not args.no_write:
        label = (f"{args.device}-{args.dtype}" + ("-tuned" if args.tune_malloc else "")
                 + ("" if args.kind == "schnet" else f"-{args.kind}"))
        write_benchmark_section(f"## EIPNNCalculator MD step ({label})\n\n{text}", f"calculator-{label}")


if __name__ == "__main__":
    main()
