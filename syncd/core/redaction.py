"""Masking secrets in text that leaves the process: log lines, the event log, `syncd status`.

Code never shows a secret on purpose; this is the second line of defence for the one that
slips through (an error quoting a URL with the webhook secret, a token echoed by a server).
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "***"
#: Shorter values (an empty previous secret, a placeholder) would mask ordinary words.
MIN_SECRET_LENGTH = 6


class Redactor:
    """Replaces every known secret in a text with ``***``, longest secret first."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
