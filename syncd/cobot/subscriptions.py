"""Keep Cobot's webhook subscriptions exactly as the config says.

Cobot's webhook body names no event, so the daemon registers one callback URL per event,
``<public_url>/<secret>/<event>``, and the receiver tells events apart by path. A subscription
is ours when its callback URL has that shape with our current or a previous secret; any
other subscription (another app of the same user, another deployment) is never touched.

The reconciler is idempotent: run at start and periodically, it creates what is missing,
re-creates what Cobot deactivated (after ten failed deliveries), removes duplicates and events
no longer configured, and on a secret rotation subscribes the new URL before unsubscribing the
old one, so no webhook is lost in between. Logs and printed tables never show the secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from syncd.cobot.client import CobotClient, Subscription
from syncd.cobot.errors import SubscriptionExists, SubscriptionRejected
from syncd.config.settings import Secret, Settings, WebhookSettings
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


def callback_url(webhook: WebhookSettings, event: str, secret: Secret | None = None) -> str:
    """The URL Cobot posts ``event`` webhooks to; the receiver serves exactly this path."""
    return f"{webhook.public_url}/{(secret or webhook.secret).reveal()}/{event}"


def is_ours(webhook: WebhookSettings, url: str) -> bool:
    """Whether a callback URL is one of ours, under the current or a previous secret."""
    return _our_event_segment(webhook, url) is not None


def mask_callback(webhook: WebhookSettings, url: str) -> str:
    """A callback URL fit for logs and tables: secret segments replaced by ``***``."""
    event = _our_event_segment(webhook, url)
    if event is not None:
        return f"{webhook.public_url}/{MASK}/{event}"
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    path = "/".join(MASK if _looks_secret(s) else s for s in parts.path.split("/"))
    query = f"?{MASK}" if parts.query else ""
    return f"{parts.scheme}://{host}{path}{query}"


def describe_change(webhook: WebhookSettings, action: str, subscription: Subscription) -> str:
    """One line about a subscription change, for logs and the CLI, with the secret masked."""
    masked = mask_callback(webhook, subscription.callback_url)
    return f"{action} subscription {subscription.id} for {subscription.event} -> {masked}"


def _our_event_segment(webhook: WebhookSettings, url: str) -> str | None:
    """The event part of one of our callback URLs, or None when the URL is not ours."""
    prefix = f"{webhook.public_url}/"
    if not url.startswith(prefix):
        return None
    secret, sep, event = url[len(prefix) :].partition("/")
    secrets = {s.reveal() for s in (webhook.secret, *webhook.previous_secrets)}
    if not sep or "/" in event or secret not in secrets:
        return None
    return event


def _looks_secret(segment: str) -> bool:
    return len(segment) >= _SECRET_LENGTH and segment not in EVENTS


# --------------------------------------------------------------------------------------------
# Reconciliation
# --------------------------------------------------------------------------------------------


async def reconcile(
    settings: Settings, client: CobotClient, *, retire_previous: bool = True
) -> ReconcileReport:
    """Make Cobot hold exactly one active subscription of ours per configured event.

    A 422 for one event is recorded in the report and the other events go on; any other
    Cobot error (token, scope, Cobot down) stops the run, since it would fail for all.

    With ``retire_previous=False`` active subscriptions under a previous secret are kept
    beside the new ones. The daemon's start-up run does this after a secret rotation: Cobot
    retries a delivery that failed during the restart on the subscription it was first sent
    to, so the old one must live until the next check for those retries to arrive.
    """
    return await _Reconciler(settings, client, retire_previous).run()


async def delete_ours(settings: Settings, client: CobotClient) -> list[Subscription]:
    """Delete every subscription of ours (any event, any of our secrets)."""
    reconciler = _Reconciler(settings, client)
    for subscription in await _ours(settings.webhook, client):
        await reconciler.delete(subscription, "asked to delete all of ours")
    return reconciler.report.deleted


async def list_all(settings: Settings, client: CobotClient) -> list[tuple[Subscription, bool]]:
    """Every subscription Cobot lists for this token, each with whether it is ours."""
    subscriptions = await client.list_subscriptions()
    return [(s, is_ours(settings.webhook, s.callback_url)) for s in subscriptions]


async def _ours(webhook: WebhookSettings, client: CobotClient) -> list[Subscription]:
    return [s for s in await client.list_subscriptions() if is_ours(webhook, s.callback_url)]


class _Reconciler:
    """One reconciliation run; collects what it did in ``report``."""

    def __init__(
        self, settings: Settings, client: CobotClient, retire_previous: bool = True
    ) -> None:
        self.settings = settings
        self.webhook = settings.webhook
        self.client = client
        self.retire_previous = retire_previous
        self.report = ReconcileReport()

    async def run(self) -> ReconcileReport:
        ours = await _ours(self.webhook, self.client)
        configured = self.settings.events
        for event in configured:
            await self.reconcile_event(event, [s for s in ours if s.event == event])
        for subscription in ours:
            if subscription.event not in configured:
                await self.delete(subscription, "event no longer configured")
        changed = self.report.changed or self.report.errors
        log.log(logging.INFO if changed else logging.DEBUG, "%s", self.report.summary())
        return self.report

    async def reconcile_event(self, event: str, ours: list[Subscription]) -> None:
        """Keep or create the one wanted subscription, then drop the rest of ours.

        When creating fails, the rest stay: one under a previous secret still delivers.
        """
        wanted = callback_url(self.webhook, event)
        filters = self.settings.filters_for(event)
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
            previous_secret = subscription.callback_url != wanted
            if previous_secret and subscription.active and not self.retire_previous:
                self.report.kept.append(subscription)
                continue
            await self.delete(subscription, _why_redundant(subscription, wanted))

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
        log.error("%s", exc)

    def log_change(self, action: str, subscription: Subscription, reason: str = "") -> None:
        because = f" ({reason})" if reason else ""
        log.info("%s%s", describe_change(self.webhook, action, subscription), because)


def _is_wanted(subscription: Subscription, wanted: str, filters: Mapping[str, Any]) -> bool:
    return (
        subscription.active
        and subscription.callback_url == wanted
        and _same_filters(subscription.filters, filters)
    )


def _why_unusable(subscription: Subscription) -> str:
    return "filters changed" if subscription.active else "deactivated by Cobot"


def _why_redundant(subscription: Subscription, wanted: str) -> str:
    return "duplicate" if subscription.callback_url == wanted else "old secret or path"


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
