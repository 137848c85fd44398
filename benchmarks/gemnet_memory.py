"""Peak memory and time of GemNet-T (paper sizes, float32) per training step (energies and
forces, batch sizes 1 and 32) and per MD step (an energy + forces call of the scripted model),
on fcc Al and diamond Si cells of 64 to 1,000 atoms: the bounded triplet sums
(``models.triplets``, chunks of ``triplet_memory_mb``) against a naive implementation of the
same model (plain autograd over one chunk, which keeps the [triplet, spherical, feature]
products for the backward and the double backward).

Each case runs in a fresh process, watched by this one: its resident memory is polled and the
case is stopped at ``--limit-gb`` (reported as "> limit"). Peak = the peak RSS of the step
(VmHWM, reset just before it); "step" = that peak less the RSS before the step (model, data
and torch loaded).

    python benchmarks/gemnet_memory.py [--quick] [--limit-gb 14] [--no-write]

Prints a table and writes it to docs/gemnet.md (section "memory").
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from eipnn_training.markdown_section import write_section

DOC = Path(__file__).resolve().parent.parent / "docs" / "gemnet.md"
# system -> (element, lattice, a in Å, {atoms: repeats of the cubic cell})
SYSTEMS = {
    "Al fcc": ("Al", "fcc", 4.05, {64: (2, 2, 4), 256: (4, 4, 4), 500: (5, 5, 5), 1000: (5, 5, 10),
                                   4096: (8, 8, 16)}),
    "Si diamond": ("Si", "diamond", 5.43, {64: (2, 2, 2), 216: (3, 3, 3), 512: (4, 4, 4), 1000: (5, 5, 5),
                                           4096: (8, 8, 8)}),
}

CHILD = r"""
import json, sys, time
import numpy as np, torch
from ase.build import bulk
from eipnn_calc.neighbors import build_edges
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.data.batching import Batch
from eipnn_training.train.loop import FitSettings, _step_backward
PASS_ATOMS = 256
element, lattice, a, repeat, batch, mode, impl, triplet_cutoff = sys.argv[1:9]
a, repeat, batch = float(a), tuple(json.loads(repeat)), int(batch)
torch.set_num_threads(1)
def peak():  # VmHWM: the peak resident memory since the last reset (bytes)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
def reset_peak():  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
torch.manual_seed(0)
hyper = {"triplet_cutoff_angstrom": float(triplet_cutoff)}
if impl == "naive":
    hyper["triplet_memory_mb"] = 1e6  # one chunk
spec = ModelSpec("gemnet", [element], 5.0, hyper)
potential = build_potential(spec)
for block in potential.representation.blocks:
    block.triplets.bounded = impl == "bounded"
cells = []
for k in range(batch):
    atoms = bulk(element, lattice, a, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=k)
    cells.append(atoms)
edges, shifts, offset = [], [], 0
for atoms in cells:
    e, s = build_edges(atoms, 5.0)
    edges.append(e + offset); shifts.append(s); offset += len(atoms)
edge_index = torch.tensor(np.concatenate(edges, 1))
edge_shift = torch.tensor(np.concatenate(shifts), dtype=torch.float32)
lengths = np.linalg.norm(np.concatenate([c.positions for c in cells])[edge_index[1]] + edge_shift.numpy()
                         - np.concatenate([c.positions for c in cells])[edge_index[0]], axis=1)
inner = torch.tensor(edge_index[0].numpy()[lengths < float(triplet_cutoff)])
counts = torch.bincount(inner, minlength=offset).double()
triplets = int((counts * (counts - 1)).sum())
positions = torch.tensor(np.concatenate([c.positions for c in cells]), dtype=torch.float32)
graph = torch.tensor(np.repeat(np.arange(batch), [len(c) for c in cells]))
species = torch.zeros(offset, dtype=torch.int64)

settings = FitSettings(dtype=torch.float32, force_weight=1.0,
                       max_atoms_per_pass=PASS_ATOMS if impl == "bounded" else None)
whole = Batch(positions=positions, species=species, edge_index=edge_index, edge_shift=edge_shift, batch=graph,
              num_atoms=torch.tensor([len(c) for c in cells]), targets=torch.zeros(batch, 1),
              target_mask=torch.ones(batch, 1, dtype=torch.bool), weight=torch.ones(batch),
              kind=torch.zeros(batch, dtype=torch.int64), rows=torch.arange(batch),
              forces=torch.zeros(offset, 1, 3), force_mask=torch.ones(offset, 1, dtype=torch.bool))

def train_step():
    _step_backward(potential, whole, settings)

if mode == "md":
    # The exported model: bounded = as eipnn-export writes it (rematerialized blocks, chunked
    # triplets); naive = the plain potential scripted, one chunk, every block's graph at once.
    from eipnn_training.models.rematerialized import RematerializedPotential
    module = torch.jit.script(RematerializedPotential.of(potential) if impl == "bounded" else potential)
    def inputs_of(atoms):
        index, shift = build_edges(atoms, 5.0)
        return (torch.tensor(atoms.positions, dtype=torch.float32), torch.zeros(len(atoms), dtype=torch.int64),
                torch.tensor(index), torch.tensor(shift, dtype=torch.float32), torch.ones(len(atoms), dtype=torch.bool))
    small = inputs_of(bulk(element, lattice, a, cubic=True))
    # As EIPNNCalculator runs a model on the CPU: without the profiling executor, whose
    # optimised graphs hold more (docs/gemnet.md).
    unoptimised = torch.jit.optimized_execution(False)  # kept: its exit runs when it is collected
    unoptimised.__enter__()
    module(*small)
    inputs = inputs_of(cells[0])
    first = inputs[0]
    def step():
        module(first.clone(), *inputs[1:])["forces"]
