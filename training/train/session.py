"""What every strategy sets up before it trains: the split dataset, its graphs, the model
spec, loaders, and a seeded fresh model with fitted reference energies."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from eipnn_calc.model_file import DTYPES  # noqa: F401  (re-exported: the strategies read it here)

from ..config import DEFAULT_FORCE_WEIGHT, ConfigError, RunConfig
from ..data.batching import KIND_DFT, BatchLoader, Rows
from ..data.graphs import GraphSet, cached_graphs
from ..data.sources import SplitDataset, load_split_dataset
from ..distributed import main_first, world
from ..models.build import REPRESENTATIONS, ModelSpec, build_potential, build_representation
from ..models.potential import Potential
from .losses import LOSSES
from .reference import fit_reference_energies, set_reference, species_counts
from .schedules import SCHEDULES



def check_choices(config: RunConfig, strategies: dict) -> None:
    """Every name the config picks from a registry exists (fails before any data is read)."""
    for key, value, table in (
        ("strategy", config.strategy, strategies),
        ("model.kind", config.model.kind, REPRESENTATIONS),
        ("train.loss", config.train.loss, LOSSES),
        ("train.schedule", config.train.schedule, SCHEDULES),
    ):
        if value not in table:
            raise ConfigError(f"config key '{key}' is '{value}'; known: {', '.join(sorted(table))}")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config key 'device' is '{config.device}' but torch sees no CUDA device")
    # Build the representation once (milliseconds) so that a bad hyperparameter fails here,
    # named, and not after the data is read.
    model = config.model
    try:
        build_representation(ModelSpec(model.kind, list(model.species or ["Si"]), model.cutoff_angstrom,
                                       dict(model.hyperparameters)))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"config key 'model.hyperparameters' of '{model.kind}': {err}") from None


@dataclass
class TrainingData:
    split: SplitDataset
    graphs: GraphSet
    species: list[str]
    species_index: np.ndarray  # [A] index into species, per atom of the graph set

    def dft_rows(self, name: str, with_forces: bool = False) -> Rows:
        """Rows of split ``name`` labelled with their DFT energies (raises for sealed rows)."""
        indices = self.split.splits[name]
        energies = self.split.dataset.energies_ev(indices)
        forces = None
        if with_forces:
            forces = [self.split.dataset.forces_ev_per_angstrom(int(i)) for i in indices]
            if any(f is None for f in forces):
                raise ConfigError(
                    f"train.force_weight > 0 but some '{name}' configurations have no DFT forces"
                )
        return Rows(indices, energies, np.ones(len(indices)), np.full(len(indices), KIND_DFT), forces)

    def loader(self, rows: Rows, batch_size: int, shuffle: bool = False, seed: int = 0,
               shard: bool = True) -> BatchLoader:
        """Under torchrun each rank takes its share of every batch (``shard``); the metrics
        gather them back (``train.metrics``)."""
        return BatchLoader(self.graphs, self.species_index, rows, batch_size, shuffle, seed, shard)


def prepare_data(config: RunConfig) -> TrainingData:
    """Load, split, seal, check species and build (or load cached) graphs."""
    data = config.data
    split = load_split_dataset(
        data.path, data.si_pbe_dir, data.split_seed,
        {"train": data.max_train, "val": data.max_val, "test": data.max_test},
        data.extra_pool,
    )
    species = list(config.model.species) if config.model.species else split.dataset.symbols()
    # Rank 0 builds (or finds) the cached graphs first; the other ranks then read them.
    graphs = main_first(lambda: cached_graphs(split.dataset, config.model.cutoff_angstrom,
                                              progress=config.progress and world().main))
    return TrainingData(split, graphs, species, graphs.species_index(species))


def resolve_force_weight(config: RunConfig, data: TrainingData) -> float:
    """``train.force_weight`` null -> ``DEFAULT_FORCE_WEIGHT`` when every train, val and
    test configuration has DFT forces (si-pbe does), else 0 (energies only); written back
    into ``config`` so the run folder's config.yaml says what was trained."""
    if config.train.force_weight is None:
        dataset, splits = data.split.dataset, data.split.splits
        has_forces = all(dataset.has_forces(splits[name]) for name in ("train", "val", "test"))
        config.train.force_weight = DEFAULT_FORCE_WEIGHT if has_forces else 0.0
    return config.train.force_weight


def model_spec(config: RunConfig, species: list[str]) -> ModelSpec:
    m = config.model
    return ModelSpec(m.kind, list(species), m.cutoff_angstrom, dict(m.hyperparameters), m.head_hidden)


def seeded_potential(spec: ModelSpec, seed: int, num_outputs: int = 1) -> Potential:
    """A fresh potential whose initial weights depend on ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_potential(spec, num_outputs)


def fit_reference(potential: Potential, data: TrainingData, rows: Rows, output: int = 0) -> tuple[np.ndarray, float]:
    """Least-squares reference energies on ``rows`` (train) into ``potential``."""
    counts = species_counts(data.graphs, data.species_index, rows.indices, len(data.species))
    reference, scale = fit_reference_energies(counts, rows.targets[:, output])
    set_reference(potential, reference, scale, output)
    return reference, scale
