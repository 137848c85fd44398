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
        [--part filters|forces|all]

``--part ensemble`` times K members on the same batches three ways, energy-only and with
forces (``train.force_weight`` 10), for the paper's SchNet and SOAPNet: K separate runs
(each collates its batches and steps: ``fit``), the members one after another on each batch
collated once (``training.train.ensemble``, what the alpha search and committees use), and
the members' parameters stacked and run as one ``torch.func.vmap`` (``stacked_members.py``,
forward and backward only, no optimiser: a lower bound on its cost). Writes the
``bench-ensemble-training`` section.

``--part la-forces`` times LA's training with DFT forces (``train.force_weight`` 10,
``la.force_weight`` 0): the DFT train rows with their forces and every si-pbe pool row as an
EIP row (whose forces LA's term gives no weight), mixed in batches of 32 as LA mixes them, the paper's SchNet alone and 8
SOAPNets stacked (the alpha search) on a shared descriptor cache. The forces of every row,
as before, against the forces of the rows a force term uses (the DFT rows). Writes the
``bench-la-force-training`` section.

Writes the ``bench-training-step`` section of docs/training.md (``--doc`` to change).

``--part forces`` times seconds per epoch of energy-only against energy + force training
(the double backward, ``train.force_weight`` > 0) for the paper's SchNet and SOAPNet on the
same si-pbe train batches, and MP pretraining with EIP forces (``pretrain.force_weight``):
8 heads need 8 force gradients, one autograd call per head or one vmapped call (SOAPNet
with its descriptor cached: through the positions, a pass over J per head, or the 8
gradients by the descriptor and one product with J for all, the training default). The force
labels of the MP rows are random (timing only: the values do not change the work). Seconds
per epoch = median ms per step x steps per epoch (664 train configurations = 21 steps of 32;
MP: 4,427 pool configurations = 139 steps), validation not included. Writes the
``bench-force-training`` section.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch

from eipnn_calc.malloc import tune_malloc
from eipnn_training.config import DEFAULT_FORCE_WEIGHT, load_config
from eipnn_training.data.batching import KIND_DFT, KIND_EIP, Batch, Rows
from eipnn_training.models.layers import scatter_sum
from eipnn_training.models.potential import Potential
from eipnn_training.train.loop import FitSettings, _step_loss, compiled_atomic_energies, weights
from eipnn_training.strategies.label_augmentation.tukey import AugmentedForceLoss, AugmentedLoss
from eipnn_training.train.losses import ForceMSE
from eipnn_training.train.descriptors import DescriptorCache, cached_energies
from eipnn_training.train.stacked import StackedMembers
from eipnn_training.train.metrics import AtomicEnergies, batch_energies
from eipnn_training.train.session import model_spec, prepare_data, seeded_potential
from eipnn_training.markdown_section import publish_section

BEGIN, END = "<!-- bench-training-step:begin -->", "<!-- bench-training-step:end -->"
ENSEMBLE_BEGIN, ENSEMBLE_END = "<!-- bench-ensemble-training:begin -->", "<!-- bench-ensemble-training:end -->"
FORCES_BEGIN, FORCES_END = "<!-- bench-force-training:begin -->", "<!-- bench-force-training:end -->"
LA_BEGIN, LA_END = "<!-- bench-la-force-training:begin -->", "<!-- bench-la-force-training:end -->"
TRAIN_STEPS, POOL_STEPS = 21, 139  # si-pbe split seed 1: 664 train and 4,427 pool configurations, batches of 32
MP_HEADS = 8


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


def loss_steps(potential: Potential, batches: list[Batch], settings: FitSettings,
               energies: AtomicEnergies | None = None) -> float:
    """Seconds for one Adam step of the training loop's own loss on each batch (with the
    stand-in ``energies``, e.g. cached descriptors)."""
    optimizer = torch.optim.Adam(potential.parameters(), lr=1e-4)
    started = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad()
        _step_loss(potential, batch, settings, energies).backward(inputs=weights(potential))  # as the loop does
        optimizer.step()
    return time.perf_counter() - started


def with_random_eip_forces(batch: Batch, heads: int, seed: int) -> Batch:
    """``batch`` as MP pretraining rows: K EIP energies and [N, K, 3] EIP forces (random)."""
    generator = torch.Generator().manual_seed(seed)
    n = batch.positions.shape[0]
    return Batch(**{**batch.__dict__, "targets": batch.targets.repeat(1, heads),
                    "target_mask": batch.target_mask.repeat(1, heads),
                    "kind": torch.full_like(batch.kind, KIND_EIP),
                    "forces": torch.randn(n, heads, 3, generator=generator, dtype=batch.positions.dtype),
                    "force_mask": torch.ones(n, heads, dtype=torch.bool)})


ForcePath = tuple[Potential, list[Batch], FitSettings, int, AtomicEnergies | None]


def force_paths(model: str, config, data, batches: list[Batch]) -> dict[str, ForcePath]:
    """label -> (potential, batches, loop settings, steps per epoch, energies stand-in) for one
    model kind."""
    spec = model_spec(config, data.species)
    single = seeded_potential(spec, 1)
    forces = FitSettings(force_weight=DEFAULT_FORCE_WEIGHT)
    paths: dict[str, ForcePath] = {
        f"{model}, energies (`force_weight: 0`)": (single, batches, FitSettings(), TRAIN_STEPS, None),
        f"{model}, energies + forces (`force_weight: {DEFAULT_FORCE_WEIGHT:g}`)": (
            single, batches, forces, TRAIN_STEPS, None),
    }
    if model == "SOAPNet":  # the descriptor once per configuration (train/descriptors.py)
        cache = DescriptorCache(jacobians=True, budget=1 << 34)
        started = time.perf_counter()
        for batch in batches:
            cache.of(single, batch)
        print(f"SOAPNet: descriptors and Jacobians of {len(batches)} batches cached in "
              f"{time.perf_counter() - started:.1f} s, {cache.used / 2**20:.0f} MiB", flush=True)
        energies = cached_energies(single, cache)
        paths.update({
            f"{model}, energies, descriptors cached (`train.descriptor_cache_mb`)": (
                single, batches, FitSettings(), TRAIN_STEPS, energies),
            f"{model}, energies + forces, descriptors and Jacobians cached, through the positions": (
                single, batches, forces, TRAIN_STEPS, through_positions(energies)),
            f"{model}, energies + forces, descriptors and Jacobians cached": (
                single, batches, forces, TRAIN_STEPS, energies),
        })
    # MP pretraining, K = 8 heads
    heads = seeded_potential(spec, 1, num_outputs=MP_HEADS)
    pool = [with_random_eip_forces(b, MP_HEADS, k) for k, b in enumerate(batches)]
    mp = FitSettings(force_loss=ForceMSE(DEFAULT_FORCE_WEIGHT, kind=KIND_EIP))
    paths.update({
        f"{model} MP, 8 EIP energies (`pretrain.force_weight: 0`)": (heads, pool, FitSettings(), POOL_STEPS, None),
        f"{model} MP, + 8 EIP forces, one autograd call per head": (heads, pool, mp, POOL_STEPS, None),
    })
    if model == "SchNet":
        paths[f"{model} MP, + 8 EIP forces, one vmapped call"] = (
            heads, pool, FitSettings(force_loss=mp.force_loss, batched_force_gradients=True), POOL_STEPS, None)
    if model == "SOAPNet":
        energies = cached_energies(heads, cache)
        paths.update({
            f"{model} MP, 8 EIP energies, descriptors cached": (heads, pool, FitSettings(), POOL_STEPS, energies),
            f"{model} MP, + 8 EIP forces, cached, through the positions (a pass over J per head)": (
                heads, pool, mp, POOL_STEPS, through_positions(energies)),
            f"{model} MP, + 8 EIP forces, cached, one product with J for all heads": (
                heads, pool, mp, POOL_STEPS, energies),
        })
    return paths


def through_positions(energies: AtomicEnergies) -> AtomicEnergies:
    """The cached energies without their direct force path: forces by autograd through the
    positions and the linearised descriptor, one pass over J per output."""
    return lambda batch: energies(batch)


def paper_models(only: tuple[str, ...] = ("SchNet", "SOAPNet")):
    """(name, config, si-pbe data) of the paper's SchNet and SOAPNet (their baseline examples)."""
    for model, path in (("SchNet", "examples/si_pbe_schnet_baseline.yaml"),
                        ("SOAPNet", "examples/si_pbe_soapnet_baseline.yaml")):
        if model in only:
            config = load_config(path, ["progress=false"])
            yield model, config, prepare_data(config)


def force_benchmark(args) -> None:
    """Seconds per epoch, energy-only against energy + force training (and MP with forces)."""
    rows, load = [], []
    started = time.perf_counter()
    for model, config, data in paper_models():
        loader = data.loader(data.dft_rows("train", with_forces=True), 32, shuffle=True, seed=1)
        batches = [b.to("cpu", torch.float32) for _, b in zip(range(args.batches), loader.epoch(0))]
        paths = force_paths(model, config, data, batches)
        for potential, some, settings, _, energies in paths.values():  # warm-up
            loss_steps(potential, some[:1], settings, energies)
        times: dict[str, list[float]] = {label: [] for label in paths}
        for _ in range(args.repeats):
            for label, (potential, some, settings, _, energies) in paths.items():
                times[label].append(loss_steps(potential, some, settings, energies) / len(some) * 1e3)
            load.append(os.getloadavg()[0])
        energy = {}  # (steps, cached) -> ms of the energy-only step it is compared with
        for label, (_, _, settings, steps, energies) in paths.items():
            ms, key = statistics.median(times[label]), (steps, energies is not None)
            if settings.force_term() is None:
                energy[key] = ms
            rows.append(f"| {label} | {ms:.0f} | {', '.join(f'{t:.0f}' for t in times[label])} | {steps} "
                        f"| {ms * steps / 1e3:.1f} | {ms / energy[key]:.2f}× |")
        print("\n".join(rows), flush=True)
    lines = [
        FORCES_BEGIN, "### Training on forces: seconds per epoch", "",
        "Generated by `benchmarks/bench_training_step.py --part forces`: Adam steps of the training loop's "
        f"loss (`_step_loss`) for the paper's SchNet (128/5/128) and SOAPNet (n_max 8, l_max 6, 5 x 128) on "
        f"{args.batches} si-pbe train batches of 32, float32, {args.threads} torch thread(s), median of "
        f"{args.repeats}; load average {statistics.mean(load):.1f} while it ran (the paths alternate); "
        f"{time.perf_counter() - started:.0f} s in all. MP rows: the model with 8 heads on the same batches "
        "(random EIP force labels). Seconds per epoch = ms per step x steps per epoch, without validation. "
        "'vs energies': against the energy-only row of the same path (cached rows against the cached energy "
        "step); the cache is filled once per run, before these steps.", "",
        "| training | ms per step | runs (ms) | steps per epoch | s per epoch | vs energies |",
        "| --- | ---: | --- | ---: | ---: | ---: |", *rows, FORCES_END,
    ]
    publish_section(Path(args.doc), "\n".join(lines), FORCES_BEGIN, FORCES_END, "# Training")


def _collated(loader, count: int, dtype: torch.dtype) -> Callable[[], list[Batch]]:
    """A function that collates the first ``count`` batches of ``loader`` afresh."""
    return lambda: [b.to("cpu", dtype) for _, b in zip(range(count), loader.epoch(0))]


def separate_runs(members: list[Potential], batches: Callable[[], list[Batch]], settings: FitSettings) -> float:
    """Seconds for K runs of their own: each collates the batches and steps on them."""
    started = time.perf_counter()
    for potential in members:
        loss_steps(potential, batches(), settings)
    return time.perf_counter() - started


def together(members: list[Potential], batches: Callable[[], list[Batch]], settings: FitSettings) -> float:
    """Seconds for the ensemble's pass: batches collated once, every member steps on each."""
    optimizers = [torch.optim.Adam(p.parameters(), lr=1e-4) for p in members]
    started = time.perf_counter()
    for batch in batches():
        for potential, optimizer in zip(members, optimizers):
            optimizer.zero_grad()
            _step_loss(potential, batch, settings).backward(inputs=weights(potential))
            optimizer.step()
    return time.perf_counter() - started


def _filled_cache(potential: Potential, batches: list[Batch], settings: FitSettings) -> DescriptorCache:
    """A descriptor cache holding ``batches`` (filled once per run, before its epochs)."""
    cache = DescriptorCache(jacobians=settings.force_term() is not None, budget=1 << 34)
    for batch in batches:
        cache.of(potential, batch)
    return cache


def separate_cached(members: list[Potential], batches: Callable[[], list[Batch]], settings: FitSettings) -> float:
    """Seconds for K runs of their own, each on its own (filled) descriptor cache."""
    some = batches()
    caches = [_filled_cache(p, some, settings) for p in members]
    started = time.perf_counter()
    for potential, cache in zip(members, caches):
        loss_steps(potential, batches(), settings, cached_energies(potential, cache))
    return time.perf_counter() - started


def together_cached(members: list[Potential], batches: Callable[[], list[Batch]], settings: FitSettings) -> float:
    """Seconds for the ensemble's pass on one shared (filled) descriptor cache."""
    cache = _filled_cache(members[0], batches(), settings)
    optimizers = [torch.optim.Adam(p.parameters(), lr=1e-4) for p in members]
    energies = [cached_energies(p, cache) for p in members]
    started = time.perf_counter()
    for batch in batches():
        for potential, optimizer, stand_in in zip(members, optimizers, energies):
            optimizer.zero_grad()
            _step_loss(potential, batch, settings, stand_in).backward(inputs=weights(potential))
            optimizer.step()
    return time.perf_counter() - started


def stacked_cached(members: list[Potential], batches: Callable[[], list[Batch]], settings: FitSettings) -> float:
    """Seconds for the members stacked as one (``training.train.stacked``, what the alpha search
    and committees of SOAPNet use), on one shared (filled) descriptor cache, Adam included."""
    cache = _filled_cache(members[0], batches(), settings)
    state = []
    for potential in members:
        optimizer = torch.optim.Adam(potential.parameters(), lr=1e-4)
        state.append(SimpleNamespace(potential=potential, settings=settings, optimizer=optimizer,
                                     scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)))
    stack = StackedMembers(state, cache)
    stack.from_members()
    started = time.perf_counter()
    for batch in batches():
        stack.step(batch)
    elapsed = time.perf_counter() - started
    stack.to_members()
    return elapsed


