"""The command line of the Sheets emulator (``syncd sandbox sheets``): serve until signalled.

With ``--config`` it serves exactly what a daemon config expects, so the daemon can be tried
end to end without a Google account.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from aiohttp import web

from syncd.config.loading import inspect_settings
from syncd.sandbox.servers import free_port, listen_address_of
from syncd.sandbox.sheets.auth import DEFAULT_CLIENT_EMAIL, write_key_file
from syncd.sandbox.sheets.server import SheetsEmulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `syncd sandbox sheets`: where to listen, what to hold, which knobs."""
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        metavar="FILE",
        help="serve what this daemon config expects: listen on google.api_endpoint, hold "
        "google.spreadsheet_id, and accept the key in google.service_account_file (a new one "
        "is written there if the file does not exist)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port (0 picks a free one)")
    parser.add_argument(
        "--spreadsheet", action="append", default=[], metavar="ID", help="create this spreadsheet"
    )
    parser.add_argument("--title", default="Cobot sync (sandbox)", help="spreadsheet title")
    parser.add_argument(
        "--key-file",
        metavar="PATH",
        help="write a new service-account key here whose token_uri points at this server",
    )
    parser.add_argument("--client-email", default=DEFAULT_CLIENT_EMAIL)
    parser.add_argument("--read-quota", type=int, default=None, help="reads per window")
    parser.add_argument("--write-quota", type=int, default=None, help="writes per window")
    parser.add_argument("--quota-window", type=float, default=60.0, help="seconds")
    parser.add_argument("--token-lifetime", type=float, default=3600, help="seconds")
    parser.add_argument("--error-rate", type=float, default=0.0, help="0..1 of Sheets calls")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per Sheets call")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit status."""
    emulator = SheetsEmulator(
        read_quota_per_minute=args.read_quota,
        write_quota_per_minute=args.write_quota,
        quota_window_seconds=args.quota_window,
        token_lifetime_seconds=args.token_lifetime,
        error_rate=args.error_rate,
        latency_seconds=args.latency,
        seed=args.seed,
    )
    if args.config is not None:
        google = inspect_settings(args.config)[0].google
        args.host, args.port = listen_address_of(google.api_endpoint, "google.api_endpoint")
        args.spreadsheet = [google.spreadsheet_id]
        args.key_file = str(google.service_account_file)
    port = args.port or free_port(args.host)
    url = f"http://{args.host}:{port}"
    for spreadsheet_id in args.spreadsheet:
        emulator.create_spreadsheet(spreadsheet_id, title=args.title)
    if args.key_file and Path(args.key_file).exists():
        # A key from an earlier run: accept it again so a running daemon keeps working.
        emulator.register_service_account(json.loads(Path(args.key_file).read_text()))
    elif args.key_file:
        key_info = emulator.create_service_account(url + "/token", args.client_email)
        write_key_file(args.key_file, key_info)
    asyncio.run(_serve_until_signalled(emulator.app(), args.host, port, url))
    return 0


async def _serve_until_signalled(app: web.Application, host: str, port: int, url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        print(f"Sheets emulator listening on {url}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
