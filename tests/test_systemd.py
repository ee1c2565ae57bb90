"""The systemd unit (verified and security-rated by systemd-analyze) and the sd_notify client.

The unit tests need ``systemd-analyze`` (Debian package ``systemd``) but no running systemd:
``verify`` and ``security --offline=yes`` only read unit files. The notify tests talk to a
real AF_UNIX datagram socket standing in for systemd's notification socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.ops.notify import SystemdNotifier, watchdog_loop

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "cobot-syncd.service"
README = ROOT / "systemd" / "README.md"
MAX_EXPOSURE = 2.0

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian: apt-get install -y systemd)",
)


# --------------------------------------------------------------------------------------------
# The unit
# --------------------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, values in file order (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert match, value
    return float(match.group(1)) * units[match.group(2) or "s"]


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart binary exists on this machine.

    ``systemd-analyze verify`` rejects a unit whose executable is missing, and
    /opt/cobot-syncd is not installed here, so the copy runs this environment's ``syncd``
    (or /bin/true) with the same arguments. Nothing else changes. The unit uses
    DynamicUser=yes, so no account has to exist for verify to pass.
    """
    binary = Path(sys.executable).with_name("syncd")
    if not binary.exists():
        binary = Path("/bin/true")
    text = UNIT.read_text()
    rewritten, count = re.subn(
        r"^ExecStart=/opt/cobot-syncd/bin/syncd ", f"ExecStart={binary} ", text, flags=re.M
    )
    assert count == 1, "ExecStart no longer starts /opt/cobot-syncd/bin/syncd"
    copy = tmp_path / UNIT.name
    copy.write_text(rewritten)
    return copy


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(verifiable_unit: Path) -> None:
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(verifiable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, output
    # verify exits 0 on an unknown or misplaced key and only warns: any line about our unit
    # is a mistake in it.
    ours = [line for line in output.splitlines() if UNIT.name in line]
    assert not ours, "\n".join(ours)


@needs_systemd_analyze
def test_unit_security_exposure_is_low() -> None:
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, output
    exposure = float(match.group(1))
    print(f"systemd-analyze security: overall exposure {exposure} (limit {MAX_EXPOSURE})")
    assert exposure <= MAX_EXPOSURE, output


def test_unit_runs_the_daemon_as_a_notify_service() -> None:
    unit = unit_settings()
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecStart"] == [
        "/opt/cobot-syncd/bin/syncd run --config /etc/cobot-syncd/config.yaml --log-format json"
    ]
    assert unit["Restart"] == ["on-failure"]
    assert seconds(unit["WatchdogSec"][0]) >= 30


def test_stop_timeout_covers_the_bounded_drain() -> None:
    """systemd must not SIGKILL the daemon while it is still allowed to finish a flush."""
    from syncd.ops.daemon import DRAIN_TIMEOUT_SECONDS

    stop_timeout = seconds(unit_settings()["TimeoutStopSec"][0])
    assert stop_timeout >= DRAIN_TIMEOUT_SECONDS + 10


def test_every_credential_is_documented_for_the_config() -> None:
    """The README's config lines must use exactly the credential names the unit loads."""
    names = [value.split(":", 1)[0] for value in unit_settings()["LoadCredential"]]
    assert sorted(names) == ["cobot-token", "service-account.json", "webhook-secret"]
    readme = README.read_text()
    for name in names:
        assert f"${{CREDENTIALS_DIRECTORY}}/{name}" in readme, name


# --------------------------------------------------------------------------------------------
# sd_notify
# --------------------------------------------------------------------------------------------


