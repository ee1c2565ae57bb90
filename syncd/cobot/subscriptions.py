"""Keep Cobot's webhook subscriptions exactly as the config says.

Cobot's webhook body names no event, so the daemon registers one callback URL per event,
``<public_url>/<secret>/<event>``, and the receiver tells events apart by path. When the config
lists ``cobot.spaces``, each space has its own subscriptions, calling back
``<public_url>/<secret>/<subdomain>/<event>``, so the receiver also knows which space a webhook
came from. Each space is subscribed to the events of the worksheets that hold its rows, with
their filters, and is reconciled on its own: at a space, a subscription is ours when its
callback URL has either shape (the single form's, or the list form's naming that space) with
our current or a previous secret, so a daemon moving between the two forms takes its
subscriptions along. Any other subscription (another space's, another app's of the same user,
another deployment's) is never touched.

The reconciler is idempotent: run at start and periodically, it creates what is missing,
re-creates what Cobot deactivated (after ten failed deliveries), removes duplicates and events
no longer configured, and on a secret rotation subscribes the new URL before unsubscribing the
old one, so no webhook is lost in between. Logs and printed tables never show the secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from syncd.cobot.client import CobotClient, Subscription
from syncd.cobot.errors import SubscriptionExists, SubscriptionRejected
from syncd.config.secret import Secret
from syncd.config.settings import CobotSettings, Settings, WebhookSettings
from syncd.core.errors import CobotError
from syncd.core.events import EVENTS

log = logging.getLogger("syncd.subscriptions")

MASK = "***"
#: Path segments at least this long in someone else's callback URL are shown masked: they are
#: likely secrets (our own secrets have at least this many characters).
_SECRET_LENGTH = 16


@dataclass
class ReconcileReport:
    """What one reconciliation did; ``errors`` are per-event problems it worked around."""

    created: list[Subscription] = field(default_factory=list)
    deleted: list[Subscription] = field(default_factory=list)
    kept: list[Subscription] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.deleted)

    def summary(self) -> str:
        errors = f", {len(self.errors)} error(s)" if self.errors else ""
        return (
            f"subscriptions: {len(self.created)} created, {len(self.deleted)} deleted, "
            f"{len(self.kept)} kept{errors}"
        )


# --------------------------------------------------------------------------------------------
# Callback URLs
# --------------------------------------------------------------------------------------------


def callback_url(
    webhook: WebhookSettings, event: str, secret: Secret | None = None, space: str | None = None
) -> str:
    """The URL Cobot posts ``event`` webhooks to; the receiver serves exactly this path.

    ``space`` is the subdomain the list form puts in the path (see ``callback_space``).
    """
    named = f"{space}/" if space else ""
    return f"{webhook.public_url}/{(secret or webhook.secret).reveal()}/{named}{event}"


def callback_space(settings: Settings, space: CobotSettings) -> str | None:
    """The space segment of ``space``'s callback URLs: its subdomain when the file lists
    ``cobot.spaces``, None in the single form (whose callbacks stay as they always were)."""
    return space.subdomain if settings.cobot.listed else None


def space_events(settings: Settings, space: CobotSettings) -> dict[str, dict[str, Any]]:
    """Each event subscribed at ``space``, with its filters: those of the worksheets that hold
    the space's rows (a room filter of one space's worksheet means nothing at another)."""
    held = tuple(sheet for sheet in settings.sheets if sheet.holds(space.subdomain))
    narrowed = replace(settings, sheets=held)
    return {event: narrowed.filters_for(event) for event in narrowed.events}


def is_ours(webhook: WebhookSettings, url: str, space: str) -> bool:
    """Whether a callback URL is one of ours at ``space`` (a subdomain), in either form, under
    the current or a previous secret; another space's callbacks are not."""
    callback = _parse(webhook, url)
    return callback is not None and callback.space in (None, space)


def mask_callback(webhook: WebhookSettings, url: str) -> str:
    """A callback URL fit for logs and tables: secret segments replaced by ``***``."""
    callback = _parse(webhook, url)
    if callback is not None:
        named = f"{callback.space}/" if callback.space else ""
        return f"{webhook.public_url}/{MASK}/{named}{callback.event}"
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    path = "/".join(MASK if _looks_secret(s) else s for s in parts.path.split("/"))
    query = f"?{MASK}" if parts.query else ""
    return f"{parts.scheme}://{host}{path}{query}"