else:
    step = train_step
reset_peak()
before = rss()
start = time.perf_counter(); step(); seconds = time.perf_counter() - start
if seconds < 20:
    start = time.perf_counter(); step(); seconds = time.perf_counter() - start
print(json.dumps({"atoms": offset, "edges": int(edge_index.shape[1]), "triplets": triplets,
                  "before_bytes": before, "peak_bytes": peak(), "seconds": seconds}))
"""


def measure(case: dict, limit_gb: float) -> dict:
    element, lattice, a, repeats = SYSTEMS[case["system"]]
    command = [sys.executable, "-c", CHILD, element, lattice, str(a), json.dumps(repeats[case["cell"]]),
               str(case["batch"]), case["mode"], case["impl"], str(case["triplet_cutoff"])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stopped = False
    while child.poll() is None:
        try:
            resident = int(Path(f"/proc/{child.pid}/statm").read_text().split()[1]) * 4096
        except (FileNotFoundError, ProcessLookupError):
            break
        if resident > limit_gb * 2**30:
            child.kill()
            stopped = True
            break
        time.sleep(0.1)
    out, err = child.communicate()
    if stopped:
        return {**case, "stopped": True}
    if child.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{err[-2000:]}")
    return {**case, **json.loads(out.strip().splitlines()[-1])}


def cases(quick: bool, systems: list[str], cells: list[int] | None) -> list[dict]:
    out = []
    for system, (_, _, _, repeats) in SYSTEMS.items():
        if system not in systems:
            continue
        sizes = sorted(repeats)[:2] if quick else sorted(repeats)
        sizes = [c for c in sizes if cells is None or c in cells]
        for cell in sizes:
            for impl in ("bounded", "naive"):
                out.append({"system": system, "cell": cell, "mode": "md", "batch": 1, "impl": impl, "triplet_cutoff": 4.0})
                for batch in (1, 32):
                    if cell > 1000 or (batch == 32 and cell > 256):
                        continue  # training: up to 1,000-atom cells, and 32 x 256 (the 32 x 250)
                    out.append({"system": system, "cell": cell, "mode": "train", "batch": batch, "impl": impl,
                                "triplet_cutoff": 4.0})
    # The full triplet cutoff (5 Å): what fairchem's GemNet-T computes, ~3x (Si) to 13x (Al) the triplets.
    for system in systems:
        if cells is not None:
            break
        for impl in ("bounded", "naive"):
            out.append({"system": system, "cell": 64, "mode": "train", "batch": 1, "impl": impl, "triplet_cutoff": 5.0})
            out.append({"system": system, "cell": 256 if system == "Al fcc" else 216, "mode": "md", "batch": 1,
                        "impl": impl, "triplet_cutoff": 5.0})
    return out


def row(r: dict, limit_gb: float) -> str:
    head = (f"| {r['system']} | {r['cell']:,} | {r['mode']} | {r['batch']} | {r['triplet_cutoff']:.0f} Å "
            f"| {r['impl']} |")
    if r.get("stopped"):
        return head + f" | | > {limit_gb:.0f} GB (stopped) | | | |"
    step = r["peak_bytes"] - r["before_bytes"]
    return head + (f" {r['triplets'] / r['atoms']:,.0f} | {r['peak_bytes'] / 2**30:.2f} GB | {step / 2**30:.2f} GB "
                   f"| {step / r['atoms'] / 2**20:.2f} | {r['seconds']:.2f} |")


HEADER = ("| system | atoms per cell | step | batch | triplet cutoff | triplet sums | triplets per atom | peak RSS "
          "| step memory | step MB per atom | seconds |\n"
          "| --- | ---: | --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the two smallest cells of each system only")
    p.add_argument("--limit-gb", type=float, default=14.0, help="stop a case whose RSS passes this")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument("--cells", type=int, nargs="+", default=None,
                   help="only these atoms-per-cell sizes (and no full-cutoff rows)")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/gemnet.md alone")
    args = p.parse_args()
    print(HEADER, flush=True)
    rows = []
    for case in cases(args.quick, args.systems, args.cells):
        rows.append(measure(case, args.limit_gb))
        print(row(rows[-1], args.limit_gb), flush=True)
    table = "\n".join([HEADER] + [row(r, args.limit_gb) for r in rows])
    if not args.no_write:
        begin, end = "<!-- memory:start -->", "<!-- memory:end -->"
        body = (f"{begin}\n## Memory and time per step\n\nGemNet-T at the paper's sizes (atom/edge 128, triplet 64, "
                "4 blocks, cutoff 5 Å), float32, one thread, random weights, rattled cells. A training step is "
                "energies and forces of a batch, a loss on both and its weight gradient (the double backward); an "
                "MD step one energy + forces call of the scripted model. \"bounded\": the chunked triplet sums of "
                "`training/models/triplets.py` (64 MB chunks), training steps in passes of at most 256 atoms "
                "(`train.max_atoms_per_pass`, `training/train/passes.py`) and the exported model's block-by-block "
                "derivatives (`training/models/rematerialized.py`); \"naive\": the same model through plain "
                "autograd, one triplet chunk, one pass, every block's graph at once. Each row is a fresh process; peak RSS is "
                f"the step's (VmHWM reset just before it), step memory that less the RSS before the step. Cases stopped at {args.limit_gb:.0f} GB are marked.\n\n"
                f"{table}\n\nReproduce: `python benchmarks/gemnet_memory.py "
                f"{shlex.join(a for a in sys.argv[1:] if a != '--no-write')}`.\n{end}")
        write_section(DOC, body, begin, end, "# GemNet-T")
    print(f"written to {DOC}" if not args.no_write else "")


if __name__ == "__main__":
    main()