def stacked(members: list[Potential], batches: Callable[[], list[Batch]], settings: FitSettings) -> float:
    """Seconds for the vmapped members' forward and backward on the collated batches."""
    from stacked_members import StackedPotentials, configuration_energies, member_forces

    stack = StackedPotentials(members)
    started = time.perf_counter()
    for batch in batches():
        for p in stack.params.values():
            p.grad = None
        if settings.force_weight > 0:
            atomic, positions = stack.atomic_energies_and_positions(batch)
            energies = configuration_energies(atomic, batch)
            forces = member_forces(energies, positions)
            loss = (((energies[:, :, 0] - batch.targets[:, 0]) ** 2).mean(1).sum()
                    + settings.force_weight * ((forces - batch.forces) ** 2).mean((1, 2, 3)).sum())
        else:
            energies = configuration_energies(stack.atomic_energies(batch), batch)
            loss = ((energies[:, :, 0] - batch.targets[:, 0]) ** 2).mean(1).sum()
        loss.backward()
    return time.perf_counter() - started


def kept_rows(doc: Path, measured: list[str]) -> list[str]:
    """The ensemble table's rows of the models not measured now (``--models``), from the
    section as it stands, so that timing one model does not drop the other's rows; each says
    it is from an earlier run (ratios compare rows of one model, so they stay meaningful)."""
    text = doc.read_text() if doc.exists() else ""
    start, stop = text.find(ENSEMBLE_BEGIN), text.find(ENSEMBLE_END)
    if start < 0 or stop < 0:
        return []
    kept = []
    for line in text[start:stop].splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        model = cells[1].removesuffix(" (earlier run)") if len(cells) > 2 else ""
        if model in ("SchNet", "SOAPNet") and model not in measured:
            kept.append(line if cells[1] != model else line.replace(f"| {model} |", f"| {model} (earlier run) |", 1))
    return kept