class Listener:
    """A stand-in for systemd's notification socket."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address

    def receive(self, timeout: float = 2.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        """Every datagram that has arrived so far, without waiting."""
        self.sock.setblocking(False)
        messages = []
        while True:
            try:
                messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return messages


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify"
    # sun_path holds 107 bytes; pytest's tmp_path is far shorter under /tmp.
    assert len(os.fsencode(path)) < 108, path
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield Listener(sock, str(path))
    finally:
        sock.close()


def test_messages_arrive_in_order(listener: Listener) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": listener.address})
    assert notifier.enabled
    notifier.ready("listening on 127.0.0.1:8080")
    notifier.status("3 pending, 0 dead")
    notifier.watchdog()
    notifier.stopping("draining")
    notifier.close()
    assert [listener.receive() for _ in range(4)] == [
        "READY=1\nSTATUS=listening on 127.0.0.1:8080",
        "STATUS=3 pending, 0 dead",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=draining",
    ]


def test_ready_and_stopping_without_status(listener: Listener) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": listener.address})
    notifier.ready()
    notifier.stopping()
    assert [listener.receive(), listener.receive()] == ["READY=1", "STOPPING=1"]


def test_status_cannot_inject_assignments(listener: Listener) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": listener.address})
    notifier.status("error:\nREADY=1")
    assert listener.receive() == "STATUS=error: READY=1"


def test_abstract_namespace_socket() -> None:
    name = f"cobot-syncd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        notifier = SystemdNotifier({"NOTIFY_SOCKET": f"@{name}"})
        notifier.ready("up")
        notifier.watchdog()
        sock.settimeout(2.0)
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_reads_the_process_environment(listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
    SystemdNotifier().ready()
    assert listener.receive() == "READY=1"


def test_no_op_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    for notifier in (SystemdNotifier(), SystemdNotifier({"NOTIFY_SOCKET": ""})):
        assert not notifier.enabled
        notifier.ready("up")
        notifier.status("x")
        notifier.watchdog()
        notifier.stopping("down")
        assert notifier._sock is None


def test_unsupported_socket_kind_is_ignored() -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    notifier.ready()


def test_failure_never_raises_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.DEBUG, logger="syncd.notify"):
        notifier.ready("up")
        notifier.watchdog()
        notifier.stopping()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot notify systemd" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "junk"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "sixty"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert SystemdNotifier(environ).watchdog_interval() == expected


def test_watchdog_meant_for_another_process_is_not_pinged(listener: Listener) -> None:
    other = SystemdNotifier(
        {
            "NOTIFY_SOCKET": listener.address,
            "WATCHDOG_USEC": "60000000",
            "WATCHDOG_PID": str(os.getpid() + 1),
        }
    )
    other.watchdog()
    other.status("still reported")
    assert listener.receive() == "STATUS=still reported"


class Health:
    """Healthy for the first ``healthy_calls`` checks, unhealthy afterwards."""

    def __init__(self, healthy_calls: int) -> None:
        self.healthy_calls = healthy_calls
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        return self.calls <= self.healthy_calls


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_watchdog_loop_pings_only_while_healthy(listener: Listener) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "100000"})
    assert notifier.watchdog_interval() == 0.05
    health = Health(healthy_calls=3)
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog_loop(notifier, health, stop))
    await wait_until(lambda: health.calls >= 8)
    stop.set()
    await asyncio.wait_for(task, 1.0)
    assert listener.pending() == ["WATCHDOG=1"] * 3


async def test_watchdog_loop_resumes_when_healthy_again(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    answers = [True, False, False, True]
    notifier = SystemdNotifier({"NOTIFY_SOCKET": listener.address})
    stop = asyncio.Event()
    calls = 0

    async def is_healthy() -> bool:
        nonlocal calls
        calls += 1
        return answers[calls - 1] if calls <= len(answers) else False

    with caplog.at_level(logging.INFO, logger="syncd.notify"):
        task = asyncio.create_task(watchdog_loop(notifier, is_healthy, stop, period=0.02))
        await wait_until(lambda: calls >= 6)
        stop.set()
        await asyncio.wait_for(task, 1.0)
    # Pinged after the first and the fourth check only.
    assert listener.pending() == ["WATCHDOG=1", "WATCHDOG=1"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("withholding" in m for m in messages) == 2
    assert sum("healthy again" in m for m in messages) == 1


async def test_watchdog_loop_reports_the_summary(listener: Listener) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": listener.address})
    health = Health(healthy_calls=1)
    stop = asyncio.Event()
    summaries = iter(["2 pending", "1 pending"])

    async def summary() -> str:
        return next(summaries, "idle")

    task = asyncio.create_task(watchdog_loop(notifier, health, stop, summary, period=0.02))
    await wait_until(lambda: health.calls >= 2)
    stop.set()
    await asyncio.wait_for(task, 1.0)
    assert listener.pending()[:3] == ["WATCHDOG=1", "STATUS=2 pending", "STATUS=1 pending"]


async def test_a_failing_or_hanging_health_check_withholds_the_ping(
    listener: Listener,
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": listener.address})
    calls = 0

    async def broken() -> bool:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise RuntimeError("inbox unreachable")
        await asyncio.sleep(3600)
        return True

    stop = asyncio.Event()
    task = asyncio.create_task(watchdog_loop(notifier, broken, stop, period=0.02))
    await wait_until(lambda: calls >= 4)
    stop.set()
    await asyncio.wait_for(task, 1.0)
    assert listener.pending() == []


async def test_watchdog_loop_without_watchdog_or_summary_returns_at_once() -> None:
    notifier = SystemdNotifier({})
    await asyncio.wait_for(watchdog_loop(notifier, Health(1), asyncio.Event()), 1.0)


async def test_watchdog_loop_stops_promptly(listener: Listener) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "60000000"})
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog_loop(notifier, Health(10), stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 1.0)
    assert listener.pending() == ["WATCHDOG=1"]
