"""Cobot's documented webhook events and sample resources, as snapshots kept in the repository.

The tests read the snapshots under tests/data/, so a fresh clone checks every documented event
without Cobot's documentation beside it; ``parse_webhook_doc`` reads the documentation itself,
for the drift check that runs when the text is present.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
EVENTS_SNAPSHOT = DATA / "cobot_events.json"
SAMPLES_SNAPSHOT = DATA / "cobot_samples.json"
#: Cobot's webhook documentation and reference samples, where a checkout has them beside it.
WEBHOOK_DOC = Path(__file__).resolve().parents[2] / "shared" / "cobot-webhooks.txt"
REFERENCE_SAMPLES = Path(__file__).resolve().parents[2] / "shared/reference/cobot-samples.json"

_EVENT_NAME = re.compile(r"[a-z]+(?:_[a-z]+)+")


def documented_webhooks() -> list[dict[str, Any]]:
    """Each documented event with its example body (None where the doc shows none), in doc order.

    An event may appear twice: the doc lists deleted_admin once for admins and once for wifi
    guest accounts.
    """
    entries: list[dict[str, Any]] = json.loads(EVENTS_SNAPSHOT.read_text())["events"]
    return entries


def documented_events() -> set[str]:
    return {entry["event"] for entry in documented_webhooks()}


def reference_samples() -> dict[str, Any]:
    samples: dict[str, Any] = json.loads(SAMPLES_SNAPSHOT.read_text())
    return samples


def parse_webhook_doc(text: str) -> list[dict[str, Any]]:
    """The "Event Callbacks" section as snapshot entries: a name line, then "Is triggered ..."."""
    lines = text[text.index("Event Callbacks") :].splitlines()
    starts = [
        i
        for i in range(len(lines) - 1)
        if _EVENT_NAME.fullmatch(lines[i].strip()) and lines[i + 1].startswith("Is triggered")
    ]
    entries = []
    for n, start in enumerate(starts):
        block = lines[start + 1 : starts[n + 1] if n + 1 < len(starts) else len(lines)]
        entries.append({"event": lines[start].strip(), "body": _example_body(block)})
    return entries


def _example_body(block: list[str]) -> Any:
    """The JSON between "Body:" and "Sends the ...", or None when the doc gives no body."""
    body_at = next((i for i, line in enumerate(block) if line.startswith("Body:")), None)
    if body_at is None:
        return None
    end = next((i for i, line in enumerate(block) if line.startswith("Sends the")), len(block))
    return json.loads("\n".join(block[body_at + 1 : end]))
