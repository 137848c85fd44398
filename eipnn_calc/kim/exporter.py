"""``eipnn-export-kim MODEL.pt NAME``: write a KIM portable-model folder and, with
``--install``, install the eipnn driver and the model into the KIM user collection."""
from __future__ import annotations

import argparse
import sys

from ..cli_errors import run_console
from .driver_build import DRIVER_NAME, install_driver
from .portable_model import PERIODIC_IMAGES, install_portable_model, write_portable_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eipnn-export-kim",
        description="Package an exported eipnn model file as a KIM portable model, usable "
        "from LAMMPS (pair_style kim), ASE's KIM calculator and other KIM simulators.",
    )
    parser.add_argument("model", help="the eipnn model file (.pt) written by eipnn-export")
    parser.add_argument("name", help="KIM name of the model, e.g. Si_schnet (letters, digits, _)")
    parser.add_argument(
        "--output-dir", default=".", help="where the folder NAME/ is written (default: .)"
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help=f"install the driver ({DRIVER_NAME}, compiled once, a few minutes) and the "
        "model into the KIM user collection",
    )
    parser.add_argument(
        "--reinstall-driver",
        action="store_true",
        help="with --install: rebuild and reinstall the driver even if one is installed",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="do not copy the model file into the package; point to its absolute path "
        "(it must then stay there)",
    )
    parser.add_argument("--device", default="cpu", help="torch device the driver runs on")
    parser.add_argument(
        "--periodic-images",
        choices=PERIODIC_IMAGES,
        default="fold",
        help="fold (default): padding particles that are periodic images of the simulator's "
        "atoms become edges to those atoms; evaluate: the model runs on them as particles of "
        "their own (docs/kim_lammps.md)",
    )
    return parser


def _command(args: argparse.Namespace) -> int:
    folder = write_portable_model(
        args.model, args.name, args.output_dir, embed=not args.reference, device=args.device,
        periodic_images=args.periodic_images,
    )
    print(f"wrote KIM portable model folder {folder}")
    if args.install:
        if install_driver("user", reinstall=args.reinstall_driver):
            print(f"installed the KIM model driver {DRIVER_NAME} (user collection)")
        install_portable_model(folder, "user")
        print(f"installed the KIM portable model {args.name} (user collection)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script; errors (KIMExportError, KIMToolError, ...) as one line
    (``eipnn_calc.cli_errors``), ``--debug`` for the traceback."""
    return run_console(build_parser(), _command, argv)


if __name__ == "__main__":
    sys.exit(main())
