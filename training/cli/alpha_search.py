"""``eipnn-la-alpha CONFIG.yaml [key=value ...]``: label augmentation with alpha chosen on
validation from a grid (METHOD.md: 0.01 0.05 0.1 0.5 1 2 5 10), in one run folder.

    eipnn-la-alpha examples/si_pbe_schnet_la.yaml
    eipnn-la-alpha examples/si_pbe_schnet_la_tiny.yaml --grid 0.1 1 10
    eipnn-la-alpha examples/si_pbe_schnet_la.yaml --resume        # after a kill

The classifier and the selection are made once; every alpha then trains a potential from
the same initial weights; the run's model is the alpha with the best validation MAE.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from eipnn_calc.cli_errors import run_console

from ..config import ConfigError, load_config
from .train import train


def alpha_search(config_path: str, overrides: list[str], grid: list[float] | None = None,
                 resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Library entry point: the config with ``strategy: la`` and ``la.alpha`` unset."""
    extra = ["strategy=la", "la.alpha=null"]
    if grid is not None:
        if not grid:
            raise ConfigError("--grid needs at least one alpha (e.g. --grid 0.1 1 10)")
        extra.append(f"la.alpha_grid=[{', '.join(repr(float(a)) for a in grid)}]")
    return train(load_config(config_path, list(overrides) + extra), resume=resume, overwrite=overwrite)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eipnn-la-alpha", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML run configuration (see examples/*la*.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.split_seed=2")
    p.add_argument("--grid", type=float, nargs="+", default=None, help="alphas (default: la.alpha_grid)")
    p.add_argument("--resume", action="store_true", help="continue the run from its checkpoints")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder of that name")
    return p


def _command(args: argparse.Namespace) -> int:
    results = alpha_search(args.config, args.overrides, args.grid, args.resume, args.overwrite)
    la = results["la"]
    print(json.dumps({"alpha_search_val_config_mae_ev": la["alpha_search"], "chosen_alpha": la["alpha"],
                      "test_config_mae_ev": results["test_config_mae_ev"],
                      "test_atom_mae_ev_per_atom": results["test_atom_mae_ev_per_atom"],
                      "model_path": results["model_path"]}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script; errors as one line (``eipnn_calc.cli_errors``), ``--debug`` for
    the traceback."""
    return run_console(parser(), _command, argv)


if __name__ == "__main__":
    sys.exit(main())
