"""``syncd demo``: a simulated coworking day synced into an emulated spreadsheet."""

from __future__ import annotations

from syncd.commands.command import Command
from syncd.sandbox.demo import command as demo

COMMAND = Command(
    "demo",
    "Watch a simulated coworking day sync into an emulated spreadsheet: no accounts, no network.",
    demo.add_arguments,
    demo.run,
)
