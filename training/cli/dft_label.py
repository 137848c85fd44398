"""`eipnn-dft-label`: DFT (GPAW) labels of a pool, resumable, written as committable chunks.

    eipnn-dft-label data/al-pbe/pool.extxyz.xz --subset 1000          # chunks in data/al-pbe/labelled/
    eipnn-dft-label data/al-pbe/pool.extxyz.xz data/agau-pbe/pool.extxyz.xz --subset 1000
    eipnn-dft-label data/al-pbe/pool.extxyz.xz --subset 1000 --status # how far it is, s per label
    eipnn-dft-label configs.extxyz --convergence                       # production vs tighter

Several pools are labelled in one run, smallest configurations first across all of them,
each into its own chunk directory. Rerunning the same command resumes: stored labels are
reused, and stored labels that no chunk holds yet go into the next chunk first.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from eipnn_calc.cli_errors import run_console


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eipnn-dft-label", description=__doc__.split("\n")[0])
    parser.add_argument("pools", nargs="+", metavar="pool",
                        help="extxyz file of configurations (a pool from eipnn-sample)")
    parser.add_argument("--subset", type=int, default=None,
                        help="label this many of each pool, stratified by kind (default: all)")
    parser.add_argument("--subset-seed", type=int, default=0, help="seed of the subset")
    parser.add_argument("--chunks", default=None,
                        help="chunk directory of a single pool (default: 'labelled' beside it)")
    parser.add_argument("--chunk-size", type=int, default=25, help="labels per chunk file")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1: this one)")
    parser.add_argument("--store", default=None, help="DFT store directory (default: cache)")
    parser.add_argument("--limit", type=int, default=None, help="compute at most this many now")
    parser.add_argument("--retry-failed", action="store_true", help="recompute failed ones")
    parser.add_argument("--ecut", type=float, default=None, help="cut-off, eV (default: production)")
    parser.add_argument("--kpoint-density", type=float, default=None,
                        help="k-points per Å⁻¹ (default: production)")
    parser.add_argument("--status", action="store_true", help="report progress, compute nothing")
    parser.add_argument("--convergence", action="store_true",
                        help="check the settings against tighter ones on these configurations")
    return parser


def _settings(args):
    from ..dft import PRODUCTION

    changes = {}
    if args.ecut is not None:
        changes["ecut_ev"] = args.ecut
    if args.kpoint_density is not None:
        changes["kpoint_density_per_inverse_angstrom"] = args.kpoint_density
    return PRODUCTION.replace(**changes)


def _selection(args) -> list[list]:
    """The configurations to label, per pool."""
    from ..data.errors import DatasetFileError
    from ..sampling import read_pool, stratified_subset

    selected = []
    for path in args.pools:
        if not Path(path).is_file():
            raise DatasetFileError(f"no configuration file '{path}': give an extxyz file "
                                   "(a pool from eipnn-sample)")
        pool = read_pool(path)
        if args.subset is not None:
            pool = [pool[i] for i in stratified_subset(pool, args.subset, args.subset_seed)]
        selected.append(pool)
    return selected


def _status(args, path: str, configurations: list, chunk_dir: Path) -> str:
    """Labelled (in the committed chunks of ``chunk_dir`` or in the store), failed and to do;
    a new machine's empty store alone would say nothing is labelled."""
    from ..dft import DFTStore
    from ..dft.chunks import chunk_labels
    from ..eip.structure import Structure

    settings = _settings(args)
    hashes = [Structure.from_atoms(a).content_hash() for a in configurations]
    with DFTStore(args.store) as store:
        settings_id = store.register(settings)
        stored = store.get(hashes, settings_id)
        records = store.records(settings_id, hashes)
    in_chunks = {config_hash: {"seconds": frame.info.get("dft_seconds")}
                 for config_hash, frame in chunk_labels(chunk_dir, settings_id).items()}
    records = {**in_chunks, **records}
    done = [h for h in hashes if h in in_chunks or (h in stored and stored[h].reason is None)]
    failed = [h for h in hashes if h not in in_chunks and h in stored and stored[h].reason is not None]
    chunked = sum(h in in_chunks for h in done)
    lines = [f"{path} under {settings_id}: {len(done)} labelled ({chunked} in {chunk_dir}/, "
             f"{len(done) - chunked} only in the store), {len(failed)} failed, "
             f"{len(hashes) - len(done) - len(failed)} to do, of {len(hashes)}"]
    sizes = {h: len(a) for h, a in zip(hashes, configurations)}
    seconds = np.array([records[h]["seconds"] for h in done if records.get(h, {}).get("seconds") is not None])
    if len(seconds):
        lines.append(f"seconds per label: mean {seconds.mean():.1f}, median "
                     f"{np.median(seconds):.1f}, total {seconds.sum() / 3600:.2f} h")
        for low, high in ((4, 8), (9, 16), (17, 24), (25, 32)):
            picked = [records[h]["seconds"] for h in done
                      if records.get(h, {}).get("seconds") is not None and low <= sizes[h] <= high]
            if picked:
                lines.append(f"  {low:2d}-{high:2d} atoms: {len(picked):5d} labels, "
                             f"mean {np.mean(picked):.1f} s")
    for h in failed[:5]:
        lines.append(f"failed {h}: {stored[h].reason}")
    return "\n".join(lines)


