"""A minimal sd_notify client, so systemd knows when the daemon is up, alive and stopping.

The unit runs the daemon as ``Type=notify`` with ``WatchdogSec=``: systemd considers the
service started only after ``READY=1`` and restarts it when the ``WATCHDOG=1`` pings stop.
The protocol is one datagram of newline-separated ``KEY=value`` lines sent to the AF_UNIX
socket named by ``$NOTIFY_SOCKET`` (see sd_notify(3)); it is small enough not to warrant a
dependency. Outside systemd (a terminal, the tests, a container) ``$NOTIFY_SOCKET`` is unset
and every call does nothing.

Notification is best effort by design: a failure to reach systemd must never take down the
sync itself, so no method raises. The first failure is logged as a warning, later ones only
at debug level, to keep a persistent problem from flooding the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("syncd.notify")

#: How often ``watchdog_loop`` refreshes STATUS when systemd's watchdog is not enabled.
STATUS_ONLY_PERIOD_SECONDS = 30.0
#: A send to a stalled systemd must not block the event loop for long.
SEND_TIMEOUT_SECONDS = 1.0


class SystemdNotifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET``; a no-op when it is not set.

    The environment is read once, at construction, the way systemd hands it over; ``environ``
    exists so tests can pass their own.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        """Whether the process runs under a supervisor that listens for notifications."""
        return self._address is not None

    # -- the messages ------------------------------------------------------------------

    def ready(self, status: str = "") -> None:
        """Start-up is complete: the receiver listens and the inbox is open."""
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        """A one-line summary that ``systemctl status`` shows."""
        self._send(None, text)

    def watchdog(self) -> None:
        """Keep-alive: systemd restarts the service when these stop for ``WatchdogSec``.

        Skipped when ``$WATCHDOG_PID`` names another process: then the watchdog is meant for
        that one (e.g. our parent), and our pings would hide its hang.
        """
        if self._watchdog_is_ours():
            self._send("WATCHDOG=1", None)

    def stopping(self, status: str = "") -> None:
        """Shutdown has begun; systemd then waits up to ``TimeoutStopSec`` for the drain."""
        self._send("STOPPING=1", status)

    def watchdog_interval(self) -> float | None:
        """Recommended ping period in seconds (half of ``$WATCHDOG_USEC``), or None if off.

        Half the timeout, as sd_watchdog_enabled(3) advises, so that one late ping (a slow
        flush, a busy event loop) does not trigger a restart.
        """
        if not self._watchdog_is_ours():
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 2 / 1_000_000

    def close(self) -> None:
        """Release the socket; later calls open a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- internals ---------------------------------------------------------------------

    def _watchdog_is_ours(self) -> bool:
        if not self._watchdog_pid:
            return True
        try:
            return int(self._watchdog_pid) == os.getpid()
        except ValueError:
            return False

    def _send(self, flag: str | None, status: str | None) -> None:
        if self._address is None:
            return
        lines = [flag] if flag else []
        if status:
            # One message is newline-separated assignments: a newline in the text would end
            # STATUS early and start a bogus assignment.
            lines.append("STATUS=" + " ".join(status.split()))
        if not lines:
            return
        payload = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.settimeout(SEND_TIMEOUT_SECONDS)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            self.close()
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot notify systemd at %s (%s); the service may be restarted by its "
                    "watchdog or be reported as not started",
                    _printable(self._address),
                    exc.strerror or exc,
                )
            else:
                log.debug("cannot notify systemd: %s", exc)


def _socket_address(value: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as a ``sendto`` address: a path, or ``@name`` for the abstract
    namespace (whose address starts with a NUL byte). Other schemes (``vsock:``, used for
    virtual machines) are not ours to serve and count as unset."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    if value:
        log.debug("ignoring unsupported NOTIFY_SOCKET %r", value)
    return None


def _printable(address: str | bytes) -> str:
    if isinstance(address, bytes):
        return "@" + address[1:].decode(errors="replace")
    return address


async def watchdog_loop(
    notifier: SystemdNotifier,
    is_healthy: Callable[[], Awaitable[bool]],
    stop: asyncio.Event,
    summary: Callable[[], str | Awaitable[str]] | None = None,
    *,
    period: float | None = None,
) -> None:
    """Ping systemd's watchdog while ``is_healthy()`` says so, until ``stop`` is set.

    Pinging from a timer alone would only prove that the event loop turns; asking
    ``is_healthy`` first means a daemon whose core is wedged (the inbox unreachable, the
    worker dead) stops pinging and is restarted by systemd after ``WatchdogSec``. A health
    check that raises or takes longer than one period counts as unhealthy. A blocked event
    loop needs no check: then this coroutine cannot run and the pings stop by themselves.

    ``summary``, if given, is called each period and its text set as STATUS. ``period``
    overrides the interval derived from ``$WATCHDOG_USEC``; without either, only STATUS is
    refreshed (every 30 s), and without a summary there is nothing to do.
    """
    interval = period if period is not None else notifier.watchdog_interval()
    pinging = interval is not None
    if interval is None:
        if summary is None or not notifier.enabled:
            return
        interval = STATUS_ONLY_PERIOD_SECONDS
    withholding = False
    while not stop.is_set():
        if pinging:
            healthy = await _check(is_healthy, interval)
            if healthy:
                if withholding:
                    log.info("healthy again; resuming the systemd watchdog pings")
                    withholding = False
                notifier.watchdog()
            elif not withholding:
                withholding = True
                log.warning(
                    "unhealthy: withholding the systemd watchdog ping, so the service is "
                    "restarted unless it recovers in time"
                )
        if summary is not None:
            text = await _summary_text(summary, interval)
            if text:
                notifier.status(text)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _check(is_healthy: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    try:
        return bool(await asyncio.wait_for(is_healthy(), timeout))
    except TimeoutError:
        log.warning("the health check took longer than %.1f s", timeout)
        return False
    except Exception:
        log.warning("the health check failed", exc_info=True)
        return False


async def _summary_text(summary: Callable[[], str | Awaitable[str]], timeout: float) -> str:
    """The summary text, or "" if it fails or hangs: STATUS is cosmetic, the pings are not."""
    try:
        value = summary()
        if inspect.isawaitable(value):
            value = await asyncio.wait_for(value, timeout)
        return str(value)
    except Exception:
        log.debug("the status summary failed", exc_info=True)
        return ""
