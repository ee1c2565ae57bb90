"""``syncd subscriptions list|sync|delete``: Cobot's webhook subscriptions by hand.

Each action talks to each configured space's Cobot and prints what it found or changed there
with the secret masked, under a heading per space when there are several; a Cobot error
becomes one line on stderr (naming the space) and exit code 1, and the other spaces go on.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from syncd.cobot.client import CobotClient, Subscription
from syncd.cobot.spaces import cobot_clients
from syncd.cobot.subscriptions import (
    callback_space,
    callback_url,
    delete_ours,
    describe_change,
    list_all,
    mask_callback,
    reconcile,
    space_events,
)
from syncd.commands.command import Command, CommandGroup, add_config_option, configured_settings
from syncd.config.settings import CobotSettings, Settings
from syncd.core.errors import CobotError


def add_delete_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument(
        "--all-ours",
        action="store_true",
        required=True,
        help="delete every subscription whose callback URL is ours",
    )


async def list_subscriptions(settings: Settings) -> int:
    """Print every subscription each space holds for its token, ours marked, secrets masked."""

    async def show(space: CobotSettings, client: CobotClient) -> int:
        rows = await list_all(settings, space, client)
        webhook = settings.webhook
        table: list[tuple[str, ...]] = [("ID", "EVENT", "ACTIVE", "OURS", "CALLBACK URL")]
        table += [
            (
                s.id,
                s.event,
                _yes_no(s.active),
                _yes_no(ours),
                mask_callback(webhook, s.callback_url),
            )
            for s, ours in rows
        ]
        _print_table(table)
        missing = _unsubscribed(settings, space, [s for s, ours in rows if ours])
        if missing:
            print(f"not subscribed (active, current secret) yet: {', '.join(missing)}")
        return 0

    return await _each_space(settings, show)


async def sync_subscriptions(settings: Settings) -> int:
    """Reconcile now, print each change and the summary; 1 when an event failed."""

    async def sync(space: CobotSettings, client: CobotClient) -> int:
        report = await reconcile(settings, space, client)
        for action, subscriptions in (("created", report.created), ("deleted", report.deleted)):
            for subscription in subscriptions:
                print(describe_change(settings.webhook, action, subscription))
        for error in report.errors:
            print(f"error: {error}", file=sys.stderr)
        print(report.summary())
        return 1 if report.errors else 0

    return await _each_space(settings, sync)


async def delete_all_ours(settings: Settings) -> int:
    """Unsubscribe every callback URL of ours, e.g. before decommissioning the daemon."""

    async def delete_all(space: CobotSettings, client: CobotClient) -> int:
        deleted = await delete_ours(settings, space, client)
        for subscription in deleted:
            print(describe_change(settings.webhook, "deleted", subscription))
        print(f"subscriptions: {len(deleted)} deleted")
        return 0

    return await _each_space(settings, delete_all)


def _runner(
    action: Callable[[Settings], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    """The ``run`` of an action: load the config and its logging, then talk to Cobot."""

    def run(args: argparse.Namespace) -> int:
        return asyncio.run(action(configured_settings(args)))

    return run


async def _each_space(
    settings: Settings, action: Callable[[CobotSettings, CobotClient], Awaitable[int]]
) -> int:
    """Run one action at every space in turn, each under a heading when there are several; a
    Cobot error becomes one line naming the space and exit code 1, and the rest go on."""
    several = len(settings.spaces) > 1
    code = 0
    async with cobot_clients(settings.spaces) as clients:
        for index, space in enumerate(settings.spaces):
            if several:
                heading = f"Space {space.subdomain}:"
                print(heading if index == 0 else f"\n{heading}")
            try:
                code = max(code, await action(space, clients[space.subdomain]))
            except CobotError as exc:
                where = f"{space.subdomain}: " if several else ""
                print(f"error: {where}{exc}", file=sys.stderr)
                code = 1
    return code


def _unsubscribed(settings: Settings, space: CobotSettings, ours: list[Subscription]) -> list[str]:
    """The space's events without an active subscription at its current callback URL."""
    active = {(s.event, s.callback_url) for s in ours if s.active}
    named = callback_space(settings, space)
    return [
        event
        for event in space_events(settings, space)
        if (event, callback_url(settings.webhook, event, space=named)) not in active
    ]


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


COMMAND = CommandGroup(
    "subscriptions",
    "List, repair or remove the Cobot webhook subscriptions.",
    (
        Command(
            "list",
            "Show every subscription of this token, ours marked.",
            add_config_option,
            _runner(list_subscriptions),
        ),
        Command(
            "sync",
            "Reconcile once: create, repair and remove ours; print changes.",
            add_config_option,
            _runner(sync_subscriptions),
        ),
        Command("delete", "Delete subscriptions.", add_delete_arguments, _runner(delete_all_ours)),
    ),
)