def _convergence(args, configurations) -> str:
    from ..dft import convergence_check, convergence_table

    settings = _settings(args)
    reference = settings.replace(
        ecut_ev=settings.ecut_ev + 200.0,
        kpoint_density_per_inverse_angstrom=settings.kpoint_density_per_inverse_angstrom + 2.0,
    )
    named = {f"{i}: {a.get_chemical_formula()} {a.info.get('kind', '')}".strip(): a
             for i, a in enumerate(configurations)}
    rows = convergence_check(named, [settings], reference, store=args.store,
                             workers=args.workers, progress=True)
    return convergence_table(rows, reference)


def _command(args: argparse.Namespace) -> int:
    from ..dft import DFTError

    if args.chunks is not None and len(args.pools) > 1:
        raise DFTError("--chunks names the chunk directory of one pool; with several pools "
                       "each gets 'labelled' beside it")
    per_pool = _selection(args)
    configurations = [atoms for pool in per_pool for atoms in pool]
    directories = [Path(args.chunks) if args.chunks else Path(path).parent / "labelled"
                   for path in args.pools]
    if args.status:
        print("\n".join(_status(args, path, pool, directory)
                        for path, pool, directory in zip(args.pools, per_pool, directories)))
        return 0
    if args.convergence:
        print(_convergence(args, configurations))
        return 0
    from ..dft import ChunkWriter, DFTStore, label_dft

    settings = _settings(args)
    start = time.perf_counter()
    writers = []
    with DFTStore(args.store) as store:
        settings_id = store.register(settings)
        try:
            for directory, pool in zip(directories, per_pool):
                writer = ChunkWriter(directory, pool, settings_id,
                                     store.settings_payload(settings_id), args.chunk_size)
                writers.append(writer)
                writer.add_stored(store)  # what an interrupted run finished after its last chunk

            def add(config_hash, label, record):
                for writer in writers:  # a writer skips what is not in its pool
                    writer.add(config_hash, label, record)

            # A new machine starts with an empty store: what the committed chunks hold is
            # not computed again.
            configurations = [atoms for atoms in configurations
                              if not any(writer.holds(atoms) for writer in writers)]
            labels = label_dft(configurations, settings, workers=args.workers, store=store,
                               retry_failed=args.retry_failed, limit=args.limit, on_result=add)
            finished = not any(r.startswith("not-computed") for r in labels.reasons)
            if finished:
                for writer in writers:
                    writer.flush()
        finally:
            for writer in writers:
                writer.close()
    print(labels.summary_text())
    for directory, writer in zip(directories, writers):
        print(f"{writer.n_written} labels in {directory}/")
    print(f"{'complete' if finished else 'not complete: the labels after the last whole chunk wait in the store'}; "
          f"{time.perf_counter() - start:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_console(_parser(), _command, argv)


if __name__ == "__main__":
    sys.exit(main())
