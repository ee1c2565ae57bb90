"""``syncd sandbox cobot|sheets``: local stand-ins for Cobot and Google Sheets on loopback."""

from __future__ import annotations

from syncd.commands.command import Command, CommandGroup
from syncd.sandbox.cobot import cli as cobot
from syncd.sandbox.sheets import cli as sheets

COMMAND = CommandGroup(
    "sandbox",
    "Serve a local Cobot simulator or Google Sheets emulator.",
    (
        Command(
            "cobot",
            "The Cobot API simulator (API, subscriptions, webhook sender).",
            cobot.add_arguments,
            cobot.run,
        ),
        Command(
            "sheets",
            "The Google Sheets API v4 emulator with its OAuth2 token endpoint.",
            sheets.add_arguments,
            sheets.run,
        ),
    ),
    title="servers",
    metavar="SERVER",
    description="Serve a local stand-in for Cobot or Google Sheets on loopback, for "
    "trying the daemon without real accounts.",
)
