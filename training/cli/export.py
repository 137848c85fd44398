"""``eipnn-export RUN_DIR [-o model.pt] [--dtype float64] [--checkpoint best|last] [--member K] [--exact]``:
(re-)export a run's checkpoint to a TorchScript model file (a committee run's: the whole
committee, or with ``--member`` one member alone). A SchNet's filters are written as tables
(``models.tabulated``, the fast inference form); ``--exact`` writes the filter networks."""
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
from ..train.ensemble import member_folder
from ..train.session import model_spec, seeded_potential


def export_run(run_dir: str | Path, output: str | Path | None = None, dtype: str = "float64",
               checkpoint: str = "best", member: int | None = None, exact: bool = False) -> Path:
    """Rebuild the run's model from its config and write checkpoint ``checkpoint``."""
    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise RunFolderError(f"run folder '{run.path}' does not exist")
    if not run.config.exists():
        raise RunFolderError(f"'{run.path}' is not a run folder (no config.yaml): give the folder "
                             "eipnn-train wrote, runs_dir/name")
    config = load_config(run.config)
    if not config.model.species:
        raise RunFolderError(f"'{run.config}' has no model.species (it is filled in when a run starts)")
    size = config.train.committee
    folders = [run.checkpoints] if size == 1 else [member_folder(run.checkpoints, k) for k in range(size)]
    if member is not None:
        if not 0 <= member < size:
            raise RunFolderError(f"--member {member}: run '{run.path}' has "
                                 + (f"members 0..{size - 1}" if size > 1 else "no committee (train.committee 1)"))
        folders = [folders[member]]
    spec = model_spec(config, config.model.species)
    potentials = [_potential(run, spec, config.seed, _checkpoint_weights(run, folder, checkpoint))
                  for folder in folders]
    path = Path(output) if output else run.model
    provenance = {"strategy": config.strategy, "seed": config.seed, "checkpoint": checkpoint}
    if member is not None:
        provenance["committee_member"] = member
    export_model(potentials if len(potentials) > 1 else potentials[0], spec, path, provenance, dtype=dtype,
                 exact=exact)
    return path


def _potential(run: RunFolder, spec, seed: int, state: dict):
    potential = seeded_potential(spec, seed)
    try:
        potential.load_state_dict({k: v.to(torch.float64) if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as err:  # missing/unexpected keys or shapes: the config was edited
        raise RunFolderError(
            f"the checkpoint of '{run.path}' does not fit the model its config.yaml describes "
            f"({str(err).splitlines()[0]}...): was config.yaml edited after training?") from None
    return potential


def _checkpoint_weights(run: RunFolder, folder: Path, checkpoint: str) -> dict:
    """The model weights of ``folder/<checkpoint>.pt``; a missing or unreadable file is
    a RunFolderError that names it."""
    path = folder / f"{checkpoint}.pt"
    if not path.exists():
        present = sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []
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
    p.add_argument("--member", type=int, default=None, help="a committee run: export this member alone")
    p.add_argument("--exact", action="store_true",
                   help="write SchNet's filter networks as trained instead of their tables (slower in MD)")
    return p


def _command(args: argparse.Namespace) -> int:
    print(export_run(args.run_dir, args.output, args.dtype, args.checkpoint, args.member, args.exact))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script; errors as one line (``eipnn_calc.cli_errors``), ``--debug`` for
    the traceback."""
    return run_console(parser(), _command, argv)


if __name__ == "__main__":
    sys.exit(main())
