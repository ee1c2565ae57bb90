"""The snapshots under tests/data/ still say what Cobot's documentation says.

The rest of the suite reads only the snapshots; this check compares them with the documentation
and reference samples where a checkout has them beside it, so drift shows up as one failing test.
"""

from __future__ import annotations

import json

import pytest

from tests.cobot_docs import (
    REFERENCE_SAMPLES,
    WEBHOOK_DOC,
    documented_webhooks,
    parse_webhook_doc,
    reference_samples,
)


@pytest.mark.skipif(
    not WEBHOOK_DOC.exists(), reason="Cobot's webhook doc is not beside the checkout"
)
def test_event_snapshot_matches_the_webhook_doc() -> None:
    assert parse_webhook_doc(WEBHOOK_DOC.read_text()) == documented_webhooks()


@pytest.mark.skipif(not REFERENCE_SAMPLES.exists(), reason="reference samples are not beside it")
def test_sample_snapshot_matches_the_reference_samples() -> None:
    assert json.loads(REFERENCE_SAMPLES.read_text()) == reference_samples()


def test_parser_reads_names_bodies_and_missing_bodies() -> None:
    doc = "\n".join(
        [
            "Intro",
            "Event Callbacks",
            "created_thing",
            "Is triggered when a thing is made.",
            "Body:",
            '{"url": "https://x.cobot.me/api/things/1",',
            '"thing": {"id": "1"}}',
            "Sends the URL of the thing.",
            "removed_thing",
            "Is triggered when a thing goes.",
        ]
    )
    assert parse_webhook_doc(doc) == [
        {
            "event": "created_thing",
            "body": {"url": "https://x.cobot.me/api/things/1", "thing": {"id": "1"}},
        },
        {"event": "removed_thing", "body": None},
    ]