def ensemble_benchmark(args) -> None:
    """K members: separate runs, one pass member by member, stacked with vmap."""
    rows, load = [], []
    for model, config, data in paper_models(tuple(args.models)):
        ways = {"K separate runs": separate_runs, "one pass, member by member (eipnn)": together,
                "one pass, stacked with vmap": stacked}
        if model == "SOAPNet":  # descriptors cached (train/descriptors.py): once per run, or shared
            ways.update({"K separate runs, each with its descriptor cache": separate_cached,
                         "one pass, member by member, one shared descriptor cache": together_cached,
                         "one pass, stacked members, one shared descriptor cache (eipnn)": stacked_cached})
        loader = data.loader(data.dft_rows("train", with_forces=True), 32, shuffle=True, seed=1)
        batches = _collated(loader, args.batches, torch.float32)
        spec = model_spec(config, data.species)
        for forces in (False, True):
            settings = FitSettings(force_weight=DEFAULT_FORCE_WEIGHT if forces else 0.0)
            for k in args.members:
                members = [seeded_potential(spec, seed) for seed in range(k)]
                for potential in members:  # SOAPNet standardises on its first training batch
                    loss_steps(potential, batches()[:1], settings)
                times: dict[str, list[float]] = {label: [] for label in ways}
                for _ in range(args.repeats):
                    for label, way in ways.items():
                        try:
                            times[label].append(way(members, batches, settings) / args.batches * TRAIN_STEPS)
                        except RuntimeError as err:  # vmap refuses data-dependent control flow
                            print(f"{model} {label}: {str(err).splitlines()[0][:80]}", flush=True)
                    load.append(os.getloadavg()[0])
                alone = statistics.median(times["K separate runs"])
                for label in ways:
                    loss = "energies + forces" if forces else "energies"
                    if not times[label]:
                        rows.append(f"| {model} | {loss} | {k} | {label} | fails (vmap: data-dependent control flow) | | |")
                        continue
                    s = statistics.median(times[label])
                    # One member trained alone the same way: with its cache where this way has one.
                    reference = "K separate runs, each with its descriptor cache" if "cache" in label else "K separate runs"
                    one = statistics.median(times[reference]) / k
                    rows.append(f"| {model} | {loss} | {k} | {label} | {s:.1f} | {s / alone:.2f} | {s / one:.2f} |")
                print("\n".join(rows[-len(ways):]), flush=True)
    lines = [
        ENSEMBLE_BEGIN, f"### Ensembles: K members on the same batches ({args.threads} thread(s))", "",
        "Generated by `benchmarks/bench_training_step.py --part ensemble`: the paper's SchNet (128/5/128) and "
        f"SOAPNet on {args.batches} si-pbe train batches of 32, float32, {args.threads} torch thread(s), median of "
        f"{args.repeats}; load average {statistics.mean(load):.1f} while it ran. Seconds per epoch of all K members (21 steps; collation included, validation not). The vmap "
        "rows have no optimiser step (a lower bound). Cached rows: the descriptor cache is filled before the "
        "timed steps (once per run, amortised over its epochs). 'vs one member': against one member trained "
        "alone the same way (K separate runs / K; with its own cache for the cached rows).", "",
        "| model | loss | K | way | s per epoch | vs K separate runs | vs one member |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: |",
        *rows, *kept_rows(Path(args.doc), args.models), ENSEMBLE_END,
    ]
    publish_section(Path(args.doc), "\n".join(lines), ENSEMBLE_BEGIN, ENSEMBLE_END, "# Training")


