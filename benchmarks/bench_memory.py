"""Peak memory of EIPNNCalculator per atom and per edge, against the estimate it checks its
memory limit with (``eipnn_calc.memory``), for paper-size SchNet and SOAPNet on diamond Si
(64, 512, 4,096 atoms; float32 and float64).

Each case runs in a fresh process: the calculator is loaded and warmed up on the 8-atom cell,
then one energy + forces + stress call on the supercell; peak RSS comes from getrusage.

    python benchmarks/bench_memory.py [--sizes 64 512 4096] [--threads 1]

Prints a table and writes it to docs/benchmarks.md (section "memory").
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential

from eipnn_training.markdown_section import write_section

REPEATS = {64: 2, 512: 4, 4096: 8}  # atoms -> repeats of the 8-atom cubic cell
MODELS = {  # name -> (model kind, hyper-parameters, exported exact rather than tabulated)
    "schnet": ("schnet", {"num_features": 128, "num_interactions": 5, "num_rbf": 128}, False),
    "schnet-exact": ("schnet", {"num_features": 128, "num_interactions": 5, "num_rbf": 128}, True),
    "soapnet": ("soapnet", {"n_max": 8, "l_max": 6, "sigma_angstrom": 1.0, "num_features": 128, "num_dense": 5}, False),
}

CHILD = r"""
import json, resource, sys
import numpy as np, torch
from ase.build import bulk
from eipnn_calc import EIPNNCalculator
from eipnn_calc import memory
from eipnn_calc.neighbors import build_edges
model, repeat, dtype, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes (Linux: KiB)
calc = EIPNNCalculator(model, dtype=dtype, skin=0.0)
warm = bulk("Si", "diamond", 5.431, cubic=True)
warm.calc = calc
warm.get_forces()
before = peak()
atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(repeat)
atoms.rattle(0.05, seed=0)
atoms.calc = calc
atoms.get_forces(); atoms.get_stress()
edges = len(build_edges(atoms, calc.cutoff)[0][0])
estimate = memory.estimated_bytes(edges, calc.metadata.model, len(calc.metadata.species), calc.dtype)
print(json.dumps({"atoms": len(atoms), "edges": edges, "warm_bytes": before, "peak_bytes": peak(),
                  "estimate_bytes": estimate}))
"""


def export(name: str, folder: Path) -> Path:
    torch.manual_seed(0)
    kind, hyperparameters, exact = MODELS[name]
    spec = ModelSpec(kind, ["Si"], 5.0, dict(hyperparameters))
    path = folder / f"{name}.pt"
    export_model(build_potential(spec), spec, path, exact=exact)
    return path


def measure(model: Path, atoms: int, dtype: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(model), str(REPEATS[atoms]), dtype, str(threads)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = ["| model | dtype | atoms | edges | peak RSS (MB) | per atom (kB) | per edge above warm-up (kB) "
             "| estimate (MB) | estimate / peak |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        per_edge = (r["peak_bytes"] - r["warm_bytes"]) / r["edges"] / 1e3
        lines.append(
            f"| {r['model']} | {r['dtype']} | {r['atoms']:,} | {r['edges']:,} | {r['peak_bytes'] / 1e6:,.0f} "
            f"| {r['peak_bytes'] / r['atoms'] / 1e3:,.0f} | {per_edge:.2f} | {r['estimate_bytes'] / 1e6:,.0f} "
            f"| {r['estimate_bytes'] / r['peak_bytes']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=sorted(REPEATS), choices=sorted(REPEATS))
    p.add_argument("--models", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models:
            model = export(kind, Path(tmp))
            for dtype in args.dtypes:
                for atoms in args.sizes:
                    rows.append({"model": kind, "dtype": dtype, **measure(model, atoms, dtype, args.threads)})
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    print(text)
    if not args.no_write:
        begin, end = "<!-- memory:start -->", "<!-- memory:end -->"
        body = (
            f"{begin}\n## EIPNNCalculator memory\n\nPeak resident memory of one energy + forces + stress call of EIPNNCalculator on rattled "
            f"diamond Si (fresh process per row, {args.threads} thread(s), skin 0), and the estimate "
            "the calculator compares with its `memory_limit_gb` before any work "
            "(`eipnn_calc/memory.py`; it must stay above the peak). Paper-size models: SchNet 128 "
            "features, 5 interactions, 128 RBF (exported with its filters tabulated, the default, and "
            "`--exact`); SOAPNet n_max 8, l_max 6; cutoff 5 Å.\n\n"
            f"{text}\n\n"
            "Reproduce: `python benchmarks/bench_memory.py`.\n"
            f"{end}"
        )
        write_section(Path(__file__).parent.parent / "docs" / "benchmarks.md", body, begin, end, "# Benchmarks")


if __name__ == "__main__":
    main()
