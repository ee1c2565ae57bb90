"""Logging set-up: readable lines by default, JSON for journald/collectors, secrets masked."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable

from syncd.core.redaction import Redactor


class RedactingFilter(logging.Filter):
    """Masks every known secret in a record's final message, fields and traceback."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.redactor = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; fields passed with ``extra={"fields": {...}}`` are merged."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "info", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter at INFO would drown the daemon's own one-line-per-step log.
    for noisy in ("aiohttp.access", "urllib3", "google", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