class EveryRow:
    """A force term that does not say which rows it uses: the step computes every row's
    forces (eipnn before ``rows_for_forces``)."""

    def __init__(self, term: Callable) -> None:
        self.term = term

    def __call__(self, forces: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.term(forces, batch)


def la_rows(data) -> Rows:
    """LA's training rows: the DFT train rows with forces, then every pool row as an EIP row
    (LA selects nearly all of them). Zero targets, and zero EIP forces that LA's force term
    (``la.force_weight`` 0) gives no weight: the values do not change the work, and with
    labels the descriptor cache holds the EIP rows' Jacobians, so that the 'before' path
    can compute their forces as it did."""
    pool = data.split.splits["unlabeled"]
    forces = [np.zeros((int(n), 3)) for n in data.split.dataset.num_atoms[pool]]
    eip = Rows(pool, np.zeros((len(pool), 1)), np.ones(len(pool)), np.full(len(pool), KIND_EIP), forces)
    return data.dft_rows("train", with_forces=True).concat(eip)


def la_force_benchmark(args) -> None:
    """Seconds per epoch of LA with DFT forces: every row's forces against the force rows' alone."""
    rows, load = [], []
    started = time.perf_counter()
    for model, config, data in paper_models():
        mixed = la_rows(data)
        dft_share = float(np.mean(mixed.kind == KIND_DFT))
        steps = -(-len(mixed) // 32)
        batches = _collated(data.loader(mixed, 32, shuffle=True, seed=1), args.batches, torch.float32)
        balance = len(data.split.splits["train"]) / (len(mixed) - len(data.split.splits["train"]))
        term = AugmentedForceLoss(DEFAULT_FORCE_WEIGHT, 1.0, balance, 0.0)
        ways = {"forces of every row (before)": la_settings(EveryRow(term), balance),
                "forces of the rows with a force term (eipnn)": la_settings(term, balance)}
        spec = model_spec(config, data.species)
        members = [seeded_potential(spec, seed) for seed in range(1 if model == "SchNet" else 8)]
        for potential in members:  # SOAPNet standardises on its first training batch
            loss_steps(potential, batches()[:1], ways["forces of every row (before)"])
        run = (lambda settings: loss_steps(members[0], batches(), settings)) if model == "SchNet" else (
            lambda settings: stacked_cached(members, batches, settings))
        times: dict[str, list[float]] = {label: [] for label in ways}
        for _ in range(args.repeats):
            for label, settings in ways.items():
                times[label].append(run(settings) / args.batches * steps)
            load.append(os.getloadavg()[0])
        before = statistics.median(times["forces of every row (before)"])
        how = "alone" if model == "SchNet" else "8 stacked (alpha search), descriptors cached"
        for label in ways:
            s = statistics.median(times[label])
            rows.append(f"| {model}, {how} | {label} | {dft_share:.1%} | {steps} | {s:.1f} "
                        f"| {', '.join(f'{t:.1f}' for t in times[label])} | {s / before:.2f} |")
        print("\n".join(rows[-2:]), flush=True)
    lines = [
        LA_BEGIN, "### LA with DFT forces: seconds per epoch", "",
        "Generated by `benchmarks/bench_training_step.py --part la-forces`: LA's training step with DFT forces "
        "(`train.force_weight` 10, `la.force_weight` 0) on batches of 32 drawn from the si-pbe DFT train rows "
        "with forces and every pool row as an EIP row (what LA trains on), the paper's SchNet alone and 8 "
        f"SOAPNets stacked as in the alpha search, float32, {args.threads} torch thread(s), {args.batches} "
        f"batches, median of {args.repeats}; load average {statistics.mean(load):.1f}; "
        f"{time.perf_counter() - started:.0f} s in all. Only the DFT rows have a force term, so a step now "
        "computes their forces alone (`rows_for_forces`); the EIP rows' energies come from a forward pass. "
        "On al-pbe the DFT share is ~1.3 %, so the gain there is larger.", "",
        "| model | forces of | DFT share of rows | steps per epoch | s per epoch | runs (s) | vs before |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: |", *rows, LA_END,
    ]
    publish_section(Path(args.doc), "\n".join(lines), LA_BEGIN, LA_END, "# Training")


def la_settings(force_loss: Callable, balance: float) -> FitSettings:
    """LA's loop settings at alpha 1 with ``force_loss`` as the force term."""
    return FitSettings(loss=AugmentedLoss(1.0, balance), force_loss=force_loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--part", choices=("filters", "forces", "ensemble", "la-forces", "all"), default="all")
    parser.add_argument("--members", type=int, nargs="+", default=[5, 8], help="ensemble sizes (--part ensemble)")
    parser.add_argument("--models", nargs="+", default=["SchNet", "SOAPNet"], help="models (--part ensemble)")
    parser.add_argument("--doc", default="docs/training.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as in a training run (eipnn-train)
    tune_malloc()  # likewise
    if args.part in ("ensemble", "all"):
        ensemble_benchmark(args)
    if args.part == "ensemble":
        return
    if args.part in ("la-forces", "all"):
        la_force_benchmark(args)
    if args.part == "la-forces":
        return
    if args.part in ("forces", "all"):
        force_benchmark(args)
    if args.part == "forces":
        return
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
    publish_section(Path(args.doc), "\n".join(lines), BEGIN, END, "# Training")


if __name__ == "__main__":
    main()