def describe_change(webhook: WebhookSettings, action: str, subscription: Subscription) -> str:
    """One line about a subscription change, for logs and the CLI, with the secret masked."""
    masked = mask_callback(webhook, subscription.callback_url)
    return f"{action} subscription {subscription.id} for {subscription.event} -> {masked}"


@dataclass(frozen=True)
class _Callback:
    """One of our callback URLs taken apart (the secret stays out: it is never needed)."""

    #: The subdomain of the list form, None in the single form.
    space: str | None
    event: str


def _parse(webhook: WebhookSettings, url: str) -> _Callback | None:
    """One of our callback URLs taken apart, or None when the URL is not ours."""
    prefix = f"{webhook.public_url}/"
    if not url.startswith(prefix):
        return None
    secret, *rest = url[len(prefix) :].split("/")
    secrets = {s.reveal() for s in (webhook.secret, *webhook.previous_secrets)}
    if secret not in secrets or len(rest) not in (1, 2) or not all(rest):
        return None
    return _Callback(rest[0] if len(rest) == 2 else None, rest[-1])


def _looks_secret(segment: str) -> bool:
    return len(segment) >= _SECRET_LENGTH and segment not in EVENTS


# --------------------------------------------------------------------------------------------
# Reconciliation
# --------------------------------------------------------------------------------------------


async def reconcile(
    settings: Settings, space: CobotSettings, client: CobotClient, *, retire_previous: bool = True
) -> ReconcileReport:
    """Make ``space`` (through ``client``, its client) hold exactly one active subscription of
    ours per event its worksheets take, at its callback URL.

    A 422 for one event is recorded in the report and the other events go on; any other
    Cobot error (token, scope, Cobot down) stops the run, since it would fail for all.

    With ``retire_previous=False`` active subscriptions under a previous secret are kept
    beside the new ones. The daemon's start-up run does this after a secret rotation: Cobot
    retries a delivery that failed during the restart on the subscription it was first sent
    to, so the old one must live until the next check for those retries to arrive. The other
    form's callbacks always go: the receiver no longer serves their path.
    """
    return await _Reconciler(settings, space, client, retire_previous).run()


async def delete_ours(
    settings: Settings, space: CobotSettings, client: CobotClient
) -> list[Subscription]:
    """Delete every subscription of ours at ``space`` (any event, any of our secrets)."""
    reconciler = _Reconciler(settings, space, client)
    for subscription in await _ours(settings.webhook, space, client):
        await reconciler.delete(subscription, "asked to delete all of ours")
    return reconciler.report.deleted


async def list_all(
    settings: Settings, space: CobotSettings, client: CobotClient
) -> list[tuple[Subscription, bool]]:
    """Every subscription Cobot lists at ``space`` for its token, each with whether it is ours."""
    subscriptions = await client.list_subscriptions()
    return [(s, is_ours(settings.webhook, s.callback_url, space.subdomain)) for s in subscriptions]


async def _ours(
    webhook: WebhookSettings, space: CobotSettings, client: CobotClient
) -> list[Subscription]:
    return [
        s
        for s in await client.list_subscriptions()
        if is_ours(webhook, s.callback_url, space.subdomain)
    ]


