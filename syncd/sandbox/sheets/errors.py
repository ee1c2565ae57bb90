"""Errors in the two shapes Google answers with, so clients parse them as they would Google's.

The Sheets API wraps errors as ``{"error": {"code", "message", "status"}}``; the OAuth2 token
endpoint uses ``{"error", "error_description"}``. Client code branches on both.
"""

from __future__ import annotations

from typing import Any

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    409: "The operation was aborted.",
    500: "Internal error encountered.",
    502: "Bad Gateway",
    503: "The service is currently unavailable.",
    504: "The request timed out. Please try again.",
}


class ApiError(Exception):
    """An error the API reports as ``{"error": {"code", "message", "status"}}``."""

    def __init__(self, code: int, message: str | None = None, details: list[Any] | None = None):
        self.code = code
        self.message = message or _DEFAULT_MESSAGES.get(code, "Error")
        self.details = details
        super().__init__(f"{code} {self.message}")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": _STATUS_NAMES.get(self.code, "UNKNOWN"),
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def prefixed(self, prefix: str) -> ApiError:
        return ApiError(self.code, prefix + self.message, self.details)


class OAuthError(Exception):
    """A token-endpoint error, which uses the OAuth shape ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400):
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
