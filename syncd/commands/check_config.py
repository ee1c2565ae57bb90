"""``syncd check-config``: everything that can be wrong before the daemon runs, in one pass.

The file's own problems, an http public URL, a refused Cobot token and a spreadsheet that is
not shared with the service account are all reported together, one line each, so a new
install is fixed in one round instead of one error per restart. Each Cobot space's token is
checked against that space, and a refusal names that space's key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import urlsplit

from syncd.cobot.errors import CobotUnavailable
from syncd.cobot.spaces import cobot_clients
from syncd.cobot.subscriptions import MASK, callback_space, callback_url, space_events
from syncd.commands.command import Command, add_config_option
from syncd.commands.preview import path_warnings, sample_names, sample_payload
from syncd.config.loading import inspect_settings
from syncd.config.secret import Secret
from syncd.config.settings import CobotSettings, Settings
from syncd.core.errors import ConfigProblem, SyncdError
from syncd.intake.resources import is_loopback_host
from syncd.ops.logs import configure_logging
from syncd.sheets.errors import SheetsUnavailable
from syncd.sheets.writer import SheetsWriter
from syncd.store.budgets import sheets_budgets

#: One retry is enough to ride out a blip; an unreachable service should not keep the user
#: waiting through the daemon's long backoff.
CHECK_ATTEMPTS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument(
        "--offline",
        action="store_true",
        help="only validate the file; contact neither Cobot nor Google",
    )


def run(args: argparse.Namespace) -> int:
    """Every problem on stderr and exit 2, or the plan on stdout and exit 0."""
    settings, problems = inspect_settings(args.config)
    problems += offline_problems(settings)
    if not args.offline:
        configure_logging("error", "text", secrets=settings.secret_values())
        problems += asyncio.run(online_problems(settings))
    for problem in dict.fromkeys(problems):  # each once, though two checks may meet it
        print(f"syncd: error: {one_line(problem.render(str(args.config)))}", file=sys.stderr)
    for warning in mapping_warnings(settings):
        print(f"syncd: warning: {args.config}: {warning}", file=sys.stderr)
    for note in [] if args.offline else skipped_checks(settings):
        print(f"syncd: note: {note}", file=sys.stderr)
    if problems:
        return 2
    print(
        f"{args.config}: configuration is valid"
        + ("" if args.offline else "; Cobot and Google Sheets accept the credentials")
    )
    for line in describe_plan(settings):
        print(line)
    return 0


def one_line(text: str) -> str:
    """A problem as one line, however many its message spans."""
    return " ".join(text.split())


def describe_plan(settings: Settings) -> list[str]:
    """What the daemon would subscribe to and create, for the user to confirm."""
    lines = []
    for space in settings.spaces:
        named = callback_space(settings, space)
        masked = callback_url(settings.webhook, "<event>", Secret(MASK), named)
        events = space_events(settings, space)
        at = f" at {space.subdomain}" if named else ""
        lines.append(
            f"Would subscribe {len(events)} Cobot event(s){at} with callbacks at {masked}:"
        )
        lines += [f"  - {event}" for event in events]
    lines.append(
        f"Would keep {len(settings.sheets)} worksheet(s) in spreadsheet "
        f"{settings.google.spreadsheet_id}, creating any that is missing and its headers:"
    )
    for sheet in settings.sheets:
        lines.append(f"  - {sheet.title!r} ({sheet.resource}): headers {', '.join(sheet.headers)}")
    return lines


def mapping_warnings(settings: Settings) -> list[str]:
    """Column paths that match nothing in the bundled sample of their worksheet's kind.

    Warnings, not problems: a space's own fields (custom fields) are in no sample, and only
    ``syncd preview --url`` against the real space can tell. A typo is caught here, offline.
    """
    samples = set(sample_names())
    warnings = []
    for sheet in settings.sheets:
        if sheet.resource in samples:
            payload = sample_payload(settings, sheet.resource, None)
            warnings += [
                f"sheets.{sheet.title}.columns: {w}" for w in path_warnings(sheet, payload)
            ]
    return warnings


def offline_problems(settings: Settings) -> list[ConfigProblem]:
    """Problems that make a valid file unusable in production."""
    problems = []
    public = urlsplit(settings.webhook.public_url)
    # Plain http is fine where only this machine can connect (local trials, tests).
    if public.scheme != "https" and not is_loopback_host(public.hostname or ""):
        problems.append(
            ConfigProblem(
                "webhook.public_url",
                "must be https: Cobot posts member data to it, so put the "
                "daemon behind a TLS reverse proxy (see docs/install.md)",
            )
        )
    return problems


def skipped_checks(settings: Settings) -> list[str]:
    """The online checks the file's own problems rule out, so silence is not read as success."""
    skipped = []
    for index, space in enumerate(settings.spaces):
        if not _can_check_cobot(space):
            key = _space_key(settings, index)
            skipped.append(
                f"Cobot access not checked: fix {key}.subdomain and {key}.access_token first"
            )
    if not _can_check_sheets(settings):
        skipped.append(
            "Google Sheets access not checked: fix google.service_account_file and "
            "google.spreadsheet_id first"
        )
    return skipped


async def online_problems(settings: Settings) -> list[ConfigProblem]:
    """Ask Cobot and Google whether the credentials work; skip what the file lacks."""
    problems = await _cobot_problems(settings)
    if _can_check_sheets(settings):
        writer = SheetsWriter(
            settings.google,
            **sheets_budgets(settings.state_dir, settings.google),
            max_attempts=CHECK_ATTEMPTS,
        )
        try:
            await writer.check_access()
        except SheetsUnavailable as exc:  # the network or Google failed, not a setting
            problems.append(ConfigProblem("", f"cannot reach Google Sheets: {exc}"))
        except SyncdError as exc:
            problems.append(ConfigProblem("google.spreadsheet_id", str(exc)))
        finally:
            writer.close()
    return problems


async def _cobot_problems(settings: Settings) -> list[ConfigProblem]:
    """One request per space, with its token, to its host: listing the subscriptions proves
    the token, its admin rights in that space and its read_subscriptions scope; Cobot names a
    missing scope in its 403, which is passed on. The requests draw from the budgets the
    daemon uses (one per token, see syncd.cobot.spaces)."""
    problems = []
    spaces = settings.spaces
    async with cobot_clients(spaces, settings.state_dir, max_attempts=CHECK_ATTEMPTS) as clients:
        for index, space in enumerate(spaces):
            if not _can_check_cobot(space):
                continue
            try:
                await clients[space.subdomain].list_subscriptions()
            except CobotUnavailable as exc:  # the network or Cobot failed, not a setting
                unreachable = f"cannot reach {exc.host}: {exc.reason}; check the network"
                problems.append(ConfigProblem("", unreachable if exc.host else f"{exc}"))
            except SyncdError as exc:
                problems.append(
                    ConfigProblem(f"{_space_key(settings, index)}.access_token", str(exc))
                )
    return problems


def _space_key(settings: Settings, index: int) -> str:
    """Where the file gives the space's keys: ``cobot.spaces[1]``, or ``cobot`` for one space."""
    return f"cobot.spaces[{index}]" if settings.cobot.listed else "cobot"


def _can_check_cobot(space: CobotSettings) -> bool:
    return bool(space.access_token.reveal() and space.subdomain)


def _can_check_sheets(settings: Settings) -> bool:
    return bool(settings.google.service_account_info and settings.google.spreadsheet_id)


COMMAND = Command(
    "check-config",
    "Validate the config; unless --offline, also check Cobot and Google access.",
    add_arguments,
    run,
)
