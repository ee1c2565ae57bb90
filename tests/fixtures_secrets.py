"""Session-wide guard: no log record of the test process may carry a well-known test secret.

Registered in tests/conftest.py. One handler, on the root logger and on the ``syncd`` logger
(code under test may replace the root's handlers, as ``configure_logging`` does), looks at
every record as it is emitted. At the end of the session the run fails, naming the tests, if
any record carried the Cobot token, the webhook secret or private-key material, even one the
redacting filter would have masked later: that filter is the second line of defence, not a
licence to log secrets. Tests may send these secrets in requests on purpose; they must just
never reach a log record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import pytest

from tests.fixtures_cobot import COBOT_TOKEN
from tests.fixtures_daemon import WEBHOOK_SECRET

#: What each secret is called in the report -> the text that must never be logged.
TEST_SECRETS: Mapping[str, str] = {
    "the Cobot token": COBOT_TOKEN,
    "the webhook secret": WEBHOOK_SECRET,
    # Any PEM private key (the sandbox service account's is generated per session).
    "private-key material": "PRIVATE KEY-----",
}


class SecretLeakHandler(logging.Handler):
    """Records which test logged which secret; never formats or stores the records."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        super().__init__(logging.NOTSET)
        self.secrets = dict(secrets)
        self.test = "(outside any test)"
        self.leaks: list[str] = []
        self._last: logging.LogRecord | None = None

    def attach(self) -> None:
        for name in ("", "syncd"):
            logger = logging.getLogger(name)
            if self not in logger.handlers:
                logger.addHandler(self)

    def detach(self) -> None:
        for name in ("", "syncd"):
            logging.getLogger(name).removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record is self._last:  # the same record, reaching the root after ``syncd``
            return
        self._last = record
        text = _record_text(record)
        for name, secret in self.secrets.items():
            if secret in text:
                self.leaks.append(
                    f"{self.test}: {name} in a {record.levelname} record of {record.name}"
                )


def _record_text(record: logging.LogRecord) -> str:
    """Everything a formatter could print: the message, structured fields, the traceback."""
    try:
        parts = [record.getMessage()]
    except Exception:  # a broken format string still must not hide a secret
        parts = [str(record.msg), repr(record.args)]
    fields = getattr(record, "fields", None)
    if fields is not None:
        parts.append(json.dumps(fields, default=str))
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    return "\n".join(parts)


_guard = SecretLeakHandler(TEST_SECRETS)


def pytest_sessionstart(session: pytest.Session) -> None:
    _guard.attach()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _guard.test = item.nodeid
    _guard.attach()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _guard.detach()
    if _guard.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _guard.leaks:
        return
    terminalreporter.write_sep("=", "test secrets found in log records", red=True)
    for leak in dict.fromkeys(_guard.leaks):
        terminalreporter.write_line(leak)
