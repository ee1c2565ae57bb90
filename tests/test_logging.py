"""Logging: one JSON object per line, structured fields, secrets masked, one line per outcome."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from syncd.core.redaction import REDACTED
from syncd.ops.logs import JsonFormatter, RedactingFilter
from tests.fixtures_daemon import MakeDaemon, json_lines
from tests.test_e2e_pipeline import fast_daemon, settle
from tests.test_health_metrics import send_rejected_webhooks

UNIT_SECRET = "unit-test-secret-5f0e1d"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines through the redacting filter into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter([UNIT_SECRET, "short"]))
    logger = logging.getLogger("tests.logging.unit")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_json_lines_merge_fields_and_keep_multiline_text_on_one_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("flush: %d done\nsecond line", 3, extra={"fields": {"done": 3, "sheet": "Members"}})
    try:
        raise ValueError("broken")
    except ValueError:
        logger.exception("it failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "flush: 3 done\nsecond line"
    assert (first["level"], first["logger"], first["done"], first["sheet"]) == (
        "info",
        "tests.logging.unit",
        3,
        "Members",
    )
    assert first["ts"].endswith("Z")
    assert second["level"] == "error"
    assert "ValueError: broken" in second["exc"]


def test_secrets_are_masked_in_message_arguments_fields_and_tracebacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.warning("token %s in args", UNIT_SECRET, extra={"fields": {"url": f"/x/{UNIT_SECRET}"}})
    try:
        raise RuntimeError(f"GET /cobot/{UNIT_SECRET}/created_membership")
    except RuntimeError:
        logger.exception("request failed")
    logger.info("a short word stays: short")  # too short to be a secret worth masking
    text = stream.getvalue()
    assert UNIT_SECRET not in text
    warning, error, info = (json.loads(line) for line in text.splitlines())
    assert warning["msg"] == f"token {REDACTED} in args"
    assert warning["url"] == f"/x/{REDACTED}"
    assert f"GET /cobot/{REDACTED}/created_membership" in error["exc"]
    assert info["msg"] == "a short word stays: short"


def by_logger(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == name]


@pytest.mark.e2e
def test_one_json_line_per_webhook_outcome_and_per_flush(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon, extra={"logging": {"format": "json"}}).start()
    sim = daemon.cobot.sim
    log_start = len(daemon.log_path.read_text())
    members = [sim.create("membership", emit=["created_membership"]) for _ in range(3)]
    sim.create("invoice", member=members[0]["id"], emit=["created_invoice"])
    settle(daemon)
    send_rejected_webhooks(daemon)
    assert requests.get(f"{daemon.url}/healthz", timeout=5).status_code == 200
    assert daemon.stop() == 0

    text = daemon.logs()
    assert all(line.startswith("{") for line in text.splitlines() if line), text
    lines = json_lines(daemon.log_path.read_text()[log_start:])
    receiver = by_logger(lines, "syncd.receiver")
    stored = [line for line in receiver if " stored as event " in line["msg"]]
    refused = [line for line in receiver if " refused with " in line["msg"]]
    assert len(stored) == 4 and len(refused) == 4 and len(receiver) == 8
    assert {line["msg"].split("(")[1].split(")")[0] for line in refused} == {
        "bad_secret",
        "gone_event",
        "bad_body",
        "bad_url",
    }

    flushes = [
        line for line in by_logger(lines, "syncd.worker") if line["msg"].startswith("flush:")
    ]
    assert flushes
    for flush in flushes:
        assert {"events", "urls", "done", "retry", "rows", "sheets_requests", "duration"} <= set(
            flush
        )
    assert sum(flush["done"] for flush in flushes) == 4
    assert sum(flush["rows"] for flush in flushes) == 4
    assert all(flush["sheets_requests"] >= 2 for flush in flushes if flush["rows"])

    writes = [line for line in by_logger(lines, "syncd.sheets") if "duration" in line]
    assert {line["sheet"] for line in writes} == {"Members", "Invoices"}
    assert sum(line["appended"] + line["updated"] for line in writes) == 4
    # Each request is counted once: by a worksheet's own line, or by the first of those that
    # shared it.
    for line in writes:
        shared = [w for w in writes if line["sheet"] in w["shared_with"]]
        counted = [line, *shared]
        assert any(w["reads"] >= 1 for w in counted) and any(w["writes"] >= 1 for w in counted)
