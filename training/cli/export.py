"""``eipnn-export RUN_DIR [-o model.pt] [--dtype float64] [--checkpoint best|last]``:
(re-)export a run's checkpoint to a TorchScript model file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..config import load_config
from ..export import export_model
from ..runs import RunFolder, RunFolderError
from ..train.checkpoint import load_state
from ..train.session import model_spec, seeded_potential


def export_run(run_dir: str | Path, output: str | Path | None = None, dtype: str = "float64",
               checkpoint: str = "best") -> Path:
    """Rebuild the run's model from its config and write checkpoint ``checkpoint``."""
    run = RunFolder(run_dir)
    if not run.config.exists():
        raise RunFolderError(f"'{run.path}' is not a run folder (no config.yaml)")
    config = load_config(run.config)
    state = load_state(run.checkpoints / f"{checkpoint}.pt")["model"]
    if not config.model.species:
        raise RunFolderError(f"'{run.config}' has no model.species (it is filled in when a run starts)")
    spec = model_spec(config, config.model.species)
    potential = seeded_potential(spec, config.seed)
    potential.load_state_dict({k: v.to(torch.float64) if v.is_floating_point() else v for k, v in state.items()})
    path = Path(output) if output else run.model
    export_model(potential, spec, path, {"strategy": config.strategy, "seed": config.seed,
                                          "checkpoint": checkpoint}, dtype=dtype)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="eipnn-export", description=__doc__)
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", default=None, help="model file (default RUN_DIR/model.pt)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    args = p.parse_args(argv)
    print(export_run(args.run_dir, args.output, args.dtype, args.checkpoint))
    return 0


if __name__ == "__main__":
    sys.exit(main())
