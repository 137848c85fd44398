"""`eipnn-sample`: a pool of configurations sampled with the EIPs, as compressed extxyz.

    eipnn-sample al --output data/al-pbe/pool.extxyz.xz             # the full plan, seed 0
    eipnn-sample agau --output pool.extxyz.xz --size 500 --seed 3
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from eipnn_calc.cli_errors import run_console


def _parser() -> argparse.ArgumentParser:
    from ..sampling import SYSTEMS

    parser = argparse.ArgumentParser(prog="eipnn-sample", description=__doc__.split("\n")[0])
    parser.add_argument("system", choices=sorted(SYSTEMS), help="which pool")
    parser.add_argument("--output", required=True,
                        help="extxyz file to write (.xz / .gz / .bz2 compress it)")
    parser.add_argument("--size", type=int, default=None,
                        help="configurations in all (default: the full plan)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


def _command(args: argparse.Namespace) -> int:
    from ..sampling import plan_counts, sample_pool, system, write_pool

    start = time.perf_counter()
    pool = sample_pool(args.system, size=args.size, seed=args.seed, progress=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_pool(pool, output)
    kinds = Counter(atoms.info["kind"] for atoms in pool)
    sizes = [len(atoms) for atoms in pool]
    for kind in plan_counts(system(args.system), args.size):
        print(f"{kind:18s} {kinds[kind]:6d}")
    print(
        f"{len(pool)} configurations of {min(sizes)}-{max(sizes)} atoms "
        f"({sum(sizes)} atoms) in {time.perf_counter() - start:.0f} s -> {output} "
        f"({output.stat().st_size / 1e6:.2f} MB)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_console(_parser(), _command, argv)


if __name__ == "__main__":
    sys.exit(main())
