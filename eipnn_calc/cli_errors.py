"""How every eipnn console script ends: one line on stderr for a problem eipnn can name.

Each script's ``main(argv)`` is ``run_console(parser, command, argv)``. It adds ``--debug``
to the parser, parses the command line and runs ``command(args)``; the exit status is

- what ``command`` returns (0 when it worked);
- 1 for an :class:`~eipnn_calc.errors.EIPNNError` (a bad config, a missing or unreadable
  file, an unknown EIP name, a folder that is not a run, ...): its message is printed as ONE
  line, argparse-style, ``eipnn-train: error: config file not found: 'missing.yaml'``;
- 2 when the command line itself is wrong (argparse prints its usage and exits 2);
- 130 on Ctrl-C (``eipnn-train: interrupted``).

``--debug`` re-raises instead, so the full traceback shows. Any other exception is a bug and
keeps its traceback. This module lives in the runtime because ``eipnn-export-kim`` is a
runtime script (eipnn_calc never imports eipnn_training); the training scripts import it.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .errors import EIPNNError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (the lines of a longer one joined by "; ")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def run_console(
    parser: argparse.ArgumentParser,
    command: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
    intermixed: bool = False,
) -> int:
    """Parse ``argv`` (``intermixed``: flags may sit between positionals), run ``command``
    and return its exit status, or the status of the error it raised (see the module)."""
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the full traceback instead of one line")
    parse = parser.parse_intermixed_args if intermixed else parser.parse_args
    args = parse(None if argv is None else list(argv))
    try:
        return command(args)
    except EIPNNError as error:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
