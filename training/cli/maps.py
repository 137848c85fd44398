"""``eipnn-maps RUN_DIR``: t-SNE maps of configuration representations of an MP run,
before pretraining, after it and after fine-tuning, coloured by DFT energy per atom.

    eipnn-maps runs/si_pbe_schnet_mp_tiny -o docs/si_pbe_schnet_mp_tiny_tsne.png
    eipnn-maps runs/si_pbe_schnet_mp_s1 --splits test --max 500
"""
from __future__ import annotations

import argparse
import json
import sys

from eipnn_calc.cli_errors import run_console

from ..representation_maps import run_maps


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eipnn-maps", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="folder of a finished mp or mp+la run")
    p.add_argument("-o", "--output", help="PNG path (default RUN_DIR/representation_tsne.png)")
    p.add_argument("--splits", default="train,val,test", help="DFT-labelled splits to map, comma-separated")
    p.add_argument("--max", type=int, default=None, help="at most this many configurations (random, --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of t-SNE and of the --max sample")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=1,
                   help="OpenMP threads of t-SNE (1 is fastest on a busy machine)")
    return p


def _command(args: argparse.Namespace) -> int:
    summary = run_maps(args.run_dir, args.output, tuple(args.splits.split(",")), args.max,
                       args.seed, args.perplexity, args.threads)
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script; errors as one line (``eipnn_calc.cli_errors``), ``--debug`` for
    the traceback."""
    return run_console(parser(), _command, argv)


if __name__ == "__main__":
    sys.exit(main())
