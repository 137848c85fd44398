"""`eipnn-label`: list the EIP catalogue, label configurations, or write the Table 2 report.

    eipnn-label --list
    eipnn-label si-pbe --eips si --workers 2            # label, cached in the store
    eipnn-label frames.extxyz --eips al/eam-zope-mishin --forces --output labels.npz
    eipnn-label --report --seeds 1 2 3                   # docs/eip_accuracy.md (si-pbe)
    eipnn-label --report --dataset data/al-pbe           # its section: the 11 Al EIPs
    eipnn-label pool.extxyz --eips al --shard 3/16 --store labels-3   # one of 16 cluster jobs
    eipnn-label --merge labels-0 labels-1 ... --store labels           # then into one store
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from eipnn_calc.cli_errors import run_console


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eipnn-label", description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", help="extxyz file, or a dataset name (si-pbe)")
    parser.add_argument("--list", action="store_true", help="show the EIP catalogue")
    parser.add_argument("--report", action="store_true",
                        help="write Table 2 of si-pbe (or of --dataset) into docs/eip_accuracy.md")
    parser.add_argument("--dataset", default=None, metavar="FOLDER",
                        help="with --report: one of this project's DFT sets (data/al-pbe, data/agau-pbe)")
    parser.add_argument(
        "--eips", default=None,
        help="comma-separated names or groups (si, al, agau); default si, or with --report the "
        "group of the data set's elements"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--forces", action="store_true", help="also compute forces")
    parser.add_argument("--store", default=None, help="label store directory (default: cache)")
    parser.add_argument("--retry-missing", action="store_true", help="recompute failed entries")
    parser.add_argument("--output", default=None, help="labels .npz, or the report .md")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="split seeds")
    parser.add_argument("--shard", default=None, metavar="I/N", type=parse_shard,
                        help="label only configurations I, I+N, I+2N, ... (0 <= I < N): one of N "
                        "jobs that together label the source; merge their stores with --merge")
    parser.add_argument("--merge", nargs="+", default=None, metavar="STORE",
                        help="copy the labels of these store directories into --store (or the cache)")
    return parser


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), with 0 <= I < N (argparse reports the error)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be I/N with integers, e.g. 0/4; got '{text}'") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"{text}: need 0 <= I < N, e.g. 0/{max(count, 1)} to "
                                         f"{max(count, 1) - 1}/{max(count, 1)}")
    return index, count


def _merge(sources: list[str], target: str | None) -> str:
    from pathlib import Path

    from ..eip.store import STORE_FILE, LabelStore, LabelStoreError

    missing = [source for source in sources if not (Path(source) / STORE_FILE).exists()]
    if missing:
        raise LabelStoreError(f"--merge: no label store ({STORE_FILE}) in {', '.join(map(repr, missing))}")
    with LabelStore(target) as store:
        lines = []
        for source in sources:
            with LabelStore(source) as other:
                lines.append(f"{source}: {store.merge_from(other)} entries taken")
        lines.append(f"{store.path}: {store.count()} entries")
    return "\n".join(lines)


def _list() -> str:
    from ..eip.catalogue import DEBIAN_PACKAGE, catalogue_rows

    rows = catalogue_rows()
    lines = [
        f"{name:30s} {'installed' if installed else 'missing':9s}  {source}"
        for name, source, installed in rows
    ]
    if not all(installed for _, _, installed in rows):
        lines.append(
            f"missing KIM models come with the Debian package {DEBIAN_PACKAGE} "
            f"(apt-get install libkim-api-dev {DEBIAN_PACKAGE}; then pip install kimpy)"
        )
    return "\n".join(lines)


def _save_npz(path: str, labels) -> None:
    """Labels as plain arrays; forces (when computed) as [total atoms, K, 3] eV/Å, rows in
    configuration order (``n_atoms`` splits them), NaN where missing."""
    arrays = dict(
        names=np.array(labels.names),
        eip_ids=np.array(labels.eip_ids),
        energies_ev=labels.energies,
        present=labels.present,
        reasons=labels.reasons.astype(str),
        n_atoms=labels.n_atoms,
    )
    if labels.forces is not None:
        columns = []
        for per_config in labels.forces:
            columns.append(np.concatenate([
                f if f is not None else np.full((n, 3), np.nan)
                for f, n in zip(per_config, labels.n_atoms)
            ]))
        arrays["forces_ev_per_angstrom"] = np.stack(columns, axis=1)
    np.savez(path, **arrays)


def _command(args: argparse.Namespace) -> int:
    if args.list:
        print(_list())
        return 0
    if args.report:
        from ..eip.report import DEFAULT_REPORT_PATH, eip_accuracy_report

        print(
            eip_accuracy_report(
                seeds=tuple(args.seeds),
                eip_names=args.eips.split(",") if args.eips else None,
                workers=args.workers,
                dataset=args.dataset,
                store=args.store,
                output=args.output or DEFAULT_REPORT_PATH,
            )
        )
        return 0
    if args.merge:
        print(_merge(args.merge, args.store))
        return 0
    if args.source is None:
        print("eipnn-label: error: give a source (extxyz file or si-pbe), --list or --report",
              file=sys.stderr)
        return 2
    from ..eip.engine import label

    source = args.source
    if args.shard is not None:
        from ..eip.sources import load_configurations

        index, count = args.shard
        source = load_configurations(args.source)[index::count]
    start = time.perf_counter()
    labels = label(
        source,
        args.eips or "si",
        workers=args.workers,
        store=args.store,
        with_forces=args.forces,
        retry_missing=args.retry_missing,
    )
    seconds = time.perf_counter() - start
    print(labels.summary_text())
    print(
        f"{len(labels.hashes)} configurations x {len(labels.names)} EIPs in {seconds:.1f} s "
        f"({int(labels.n_computed.sum())} computed, the rest from the store)"
    )
    if args.output:
        _save_npz(args.output, labels)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script; errors as one line (``eipnn_calc.cli_errors``), ``--debug`` for
    the traceback."""
    return run_console(_parser(), _command, argv)


if __name__ == "__main__":
    sys.exit(main())
