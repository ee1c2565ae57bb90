"""The ``syncd`` command line.

Exit codes (the contract): 0 ok, 2 bad usage or invalid config, 1 anything else. Every error a
user can cause is printed as one clear message per problem, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from syncd.commands.parser import build_parser
from syncd.core.errors import SyncdError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names; without one (or a group without its action), the usage."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is met below and not at exit
        return code
    except SyncdError as exc:
        for line in exc.lines():
            print(f"syncd: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("syncd: interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`syncd check-config | head -1`): what it wanted it has.
        # Point stdout at /dev/null so flushing it at exit cannot fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
