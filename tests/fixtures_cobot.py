"""Pytest fixtures that run the Cobot simulator on loopback.

Register with `pytest_plugins = ["tests.fixtures_cobot"]`. `cobot_sim` has Cobot's real rate
limits; override knobs per test with `@pytest.mark.parametrize("cobot_sim", [{...}],
indirect=True)` or build more simulators with `make_cobot_sim(**knobs)`. Webhook retries run
at 1/100000 of Cobot's pace (about 0.7 s from first try to deactivation) so a failing receiver
does not stall a test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from syncd.sandbox.cobot.server import CobotSimulator
from syncd.sandbox.servers import ServerThread

COBOT_TOKEN = "test-cobot-token-0123456789"
COBOT_APP = "cobot-syncd"
FAST_RETRIES = 1e-5


@dataclass
class CobotSandbox:
    """A running simulator: `url` is what the daemon's `cobot.base_url` should be."""

    sim: CobotSimulator
    server: ServerThread
    token: str

    @property
    def url(self) -> str:
        return self.server.url


MakeCobotSim = Callable[..., CobotSandbox]


def start_cobot_sandbox(**knobs: Any) -> CobotSandbox:
    """A running simulator with the test token and fast retries; stop its `server` after use."""
    knobs.setdefault("tokens", {COBOT_TOKEN: COBOT_APP})
    knobs.setdefault("retry_time_scale", FAST_RETRIES)
    knobs.setdefault("delivery_timeout_seconds", 5.0)
    sim = CobotSimulator(**knobs)
    server = ServerThread(sim.app)
    sim.base_url = server.url
    server.start()
    return CobotSandbox(sim, server, next(iter(sim.tokens)))


@pytest.fixture
def make_cobot_sim() -> Iterator[MakeCobotSim]:
    """Start simulators with any CobotSimulator knobs; all are stopped after the test."""
    running: list[CobotSandbox] = []

    def make(**knobs: Any) -> CobotSandbox:
        sandbox = start_cobot_sandbox(**knobs)
        running.append(sandbox)
        return sandbox

    yield make
    for sandbox in reversed(running):
        sandbox.server.stop()


@pytest.fixture
def cobot_sim(request: pytest.FixtureRequest, make_cobot_sim: MakeCobotSim) -> CobotSandbox:
    """One simulator; indirect parametrization passes a dict of knobs."""
    return make_cobot_sim(**getattr(request, "param", {}))
