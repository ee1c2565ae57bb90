"""The session-wide guard of tests/fixtures_secrets.py fails a run that logged a test secret."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fixtures_daemon import REPO

INNER_TESTS = """
import logging

from tests.fixtures_cobot import COBOT_TOKEN
from tests.fixtures_daemon import WEBHOOK_SECRET

log = logging.getLogger("syncd.inner")


def test_sends_but_never_logs_a_secret():
    log.warning("posting to the callback with the secret masked")
    assert WEBHOOK_SECRET not in "nothing logged"


def test_logs_the_token():
    log.warning("fetching with token %s", COBOT_TOKEN)


def test_logs_key_material_after_the_root_handlers_were_replaced():
    logging.getLogger().handlers[:] = [logging.NullHandler()]  # as configure_logging does
    logging.getLogger("syncd.inner").info("key -----BEGIN PRIVATE KEY-----")
"""


def test_a_logged_secret_fails_the_session_and_names_the_test(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-p", "tests.fixtures_secrets", "--log-level=INFO", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    out = result.stdout
    assert "3 passed" in out, out
    assert result.returncode == 1, out
    assert "test secrets found in log records" in out
    # Node ids are relative to the rootdir, which depends on where the checkout lives.
    found = out[out.index("test secrets found in log records") :].splitlines()[1:3]
    leaks = [re.sub(r"^\S*?test_inner\.py", "test_inner.py", line) for line in found]
    assert leaks == [
        "test_inner.py::test_logs_the_token: the Cobot token in a WARNING record of syncd.inner",
        "test_inner.py::test_logs_key_material_after_the_root_handlers_were_replaced: "
        "private-key material in a INFO record of syncd.inner",
    ]
    assert "test_sends_but_never_logs_a_secret" not in out
