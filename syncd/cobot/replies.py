"""Reading Cobot's answers: bodies into plain JSON values, refusals into errors a person can act on.

Every message built here names what to fix and never contains the access token, even where
Cobot echoes it back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from syncd.cobot.errors import (
    CobotAuthError,
    CobotForbidden,
    CobotMisdirected,
    CobotRefused,
    CobotRequestError,
    CobotSpaceSuspended,
    CobotUnavailable,
)
from syncd.config.settings import CobotSettings

#: Scopes the daemon's token needs for the resources it syncs and for managing webhooks.
NEEDED_SCOPES = (
    "read_memberships",
    "read_invoices",
    "read_bookings",
    "read_check_ins",
    "read_subscriptions",
    "write_subscriptions",
)
_SCOPE_NAME = re.compile(r"\b(?:read|write)_[a-z_]+\b")
_EXCERPT_LENGTH = 300

JSONObject = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """One answer from Cobot, read completely: status, parsed JSON (None if none) and text."""

    status: int
    data: Any
    text: str
    retry_after: float | None
    #: When the request was sent (epoch seconds): the answer is Cobot's state at or after it.
    sent_at: float


def parse_json(text: str) -> Any:
    """The body as JSON, or None when it is empty or not JSON (a proxy's error page, say)."""
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def expect_object(reply: Reply, label: str) -> JSONObject:
    if not isinstance(reply.data, dict):
        raise unexpected(label, "a JSON object")
    return reply.data


def expect_list(reply: Reply, label: str) -> list[JSONObject]:
    if not isinstance(reply.data, list) or not all(isinstance(i, dict) for i in reply.data):
        raise unexpected(label, "a JSON array of objects")
    return reply.data


def unexpected(label: str, expected: str) -> CobotUnavailable:
    """A 2xx with a body Cobot never sends: most likely a proxy's page, so retry later."""
    return CobotUnavailable(f"Cobot's answer to {label} is not {expected}; will retry later")


def flatten_json_api(document: JSONObject, label: str) -> JSONObject:
    """API 2's ``{"data": {"id", "type", "attributes"}}`` as one flat object for mapping."""
    data = document.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("attributes", {}), dict):
        raise unexpected(label, "a JSON:API resource document")
    return {**data.get("attributes", {}), "id": data.get("id"), "type": data.get("type")}


def refusal(label: str, reply: Reply, settings: CobotSettings) -> CobotRequestError:
    """The exception for a status retrying cannot fix, with what to do about it."""
    status = reply.status
    if 300 <= status < 400:
        return CobotMisdirected(
            f"Cobot answered {label} with a redirect ({status}), which is never followed "
            f"(the token would travel along); check cobot.subdomain and cobot.base_url",
            status=status,
        )
    if status == 401:
        return CobotAuthError(
            "Cobot rejected the access token (401): it is wrong, expired or was revoked. "
            "Create a new token for a space admin with the scopes "
            f"{', '.join(NEEDED_SCOPES)}, put it into cobot.access_token "
            "(or cobot.access_token_file) and restart",
            status=401,
        )
    if status == 402:
        return CobotSpaceSuspended(
            f"Cobot answered 402 to {label}: the space {settings.subdomain!r} is "
            "suspended (its Cobot plan is unpaid); its data can be read again once the "
            "space is reactivated",
            status=402,
        )
    if status == 403:
        return _forbidden(label, reply)
    return CobotRefused(
        f"Cobot answered {status} to {label}: {error_text(reply, settings)}", status=status
    )


def _forbidden(label: str, reply: Reply) -> CobotForbidden:
    scope = _SCOPE_NAME.search(reply.text)
    missing = scope.group(0) if scope else None
    reason = (
        f"the token lacks the scope {missing}"
        if missing
        else "the token lacks a scope, or its user is no longer an admin of the space"
    )
    return CobotForbidden(
        f"Cobot denied {label} (403): {reason}. The daemon needs a space admin's token "
        f"with the scopes {', '.join(NEEDED_SCOPES)} (plus read_* for any other synced "
        "resource)",
        missing_scope=missing,
    )


def error_text(reply: Reply, settings: CobotSettings) -> str:
    """Cobot's own words about an error, short, and never containing the token."""
    errors = reply.data.get("errors") if isinstance(reply.data, dict) else None
    text = _describe_errors(errors) if errors else reply.text
    text = " ".join(text.split()) or "(no details)"
    token = settings.access_token.reveal()
    if token:
        text = text.replace(token, "***")
    return text[:_EXCERPT_LENGTH]


def _describe_errors(errors: Any) -> str:
    """Cobot's ``errors``: a string (v1), a field -> messages map, or JSON:API objects."""
    if isinstance(errors, dict):
        return "; ".join(f"{key} {_describe_errors(value)}" for key, value in errors.items())
    if isinstance(errors, list):
        parts = [(e.get("detail") or e.get("title")) if isinstance(e, dict) else e for e in errors]
        return ", ".join(str(part) for part in parts if part)
    return str(errors)
