"""``syncd check-config``: everything that can be wrong before the daemon runs, in one pass.

The file's own problems, an http public URL, a refused Cobot token and a spreadsheet that is
not shared with the service account are all reported together, one line each, so a new
install is fixed in one round instead of one error per restart.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from syncd.cobot import CobotClient
from syncd.config import ConfigProblem, Settings
from syncd.errors import SyncdError
from syncd.sheets import SheetsWriter
from syncd.subscriptions import callback_url


def describe_plan(settings: Settings) -> list[str]:
    """What the daemon would subscribe to and create, for the user to confirm."""
    masked = callback_url(settings.webhook, "<event>").replace(
        settings.webhook.secret.reveal(), "***"
    )
    lines = [f"Would subscribe {len(settings.events)} Cobot event(s) with callbacks at {masked}:"]
    lines += [f"  - {event}" for event in settings.events]
    lines.append(
        f"Would keep {len(settings.sheets)} worksheet(s) in spreadsheet "
        f"{settings.google.spreadsheet_id}:"
    )
    for sheet in settings.sheets:
        lines.append(f"  - {sheet.title!r} ({sheet.resource}): headers {', '.join(sheet.headers)}")
    return lines


def offline_problems(settings: Settings) -> list[ConfigProblem]:
    """Problems that make a valid file unusable in production."""
    problems = []
    public = urlsplit(settings.webhook.public_url)
    if public.scheme != "https" and not _is_loopback(public.hostname or ""):
        problems.append(
            ConfigProblem(
                "webhook.public_url",
                "must be https: Cobot posts member data to it, so put the "
                "daemon behind a TLS reverse proxy (see README.md)",
            )
        )
    return problems


async def online_problems(settings: Settings) -> list[ConfigProblem]:
    """Ask Cobot and Google whether the credentials work; skip what the file lacks."""
    problems = []
    if settings.cobot.access_token.reveal() and settings.cobot.subdomain:
        try:
            async with CobotClient(settings.cobot) as cobot:
                await cobot.list_subscriptions()
        except SyncdError as exc:
            problems.append(ConfigProblem("cobot.access_token", str(exc)))
    if settings.google.service_account_info and settings.google.spreadsheet_id:
        writer = SheetsWriter(settings.google)
        try:
            await writer.check_access()
        except SyncdError as exc:
            problems.append(ConfigProblem("google.spreadsheet_id", str(exc)))
        finally:
            writer.close()
    return problems


def _is_loopback(host: str) -> bool:
    """Plain http is fine where only this machine can connect (local trials, tests)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
