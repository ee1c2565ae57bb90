"""Run the cobot-syncd benchmark: ``python bench/run.py [--quick] [--write-results]``.

Starts the real daemon (``syncd run``) between the Cobot simulator and the Sheets emulator on
loopback, once per scenario, and prints every figure beside its target, with the machine it
ran on. Targets are reported, never asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository importable (bench.*, and tests.* for the fixtures).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _main() -> int:
    from bench.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(_main())
