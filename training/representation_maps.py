"""t-SNE maps of configuration representations (the paper's Figures 6-8).

A configuration's representation is the mean of its per-atom features (the output of
``potential.representation``, before any head): mean rather than sum pooling so that the
map shows structure, not the number of atoms (si-pbe has 1 to 96 atoms per
configuration). Each map is coloured by DFT energy per atom; next to the picture we give
one number, the mean |E - mean E of its 10 nearest map neighbours| (eV/atom): lower means
configurations of similar energy lie together.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from eipnn_calc.errors import EIPNNError

from .config import load_config
from .data.batching import KIND_DFT, BatchLoader, Rows
from .models.layers import scatter_sum
from .models.potential import Potential
from .train.session import DTYPES, model_spec, prepare_data, seeded_potential

NEIGHBOURS = 10


class MapsError(EIPNNError, ValueError):
    """A run folder lacks what the maps need."""


@dataclass
class Panel:
    title: str
    coordinates: np.ndarray  # [R, 2] t-SNE
    neighbour_mae_ev_per_atom: float


def pooled_features(potential: Potential, loader: BatchLoader, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """[R, F] mean per-atom representation of every row of ``loader``, in order."""
    potential = potential.to(dtype=dtype).eval()
    parts = []
    with torch.no_grad():
        for batch in tqdm(loader.epoch(0), total=len(loader), desc="representations", leave=False):
            batch = batch.to("cpu", dtype)
            edge_index, vectors, lengths = potential.edge_geometry(batch.positions, batch.edge_index, batch.edge_shift)
            features = potential.representation(batch.species, edge_index, vectors, lengths)  # [N, F]
            summed = scatter_sum(features, batch.batch, batch.num_rows)  # [B, F]
            parts.append(summed / batch.num_atoms.unsqueeze(1).to(dtype))
    return torch.cat(parts).double().numpy()


def tsne(features: np.ndarray, seed: int = 0, perplexity: float = 30.0, threads: int = 1) -> np.ndarray:
    """[R, 2] t-SNE of standardised features (perplexity capped for small R).

    ``threads`` bounds scikit-learn's OpenMP threads: on a loaded machine its spinning
    threads made a 30-point map take 47 s instead of 0.8 s with one thread.
    """
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if len(features) < 5:
        raise MapsError(f"a t-SNE map needs at least 5 configurations, got {len(features)}")
    scaled = StandardScaler().fit_transform(features)
    perplexity = min(perplexity, (len(features) - 1) / 3)
    with threadpool_limits(limits=threads):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(scaled)


def neighbour_mae(coordinates: np.ndarray, values: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Mean |value - mean value of its k nearest neighbours in ``coordinates``|."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(values) - 1)
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(coordinates).kneighbors(coordinates)
    return float(np.mean(np.abs(values - values[index[:, 1:]].mean(axis=1))))


def draw(panels: list[Panel], energy_per_atom: np.ndarray, path: Path, title: str) -> None:
    """Panels side by side, one shared colour scale (DFT eV/atom), written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.0, 4.0),
                                 squeeze=False, layout="constrained")
    low, high = np.percentile(energy_per_atom, [1, 99])  # a few very high energies would wash out the scale
    for axis, panel in zip(axes[0], panels):
        points = axis.scatter(panel.coordinates[:, 0], panel.coordinates[:, 1], c=energy_per_atom,
                              s=6, cmap="viridis", vmin=low, vmax=high, linewidths=0)
        axis.set_title(f"{panel.title}\nneighbour MAE {panel.neighbour_mae_ev_per_atom:.3f} eV/atom", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(points, ax=list(axes[0]), label="DFT energy (eV/atom)", shrink=0.85)
    figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _run_models(run_dir: Path, config, spec, num_outputs: int, state: dict) -> list[tuple[str, Potential]]:
    """(title, potential) for the random init, the pretrained model and, when the run has
    one, the fine-tuned model."""
    random_init = seeded_potential(spec, config.seed, num_outputs)  # what pretraining started from
    pretrained = seeded_potential(spec, config.seed, num_outputs)
    pretrained.load_state_dict(state)
    models = [("random init", random_init), ("after MP pretraining", pretrained)]
    best = run_dir / "checkpoints" / "best.pt"
    if best.exists():
        finetuned = seeded_potential(spec, config.seed, 1)
        finetuned.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["model"])
        models.append(("after fine-tuning", finetuned))
    return models


def run_maps(
    run_dir: str | Path,
    output: str | Path | None = None,
    splits: tuple[str, ...] = ("train", "val", "test"),
    max_configurations: int | None = None,
    seed: int = 0,
    perplexity: float = 30.0,
    threads: int = 1,
) -> dict[str, Any]:
    """Maps of an ``mp``/``mp+la`` run folder's configurations; returns a summary."""
    run_dir = Path(run_dir)
    results_path = run_dir / "results.json"
    try:
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MapsError(f"'{results_path}' is not valid JSON ({err}): the run did not finish writing it") from None
    if "pretrained_dir" not in results:
        raise MapsError(
            f"'{run_dir}' is not a finished mp or mp+la run (no pretrained_dir in "
            "results.json): train one with strategy: mp first"
        )
    pretrained = Path(results["pretrained_dir"]) / "pretrained.pt"
    if not pretrained.exists():
        raise MapsError(f"the pretraining of '{run_dir}' is gone ({pretrained} does not exist): run "
                        "eipnn-train on its config again, which pretrains anew")
    payload = torch.load(pretrained, map_location="cpu", weights_only=False)
    config = load_config(run_dir / "config.yaml", ["progress=false"])
    data = prepare_data(config)
    if any(name not in data.split.splits or name == "unlabeled" for name in splits):
        raise MapsError(f"splits must be among train, val, test (the DFT-labelled ones), got {list(splits)}")
    indices = np.concatenate([data.split.splits[name] for name in splits])
    if max_configurations is not None and max_configurations < len(indices):
        indices = np.sort(np.random.default_rng(seed).permutation(indices)[:max_configurations])
    energies = data.split.dataset.energies_ev(indices)
    per_atom = energies / data.split.dataset.num_atoms[indices]
    rows = Rows(indices, energies, np.ones(len(indices)), np.full(len(indices), KIND_DFT))
    loader = data.loader(rows, config.train.eval_batch_size)
    spec = model_spec(config, data.species)
    panels = []
    for title, potential in _run_models(run_dir, config, spec, len(payload["eip_names"]), payload["state"]):
        features = pooled_features(potential, loader, DTYPES[config.train.dtype])
        coordinates = tsne(features, seed, perplexity, threads)
        panels.append(Panel(title, coordinates, neighbour_mae(coordinates, per_atom)))
    output = Path(output) if output is not None else run_dir / "representation_tsne.png"
    draw(panels, per_atom, output,
         f"{config.name}: {spec.kind}, {len(indices)} configurations ({'+'.join(splits)})")
    return {"output": str(output), "num_configurations": int(len(indices)),
            "neighbour_mae_ev_per_atom": {p.title: p.neighbour_mae_ev_per_atom for p in panels},
            "energy_per_atom_std_ev": float(np.std(per_atom))}
