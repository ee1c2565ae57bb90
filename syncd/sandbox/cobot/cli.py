"""`syncd sandbox cobot`: serve the Cobot simulator on loopback until interrupted.

With `--config` it serves what a daemon config expects (its `cobot.base_url` and access
token), so `syncd run` with that config talks to the simulator unchanged.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from syncd.config.loading import inspect_settings
from syncd.sandbox.cobot.server import DEFAULT_APP, DEFAULT_TOKEN, CobotSimulator
from syncd.sandbox.servers import ServerThread, listen_address_of, stop_on_signals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `syncd sandbox cobot`."""
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        metavar="FILE",
        help="serve what this daemon config expects: listen on cobot.base_url and accept "
        "cobot.access_token (instead of --host, --port and --token)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (default: 0, a free one)")
    parser.add_argument(
        "--token",
        action="append",
        metavar="TOKEN",
        help=f"accepted bearer token, repeatable (default: {DEFAULT_TOKEN})",
    )
    parser.add_argument("--app-name", default=DEFAULT_APP, help="OAuth app the tokens belong to")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--seed-members", type=int, default=0, metavar="N")
    parser.add_argument("--seed-invoices", type=int, default=0, metavar="N")
    parser.add_argument("--seed-bookings", type=int, default=0, metavar="N")
    parser.add_argument("--seed-check-ins", type=int, default=0, metavar="N")
    parser.add_argument("--years", type=float, default=2, help="history span of seeded data")
    parser.add_argument(
        "--hostile-rate",
        type=float,
        default=0.0,
        help="share of seeded objects with formula-like text (0..1)",
    )
    parser.add_argument("--no-rate-limit", action="store_true", help="switch rate limits off")
    parser.add_argument(
        "--retry-time-scale",
        type=float,
        default=1.0,
        help="factor on the webhook retry intervals (1 = about 20 hours)",
    )
    parser.add_argument(
        "--deleted-invoice-form",
        choices=("top_level", "nested"),
        default="top_level",
        help="body shape of deleted_invoice webhooks",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM, then shut the server down cleanly."""
    if args.config is not None:
        settings, _ = inspect_settings(args.config)
        args.host, args.port = listen_address_of(settings.cobot.base_url, "cobot.base_url")
        args.token = [settings.cobot.access_token.reveal()]
    tokens = args.token or [DEFAULT_TOKEN]
    sim = CobotSimulator(
        tokens=dict.fromkeys(tokens, args.app_name),
        seed=args.seed,
        hostile_rate=args.hostile_rate,
        rate_limits=not args.no_rate_limit,
        retry_time_scale=args.retry_time_scale,
        deleted_invoice_form=args.deleted_invoice_form,
    )
    server = ServerThread(sim.app, args.host, args.port)
    sim.base_url = server.url
    seeds = (args.seed_members, args.seed_invoices, args.seed_bookings, args.seed_check_ins)
    counts = sim.seed_space(*seeds, years=args.years, seed=args.seed) if any(seeds) else {}
    stop = threading.Event()
    with stop_on_signals(stop):
        server.start()
        try:
            print(f"Cobot simulator listening on {server.url}", flush=True)
            print(f"tokens: {', '.join(tokens)} (app {args.app_name})", flush=True)
            if counts:
                seeded = ", ".join(f"{n} {kind}" for kind, n in counts.items())
                print(f"seeded: {seeded}", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
    return 0
