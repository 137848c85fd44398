"""``eipnn-validate MODEL.pt [--element Si] [-o OUTDIR] [--quick]``: the property card of a
model file (E-V, elastic constants, vacancy, phonons, hot NVE against cited PBE values;
docs/validation.md), written as OUTDIR/property_card.md, property_card.json and PNG plots.

    eipnn-validate runs/quickstart/model.pt                 # full card (minutes), next to the model
    eipnn-validate model.pt --element Si -o card --quick    # coarse card (seconds)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eipnn_calc.cli_errors import run_console

from ..validation.card import CARD_MARKDOWN, property_card
from ..validation.properties import PARTS
from ..validation.settings import CardSettings

EXIT_FAILED_CHECKS = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eipnn-validate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="exported model file (model.pt)")
    p.add_argument("--element", default=None,
                   help="one species of the model (default: every species with a structure in the references file)")
    p.add_argument("-o", "--output", default=None, help="output folder (default: property_card/ next to the model)")
    p.add_argument("--quick", action="store_true", help="coarse grids, small cells, 50 MD steps (seconds)")
    p.add_argument("--references", default=None, help="references file (default: the shipped references.yaml)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--strict", action="store_true", help="exit with status 2 when a check fails")
    return p


def _command(args: argparse.Namespace) -> int:
    progress = not args.no_progress
    settings = CardSettings.quick(progress=progress) if args.quick else CardSettings(progress=progress)
    parts = tuple(part.strip() for part in args.parts.split(",") if part.strip())
    card = property_card(args.model, args.element, args.output, settings, args.references, parts, args.device)
    out_dir = Path(args.output) if args.output else Path(args.model).parent / "property_card"
    print((out_dir / CARD_MARKDOWN).read_text())
    return EXIT_FAILED_CHECKS if args.strict and card["passed"] is False else 0


def main(argv: list[str] | None = None) -> int:
    """The console script; errors as one line (``eipnn_calc.cli_errors``), ``--debug`` for
    the traceback."""
    return run_console(parser(), _command, argv)


if __name__ == "__main__":
    sys.exit(main())
