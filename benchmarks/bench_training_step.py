"""SchNet training steps on si-pbe: filters per edge, once per distinct edge length, and
the latter through ``torch.compile`` (``train.compile``).

A training step on energies needs no derivative by the geometry, and SchNet's filter
network depends on the edge length alone, so ``SchNet`` computes it once per distinct length
there (every edge i->j has a twin j->i, and near-crystalline cells repeat lengths). This
times both paths on the same batches: Adam steps (forward, backward, update) of the paper's
SchNet (128 features, 5 interactions, 128 RBF, 5 Å) on si-pbe ``train`` batches of 32, float32.
The per-edge path is forced through the ``layer_edges`` argument with every edge in every
layer, which computes the same function. Both paths alternate, so machine load hits both.

    .venv/bin/python benchmarks/bench_training_step.py [--batches 16] [--repeats 3] [--threads 1]

Writes the ``bench-training-step`` section of docs/training.md (``--doc`` to change).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from eipnn_training.config import load_config
from eipnn_training.data.batching import Batch
from eipnn_training.models.layers import scatter_sum
from eipnn_training.models.potential import Potential
from eipnn_training.train.loop import FitSettings, compiled_atomic_energies
from eipnn_training.train.metrics import batch_energies
from eipnn_training.train.session import model_spec, prepare_data, seeded_potential
from markdown_section import write_section  # benchmarks/, beside this script

BEGIN, END = "<!-- bench-training-step:begin -->", "<!-- bench-training-step:end -->"


Energies = Callable[[Batch], torch.Tensor]


def per_edge(potential: Potential) -> Energies:
    """The per-edge path, forced by naming every edge in every layer (the same function)."""
    def energies(batch: Batch) -> torch.Tensor:
        edge_index, vectors, lengths = potential.edge_geometry(batch.positions, batch.edge_index, batch.edge_shift)
        every_edge = [lengths.shape[0]] * potential.representation.num_layers
        atomic = potential.atomic_energies_from_edges(batch.species, edge_index, vectors, lengths, every_edge)
        return scatter_sum(atomic, batch.batch, batch.num_rows)
    return energies


def adam_steps(potential: Potential, batches: list[Batch], energies: Energies) -> float:
    """Seconds for one Adam step on each batch."""
    optimizer = torch.optim.Adam(potential.parameters(), lr=1e-4)
    started = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad()
        ((energies(batch)[:, 0] - batch.targets[:, 0]) ** 2).mean().backward()
        optimizer.step()
    return time.perf_counter() - started


def edge_counts(potential: Potential, batches: list[Batch]) -> tuple[int, int]:
    """(edges, distinct edge lengths) summed over the batches."""
    edges = distinct = 0
    for batch in batches:
        _, _, lengths = potential.edge_geometry(batch.positions, batch.edge_index, batch.edge_shift)
        edges += lengths.shape[0]
        distinct += torch.unique(lengths).shape[0]
    return edges, distinct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--doc", default="docs/training.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config("examples/si_pbe_schnet_baseline.yaml", ["progress=false"])
    data = prepare_data(config)
    loader = data.loader(data.dft_rows("train"), 32, shuffle=True, seed=1)
    batches = [b.to("cpu", torch.float32) for _, b in zip(range(args.batches), loader.epoch(0))]
    potential = seeded_potential(model_spec(config, data.species), 1)
    edges, distinct = edge_counts(potential, batches)
    compiled = compiled_atomic_energies(potential, FitSettings(compile=True))
    paths = {  # label -> batch energies
        "filters per edge (before)": per_edge(potential),
        "filters per distinct length (training default)": lambda batch: batch_energies(potential, batch),
        "the same through torch.compile (`train.compile`)": lambda batch: batch_energies(potential, batch, compiled),
    }
    started = time.perf_counter()
    for energies in paths.values():  # warm-up; compiles every batch shape once
        adam_steps(potential, batches, energies)
    warm_up = time.perf_counter() - started
    times: dict[str, list[float]] = {label: [] for label in paths}
    for _ in range(args.repeats):
        for label, energies in paths.items():
            times[label].append(adam_steps(potential, batches, energies) / len(batches) * 1e3)
    median = {label: statistics.median(runs) for label, runs in times.items()}
    first = median[next(iter(paths))]
    load = os.getloadavg()[0]
    lines = [
        BEGIN, "### Training step: filters per edge, per distinct length, compiled", "",
        "Generated by `benchmarks/bench_training_step.py`: Adam steps of the paper's SchNet on "
        f"{len(batches)} si-pbe train batches of 32 ({edges:,} edges, {distinct:,} distinct lengths, "
        f"{edges / distinct:.1f} edges per length), float32, {args.threads} torch thread(s), "
        f"median of {args.repeats}; load average {load:.1f} while it ran (the paths alternate). "
        f"The warm-up pass over every path, with the one-off compile, took {warm_up:.0f} s.", "",
        "| path | ms per step | runs (ms) | speed-up |", "| --- | ---: | --- | ---: |",
        *[f"| {label} | {median[label]:.0f} | {', '.join(f'{t:.0f}' for t in times[label])} "
          f"| {first / median[label]:.2f}× |" for label in paths],
        END,
    ]
    section = "\n".join(lines)
    write_section(Path(args.doc), section, BEGIN, END, "# Training")
    print(section)


if __name__ == "__main__":
    main()