class _Reconciler:
    """One reconciliation run at one space; collects what it did in ``report``."""

    def __init__(
        self,
        settings: Settings,
        space: CobotSettings,
        client: CobotClient,
        retire_previous: bool = True,
    ) -> None:
        self.webhook = settings.webhook
        self.space = space
        #: The space segment of the callbacks wanted now (None in the single form).
        self.segment = callback_space(settings, space)
        self.events = space_events(settings, space)
        self.client = client
        self.retire_previous = retire_previous
        #: Log lines name the space when there are several.
        self.where = f"{space.subdomain}: " if len(settings.spaces) > 1 else ""
        self.report = ReconcileReport()

    async def run(self) -> ReconcileReport:
        ours = await _ours(self.webhook, self.space, self.client)
        for event, filters in self.events.items():
            await self.reconcile_event(event, filters, [s for s in ours if s.event == event])
        for subscription in ours:
            if subscription.event not in self.events:
                await self.delete(subscription, "event no longer configured")
        changed = self.report.changed or self.report.errors
        log.log(
            logging.INFO if changed else logging.DEBUG, "%s%s", self.where, self.report.summary()
        )
        return self.report

    async def reconcile_event(
        self, event: str, filters: Mapping[str, Any], ours: list[Subscription]
    ) -> None:
        """Keep or create the one wanted subscription, then drop the rest of ours.

        When creating fails, the rest stay: one under a previous secret still delivers.
        """
        wanted = callback_url(self.webhook, event, space=self.segment)
        keep = next((s for s in ours if _is_wanted(s, wanted, filters)), None)
        if keep is not None:
            self.report.kept.append(keep)
        else:
            # Cobot refuses a second subscription with the same event and URL (409), so an
            # unusable one at the wanted URL must go first; any other (an old secret's)
            # keeps delivering until the new one exists.
            blocking = [s for s in ours if s.callback_url == wanted]
            for subscription in blocking:
                await self.delete(subscription, _why_unusable(subscription))
            keep = await self.create(event, wanted, filters)
            if keep is None:
                return
            ours = [s for s in ours if s not in blocking]
        for subscription in ours:
            if subscription.id == keep.id:
                continue
            served = self.served(subscription)
            previous_secret = served and subscription.callback_url != wanted
            if previous_secret and subscription.active and not self.retire_previous:
                self.report.kept.append(subscription)
                continue
            await self.delete(subscription, _why_redundant(subscription, wanted, served))

    def served(self, subscription: Subscription) -> bool:
        """Whether the receiver takes this callback of ours: the current form's (under any of
        our secrets), not the other form's, whose path it no longer serves."""
        callback = _parse(self.webhook, subscription.callback_url)
        return callback is not None and callback.space == self.segment

    async def create(
        self,
        event: str,
        wanted: str,
        filters: Mapping[str, Any],
        *,
        adopt_existing: bool = True,
    ) -> Subscription | None:
        """Create the subscription; on 409 adopt Cobot's. None (error recorded) on failure."""
        try:
            created = await self.client.create_subscription(event, wanted, filters)
        except SubscriptionExists as exc:
            if adopt_existing:
                return await self.adopt(event, wanted, filters)
            self.record_error(exc)
            return None
        except SubscriptionRejected as exc:
            self.record_error(exc)
            return None
        self.report.created.append(created)
        self.log_change("created", created)
        return created

    async def adopt(
        self, event: str, wanted: str, filters: Mapping[str, Any]
    ) -> Subscription | None:
        """After a 409: use the subscription Cobot holds, or replace it once if unusable."""
        existing = [
            s
            for s in await self.client.list_subscriptions()
            if s.event == event and s.callback_url == wanted
        ]
        usable = next((s for s in existing if _is_wanted(s, wanted, filters)), None)
        if usable is not None:
            self.report.kept.append(usable)
            self.log_change("adopted", usable)
            return usable
        for subscription in existing:
            await self.delete(subscription, _why_unusable(subscription))
        return await self.create(event, wanted, filters, adopt_existing=False)

    async def delete(self, subscription: Subscription, reason: str) -> None:
        await self.client.delete_subscription(subscription)
        self.report.deleted.append(subscription)
        self.log_change("deleted", subscription, reason)

    def record_error(self, exc: CobotError) -> None:
        """Cobot's client errors for a subscription already name the event."""
        self.report.errors.append(str(exc))
        log.error("%s%s", self.where, exc)

    def log_change(self, action: str, subscription: Subscription, reason: str = "") -> None:
        because = f" ({reason})" if reason else ""
        change = describe_change(self.webhook, action, subscription)
        log.info("%s%s%s", self.where, change, because)


def _is_wanted(subscription: Subscription, wanted: str, filters: Mapping[str, Any]) -> bool:
    return (
        subscription.active
        and subscription.callback_url == wanted
        and _same_filters(subscription.filters, filters)
    )


def _why_unusable(subscription: Subscription) -> str:
    return "filters changed" if subscription.active else "deactivated by Cobot"


def _why_redundant(subscription: Subscription, wanted: str, served: bool) -> str:
    if subscription.callback_url == wanted:
        return "duplicate"
    return "old secret" if served else "old callback path"


def _same_filters(actual: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Compare filters as Cobot may echo them (``"60"`` for ``60``); unknown counts as same."""
    return actual is None or _canonical(actual) == _canonical(wanted)


def _canonical(filters: Mapping[str, Any]) -> str:
    def scalar_strings(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): scalar_strings(v) for k, v in value.items()}
        if isinstance(value, Iterable) and not isinstance(value, str):
            return [scalar_strings(v) for v in value]
        return str(value)

    return json.dumps(scalar_strings(filters), sort_keys=True)
