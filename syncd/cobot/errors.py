"""How a Cobot request can fail, each failure carrying what the pipeline should do about it.

The classes, not their messages, decide: a revoked token or a suspended space pauses the work
until a person fixes it, an outage is retried with backoff, and a request Cobot refuses as such
is permanent for the one event that needed it. A resource Cobot deleted (404, 410) is no error
at all: the client reports it as gone.
"""

from __future__ import annotations

from typing import ClassVar

from syncd.core.errors import Action, CobotError


class CobotRequestError(CobotError):
    """A Cobot request failed; the subclass says why and what to do."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CobotRefused(CobotRequestError):
    """Cobot refused this one request (a 4xx not covered below): it would refuse it again."""

    action: ClassVar[Action] = Action.DEAD_LETTER


class CobotMisdirected(CobotRequestError):
    """The request would leave the configured Cobot origins (a redirect, a foreign URL).

    The token must not travel there, so only fixing ``cobot.subdomain`` or ``cobot.base_url``
    helps.
    """

    action: ClassVar[Action] = Action.PAUSE


class CobotAuthError(CobotRequestError):
    """401: the token is wrong, expired or revoked; nothing works until it is replaced."""

    action: ClassVar[Action] = Action.PAUSE


class CobotForbidden(CobotRequestError):
    """403: the token lacks a scope, or its user is no longer an admin of the space."""

    action: ClassVar[Action] = Action.PAUSE

    def __init__(self, message: str, *, missing_scope: str | None = None) -> None:
        super().__init__(message, status=403)
        self.missing_scope = missing_scope


class CobotSpaceSuspended(CobotRequestError):
    """402: Cobot suspended the space (unpaid); its data cannot be read until it is active."""

    action: ClassVar[Action] = Action.PAUSE


class CobotUnavailable(CobotRequestError):
    """Cobot could not be reached or kept failing (5xx, 429, timeouts): retry later."""

    action: ClassVar[Action] = Action.RETRY

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        host: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, status=status)
        #: Seconds Cobot asked us to wait, when it said so (429 Retry-After).
        self.retry_after = retry_after
        #: The host that failed and how, in the words one checks a network with.
        self.host = host
        self.reason = reason


class SubscriptionExists(CobotRequestError):
    """409: Cobot already holds a subscription for this event and callback URL."""

    action: ClassVar[Action] = Action.DEAD_LETTER


class SubscriptionRejected(CobotRequestError):
    """422: Cobot refused the subscription's parameters (unknown event, bad filter...)."""

    action: ClassVar[Action] = Action.DEAD_LETTER
