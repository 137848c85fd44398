"""``eipnn-export RUN_DIR [-o model.pt] [--dtype float64] [--checkpoint best|last]``:
(re-)export a run's checkpoint to a TorchScript model file."""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import torch

from eipnn_calc.cli_errors import run_console

from ..config import load_config
from ..export import export_model
from ..runs import RunFolder, RunFolderError
from ..train.checkpoint import load_state
from ..train.session import model_spec, seeded_potential


def export_run(run_dir: str | Path, output: str | Path | None = None, dtype: str = "float64",
               checkpoint: str = "best") -> Path:
    """Rebuild the run's model from its config and write checkpoint ``checkpoint``."""
    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise RunFolderError(f"run folder '{run.path}' does not exist")
    if not run.config.exists():
        raise RunFolderError(f"'{run.path}' is not a run folder (no config.yaml): give the folder "
                             "eipnn-train wrote, runs_dir/name")
    config = load_config(run.config)
    state = _checkpoint_weights(run, checkpoint)
    if not config.model.species:
        raise RunFolderError(f"'{run.config}' has no model.species (it is filled in when a run starts)")
    spec = model_spec(config, config.model.species)
    potential = seeded_potential(spec, config.seed)
    try:
        potential.load_state_dict({k: v.to(torch.float64) if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as err:  # missing/unexpected keys or shapes: the config was edited
        raise RunFolderError(
            f"the checkpoint of '{run.path}' does not fit the model its config.yaml describes "
            f"({str(err).splitlines()[0]}...): was config.yaml edited after training?") from None
    path = Path(output) if output else run.model
    export_model(potential, spec, path, {"strategy": config.strategy, "seed": config.seed,
                                          "checkpoint": checkpoint}, dtype=dtype)
    return path


def _checkpoint_weights(run: RunFolder, checkpoint: str) -> dict:
    """The model weights of ``checkpoints/<checkpoint>.pt``; a missing or unreadable file is
    a RunFolderError that names it."""
    path = run.checkpoints / f"{checkpoint}.pt"
    if not path.exists():
        present = sorted(p.stem for p in run.checkpoints.glob("*.pt")) if run.checkpoints.is_dir() else []
        if not present:
            raise RunFolderError(f"run '{run.path}' has no checkpoint (no epoch of it finished): "
                                 "train it with eipnn-train first")
        raise RunFolderError(f"run '{run.path}' has no checkpoint '{path.name}' (it has "
                             f"{', '.join(present)}): pick one with --checkpoint")
    try:
        state = load_state(path)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError) as err:
        raise RunFolderError(f"checkpoint '{path}' cannot be read ({err}): train the run again "
                             "or pick another with --checkpoint") from err
    if not isinstance(state, dict) or "model" not in state:
        raise RunFolderError(f"'{path}' is not an eipnn checkpoint (no model weights in it)")
    return state["model"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eipnn-export", description=__doc__)
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", default=None, help="model file (default RUN_DIR/model.pt)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    return p


def _command(args: argparse.Namespace) -> int:
    print(export_run(args.run_dir, args.output, args.dtype, args.checkpoint))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script; errors as one line (``eipnn_calc.cli_errors``), ``--debug`` for
    the traceback."""
    return run_console(parser(), _command, argv)


if __name__ == "__main__":
    sys.exit(main())
