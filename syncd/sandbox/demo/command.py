"""``syncd demo``: the whole pipeline on one machine, without accounts or network.

It starts the Cobot simulator and the Google Sheets emulator in-process, writes a config
that points the daemon at them (with the bundled example mapping or the user's own), runs
the real daemon (``python -m syncd run``) as a subprocess, plays a day in a coworking space
through the simulator and serves a live, read-only view of the emulated spreadsheet. What it
shows is what production does: the same webhooks, fetches, mapping and sheet writes.

With ``--spaces 2`` the operator has a second location: a second Cobot space (its own
simulator) in the same daemon, every worksheet with the daemon's Space column, and one more
worksheet narrowed to the second location with ``spaces:``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from syncd.config.loading import load_settings
from syncd.config.settings import Settings
from syncd.core.errors import ConfigError, ConfigProblem, SyncdError
from syncd.sandbox.cobot.server import CobotSimulator
from syncd.sandbox.demo.day import SPEEDS, Day, Feed, parse_speed, play
from syncd.sandbox.demo.view import SheetWatcher, build_view_app, tabs_of
from syncd.sandbox.servers import ServerThread, free_port, stop_on_signals
from syncd.sandbox.sheets.auth import write_key_file
from syncd.sandbox.sheets.server import SheetsEmulator

DEFAULT_PORT = 8765
EXAMPLE_CONFIG = "example_config.yaml"
COBOT_TOKEN = "demo-cobot-token"
COBOT_APP = "cobot-syncd-demo"
SPREADSHEET_ID = "1DemoSpreadsheet0000000000000000000000000000"
SPREADSHEET_TITLE = "Example Coworking (demo)"
#: Each location: its subdomain, its name in the feed, and the seed of its simulated data
#: (seeds whose members all have different first names).
LOCATIONS = (("example-downtown", "Downtown", 8), ("example-riverside", "Riverside", 2))
#: Mapping keys taken from the user's config; everything else points at the sandboxes.
MAPPING_KEYS = ("sheets", "timezone", "event_log_sheet")
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 40.0


class DemoError(SyncdError):
    """The demo could not start or its daemon died; the message says what to do."""


@dataclass(frozen=True)
class DemoOptions:
    config: Path | None
    duration: float | None
    speed: float
    port: int
    open_browser: bool
    spaces: int = 1


# -- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``syncd demo``."""
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        metavar="FILE",
        help="use the worksheets (sheets:) of this config; default: the bundled "
        "config.example.yaml mapping",
    )
    parser.add_argument(
        "--duration",
        type=_positive_seconds,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="FACTOR",
        help=f"pace of the simulated day: a factor or one of {', '.join(SPEEDS)} "
        "(default 1: the day takes about two minutes)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port of the sheet view on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--spaces",
        type=int,
        choices=range(1, len(LOCATIONS) + 1),
        default=1,
        help="locations, each its own Cobot space in the one daemon (2: a second location, "
        "a Space column and a worksheet narrowed to it; default 1)",
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="do not open the sheet view in a browser"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C, SIGTERM or the end of ``--duration``."""
    options = DemoOptions(
        config=args.config,
        duration=args.duration,
        speed=args.speed,
        port=args.port,
        open_browser=not args.no_browser,
        spaces=args.spaces,
    )
    return Demo(options).run()


def _speed(text: str) -> float:
    try:
        return parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return seconds


# -- the config the demo's daemon runs with -------------------------------------------------


def example_config_text() -> str:
    """config.example.yaml as shipped inside the package (tests keep the two identical)."""
    return resources.files("syncd").joinpath(EXAMPLE_CONFIG).read_text(encoding="utf-8")


def mapping_of(config: Path | None) -> tuple[str, dict[str, Any]]:
    """(label, the mapping keys) of the user's config, or of the bundled example."""
    if config is None:
        label, text = "config.example.yaml (bundled)", example_config_text()
    else:
        label = str(config)
        try:
            text = config.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(label, [_problem(f"cannot read it: {exc.strerror or exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(label, [_problem("not valid YAML")]) from None
    if not isinstance(data, dict) or not data.get("sheets"):
        raise ConfigError(label, [_problem("no worksheets: add a sheets: section")])
    return label, {key: data[key] for key in MAPPING_KEYS if key in data}


def _problem(message: str) -> ConfigProblem:
    return ConfigProblem("", message)


def demo_config(
    mapping: dict[str, Any],
    workdir: Path,
    cobot_urls: Sequence[str],
    sheets_url: str,
    listen_port: int,
) -> dict[str, Any]:
    """A daemon config between the sandboxes: the mapping is the user's, the rest is local.

    ``cobot_urls`` are the simulators of the locations, in ``LOCATIONS`` order; with more than
    one, every location is a space of ``cobot.spaces`` (read with one token) and the first
    worksheet is repeated, narrowed to the last location.
    """
    receiver = f"http://127.0.0.1:{listen_port}"
    spaces = [
        {"subdomain": subdomain, "access_token": COBOT_TOKEN, "base_url": url}
        for (subdomain, _, _), url in zip(LOCATIONS, cobot_urls, strict=False)
    ]
    cobot: dict[str, Any] = {"spaces": spaces} if len(spaces) > 1 else dict(spaces[0])
    return {
        "cobot": {**cobot, "requests_per_minute": 6000},  # the simulators' rate limit is off
        "webhook": {
            "listen": f"127.0.0.1:{listen_port}",
            "public_url": f"{receiver}/cobot",
            "secret": secrets.token_hex(16),
        },
        "google": {
            "service_account_file": str(workdir / "service-account.json"),
            "spreadsheet_id": SPREADSHEET_ID,
            "api_endpoint": sheets_url,
        },
        "state_dir": str(workdir / "state"),
        "sync": {"flush_interval_seconds": 0.5},
        # The simulated space has no history to heal, so scheduled re-syncs stay off.
        "resync": {"full_schedule": "off", "recent_schedule": "off"},
        **mapping,
        "sheets": _located(mapping["sheets"], len(spaces)),
    }


def _located(sheets: Any, locations: int) -> Any:
    """The user's worksheets without their ``spaces:`` (they name the user's own subdomains,
    which the demo has not), and with several locations the first one again, narrowed to the
    last location. Anything but worksheets is left for the config check to report."""
    if not isinstance(sheets, dict) or not all(isinstance(s, dict) for s in sheets.values()):
        return sheets
    located = {title: {k: v for k, v in s.items() if k != "spaces"} for title, s in sheets.items()}
    if locations > 1:
        subdomain, name, _ = LOCATIONS[locations - 1]
        title, sheet = next(iter(located.items()))
        located[f"{title} ({name})"] = {**sheet, "spaces": [subdomain]}
    return located


# -- the daemon subprocess ------------------------------------------------------------------


class DaemonProcess:
    """``python -m syncd run`` in its own session, so only the demo decides when it stops."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "syncd", "run", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise DemoError(
                f"the daemon stopped unexpectedly (exit {self.process.returncode}); "
                f"its last lines:\n{self.log_tail()}"
            )

    def stop(self) -> None:
        """SIGTERM (the daemon drains and exits 0), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# -- the sandboxes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sandboxes:
    """A Cobot simulator per location and the Sheets emulator, with a service account and a
    spreadsheet."""

    sims: list[CobotSimulator]
    emulator: SheetsEmulator
    cobots: list[ServerThread]
    sheets: ServerThread

    @classmethod
    def create(cls, workdir: Path, locations: int = 1) -> Sandboxes:
        """Set up all (not serving yet); the key file lands in ``workdir``."""
        sims = [
            CobotSimulator(
                tokens={COBOT_TOKEN: COBOT_APP},
                seed=seed,
                rate_limits=False,
                retry_time_scale=0.001,
            )
            for _, _, seed in LOCATIONS[:locations]
        ]
        cobots = [ServerThread(sim.app) for sim in sims]
        for sim, cobot in zip(sims, cobots, strict=True):
            sim.base_url = cobot.url
        emulator = SheetsEmulator()
        sheets = ServerThread(emulator.app())
        key = emulator.create_service_account(f"{sheets.url}/token")
        write_key_file(workdir / "service-account.json", key)
        emulator.create_spreadsheet(
            SPREADSHEET_ID, SPREADSHEET_TITLE, shared_with={key["client_email"]}
        )
        return cls(sims, emulator, cobots, sheets)

    def start(self, stack: contextlib.ExitStack) -> None:
        for server in (*self.cobots, self.sheets):
            server.start()
            stack.callback(server.stop)

    def days(self) -> list[Day]:
        """Each location's day: the first is the full one, the others are quieter."""
        if len(self.sims) == 1:
            return [Day(self.sims[0])]
        return [
            Day(sim, location=name, quiet=number > 0)
            for number, (sim, (_, name, _)) in enumerate(zip(self.sims, LOCATIONS, strict=False))
        ]


# -- the demo -------------------------------------------------------------------------------


class Demo:
    """Everything one ``syncd demo`` run starts, and its orderly shutdown."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.stop = threading.Event()
        self.feed = Feed()
        self.daemon: DaemonProcess | None = None

    def run(self) -> int:
        with stop_on_signals(self.stop), contextlib.ExitStack() as stack:
            if self.options.duration is not None:
                timer = threading.Timer(self.options.duration, self.stop.set)
                timer.daemon = True
                timer.start()
                stack.callback(timer.cancel)
            self._run(stack)
            _say("Stopping: the daemon drains, the sandboxes shut down, temporary files go.")
        _say("Stopped.")
        return 0

    def _run(self, stack: contextlib.ExitStack) -> None:
        label, mapping = mapping_of(self.options.config)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="syncd-demo-")))
        sandboxes = Sandboxes.create(workdir, self.options.spaces)
        cobot_urls = [cobot.url for cobot in sandboxes.cobots]
        config = demo_config(mapping, workdir, cobot_urls, sandboxes.sheets.url, free_port())
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        settings = self._settings(config_path, label)
        watcher = SheetWatcher(sandboxes.emulator, SPREADSHEET_ID, tabs_of(settings))
        view = self._start_view(stack, watcher)
        sandboxes.start(stack)
        self.daemon = DaemonProcess(config_path, workdir / "daemon.log")
        self.daemon.start()
        stack.callback(self.daemon.stop)
        if not self._wait_ready(sandboxes.sims, settings):
            return
        self._introduce(label, view.url, settings)
        if play(sandboxes.days(), self.feed, self._pause, self.options.speed):
            _say("The day is over; the view stays up until Ctrl-C" + self._until())
            while self._pause(3600):
                pass

    def _settings(self, path: Path, label: str) -> Settings:
        """The demo's config, with mapping problems reported against the user's file."""
        try:
            return load_settings(path)
        except ConfigError as exc:
            raise ConfigError(label, exc.problems) from None

    def _start_view(self, stack: contextlib.ExitStack, watcher: SheetWatcher) -> ServerThread:
        app = build_view_app(watcher, self.feed.snapshot)
        view = ServerThread(app, "127.0.0.1", self.options.port)
        try:
            view.start()
        except OSError as exc:
            view.stop()
            raise DemoError(
                f"cannot serve the sheet view on 127.0.0.1:{view.port} "
                f"({exc.strerror or exc}): pick another port with --port"
            ) from None
        stack.callback(view.stop)
        return view

    def _wait_ready(self, sims: Sequence[CobotSimulator], settings: Settings) -> bool:
        """Until the daemon answers /healthz and every location's simulator holds a
        subscription for each event of the worksheets that hold that location."""
        assert self.daemon is not None
        health = f"http://{settings.webhook.listen_host}:{settings.webhook.listen_port}/healthz"
        wanted = [
            {
                event
                for sheet in settings.sheets
                if sheet.holds(space.subdomain)
                for event in sheet.events
            }
            for space in settings.spaces
        ]
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            subscribed = [
                {s["event"] for s in sim.subscriptions(COBOT_APP) if s["active"]} for sim in sims
            ]
            if all(w <= a for w, a in zip(wanted, subscribed, strict=True)) and _answers(health):
                return True
            if not self._pause(0.2):
                return False
        raise DemoError(
            f"the daemon did not get ready within {READY_TIMEOUT_SECONDS:.0f} s; "
            f"its last lines:\n{self.daemon.log_tail()}"
        )

    def _pause(self, seconds: float) -> bool:
        """Sleep, watching the daemon; False as soon as the demo should stop."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if self.stop.wait(min(max(remaining, 0.0), 0.5)):
                return False
            if self.daemon is not None:
                self.daemon.check_alive()
            if remaining <= 0.5:
                return True

    def _introduce(self, label: str, url: str, settings: Settings) -> None:
        view = f"{url}/"
        _say(f"Sheet view:  {view}")
        _say(f"Mapping:     {label}")
        count = len(settings.spaces)
        if count > 1:
            places = [f"{name} ({sub})" for (sub, name, _) in LOCATIONS[:count]]
            _say(f"Locations:   {', '.join(places)}: one Cobot space each, one daemon")
            for sheet in settings.sheets:
                if sheet.spaces:
                    only = ", ".join(sheet.spaces)
                    _say(f"Narrowed:    {sheet.title} holds only {only} (spaces:)")
            _say("Every worksheet has the daemon's Space column: which location a row is from.")
        where = f"{count} coworking spaces" if count > 1 else "a coworking space"
        _say(f"A simulated day at {where} starts now; the real daemon syncs it.")
        _say("Press Ctrl-C to stop" + self._until() + ".")
        if self.options.open_browser and _has_display():
            webbrowser.open(view)
        self.feed.on_add = lambda clock, text: _say(f"  {clock}  {text}")

    def _until(self) -> str:
        duration = self.options.duration
        return f" (or it stops by itself after {duration:g} s)" if duration else ""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 503 while nothing is written yet still means it is up
    except OSError:
        return False


def _has_display() -> bool:
    """Only open a browser where one can show up (never a text browser in this terminal)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _say(text: str) -> None:
    print(text, flush=True)
