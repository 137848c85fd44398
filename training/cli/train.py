"""``eipnn-train CONFIG.yaml [key=value ...]``: train one model, write one run folder.

    eipnn-train examples/si_pbe_schnet_tiny.yaml
    eipnn-train examples/si_pbe_schnet_baseline.yaml data.split_seed=2 name=schnet-seed2
    eipnn-train examples/si_pbe_schnet_baseline.yaml --resume      # after a kill
    torchrun --nproc-per-node 2 -m eipnn_training.cli.train CONFIG.yaml   # DDP, 2 ranks
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

import torch

from eipnn_calc.cli_errors import one_line, run_console
from eipnn_calc.errors import EIPNNError
from eipnn_calc.malloc import tune_malloc

from .. import distributed
from ..config import RunConfig, load_config
from ..runs import RunFolder
from ..strategies.baseline import run_baseline
from ..strategies.label_augmentation import run_label_augmentation
from ..strategies.multitask import run_mp, run_mp_la
from ..train.session import check_choices
from ..validation.training_run import run_card

Strategy = Callable[..., dict[str, Any]]
# strategy name -> function(config, run_folder, resume) -> results; LA and MP plug in here.
STRATEGIES: dict[str, Strategy] = {"baseline": run_baseline, "la": run_label_augmentation, "mp": run_mp, "mp+la": run_mp_la}


def train(config: RunConfig, resume: bool = False, overwrite: bool = False, **hooks: Any) -> dict[str, Any]:
    """Library entry point of the command (tests call it directly)."""
    # Under torchrun: join the other ranks (gloo on the CPU, NCCL on CUDA, one GPU per rank).
    _, config.device = distributed.start(config.device)
    check_choices(config, STRATEGIES)
    # Subnormal floats (|x| < 1.2e-38 in float32) cost x86 ~30x per operation: flushed to
    # zero they change nothing a loss can see, and SchNet's force step is 20 % faster beyond
    # what GaussianRBF's own zeros give (docs/training.md). The setting is the process's:
    # a training run owns it.
    torch.set_flush_denormal(True)
    # Freed temporaries stay in the heap instead of going back to the kernel and faulting in
    # again at the next step (SchNet's force step 1.3x faster; eipnn_calc/malloc.py).
    tune_malloc()
    run = RunFolder(config.run_dir)
    run.create(config, resume=resume, overwrite=overwrite)
    try:
        results = STRATEGIES[config.strategy](config, run, resume=resume, **hooks)
    except Exception as error:
        raise _rank_stopped(error, run) from error
    w = distributed.world()
    if w.distributed:
        results["distributed"] = {"ranks": w.size, "backend": distributed.backend()}
        run.write_results(results)
    if config.validation.enabled and distributed.world().main:  # run.model is exported by now
        v = config.validation
        results["property_card"] = run_card(run.model, run.path, v.quick, v.element, config.progress,
                                            config.device)
        run.write_results(results)
    return results


class RankStopped(EIPNNError, RuntimeError):
    """A rank of a torchrun run stopped: the one-line message says how to go on."""


def _rank_stopped(error: Exception, run: RunFolder) -> Exception:
    """Under torchrun, ``error`` with the rank and how to continue (the other ranks see
    their peer vanish inside a collective, a traceback of gloo or NCCL internals); in one
    process, ``error`` itself."""
    w = distributed.world()
    if not w.distributed or isinstance(error, EIPNNError):
        return error
    return RankStopped(
        f"rank {w.rank} of {w.size} stopped ({one_line(error)}); the finished epochs are in "
        f"'{run.checkpoints}': continue with --resume, on any number of ranks")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eipnn-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML run configuration (see examples/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=5")
    p.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder of that name")
    return p


def _command(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    results = train(config, resume=args.resume, overwrite=args.overwrite)
    if distributed.world().main:
        print(json.dumps({k: results[k] for k in (
            "test_config_mae_ev", "test_atom_mae_ev_per_atom", "best_epoch", "model_path")}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script; errors as one line (``eipnn_calc.cli_errors``), ``--debug`` for
    the traceback."""
    return run_console(parser(), _command, argv, intermixed=True)  # flags may sit between overrides


if __name__ == "__main__":
    sys.exit(main())
