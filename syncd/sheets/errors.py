"""How a Google Sheets request can fail, each failure carrying what the pipeline should do.

The classes, not their messages, decide: quota, server and network trouble is retried with
backoff; a spreadsheet not shared or not found and a key that cannot get a token pause the
work until a person fixes them; a request Google refuses as invalid is permanent for the
rows that made it.
"""

from __future__ import annotations

from typing import ClassVar

from syncd.core.errors import Action, SheetsError


class SheetsApiError(SheetsError):
    """A Google Sheets failure; the subclass says why and what to do."""


class SheetsUnavailable(SheetsApiError):
    """Google did not answer usefully within the retries (quota, 5xx, network): retry later."""

    action: ClassVar[Action] = Action.RETRY


class SheetsPermissionError(SheetsApiError):
    """The service account may not edit the spreadsheet (403)."""

    action: ClassVar[Action] = Action.PAUSE


class SheetsNotFoundError(SheetsApiError):
    """The spreadsheet id names no spreadsheet (404)."""

    action: ClassVar[Action] = Action.PAUSE


class SheetsAuthError(SheetsApiError):
    """The service-account key cannot get an access token (revoked key, wrong clock...)."""

    action: ClassVar[Action] = Action.PAUSE


class SheetsRequestError(SheetsApiError):
    """Google refused a request as invalid (400), with Google's own message."""

    action: ClassVar[Action] = Action.DEAD_LETTER
