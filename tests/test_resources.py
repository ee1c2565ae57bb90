"""Only configured Cobot origins and known resource paths are ever fetched."""

from __future__ import annotations

import pytest

from syncd.config.secret import Secret
from syncd.config.settings import CobotSettings
from syncd.intake.resources import InvalidResourceURL, parse_resource_url, resource_url

HTTPS = CobotSettings(
    subdomain="co-up",
    access_token=Secret("t"),
    base_url="https://co-up.cobot.me",
    api2_url="https://api.cobot.me",
    requests_per_minute=60,
    timeout_seconds=5,
)
LOCAL = CobotSettings(
    subdomain="co-up",
    access_token=Secret("t"),
    base_url="http://127.0.0.1:9001",
    api2_url="http://127.0.0.1:9001",
    requests_per_minute=60,
    timeout_seconds=5,
)


@pytest.mark.parametrize(
    ("url", "kind", "canonical"),
    [
        (
            "https://co-up.cobot.me/api/memberships/abc123",
            "membership",
            "https://co-up.cobot.me/api/memberships/abc123",
        ),
        (
            "https://CO-UP.cobot.me:443/api/invoices/i-1",
            "invoice",
            "https://co-up.cobot.me/api/invoices/i-1",
        ),
        (
            "https://co-up.cobot.me/api/guest_accounts/7",
            "guest_account",
            "https://co-up.cobot.me/api/guest_accounts/7",
        ),
        (
            "https://api.cobot.me/drop_in_passes/1a7e4994-1562-5d5f-8c35-0f9ef6b4b8a2",
            "drop_in_pass",
            "https://api.cobot.me/drop_in_passes/1a7e4994-1562-5d5f-8c35-0f9ef6b4b8a2",
        ),
        (
            "https://api.cobot.me/spaces/8bd91251/subscription",
            "space_subscription",
            "https://api.cobot.me/spaces/8bd91251/subscription",
        ),
    ],
)
def test_valid_urls(url: str, kind: str, canonical: str) -> None:
    ref = parse_resource_url(url, HTTPS)
    assert (ref.kind, ref.url) == (kind, canonical)


@pytest.mark.parametrize(
    "url",
    [
        "https://co-up.cobot.me@evil.example/api/memberships/1",
        "https://user:pw@co-up.cobot.me/api/memberships/1",
        "https://evil.example/api/memberships/1",
        "https://co-up.cobot.me.evil.example/api/memberships/1",
        "https://other-space.cobot.me/api/memberships/1",
        "http://co-up.cobot.me:443/api/memberships/1",
        "https://co-up.cobot.me:8443/api/memberships/1",
        "https://127.0.0.1/api/memberships/1",
        "https://[::1]/api/memberships/1",
        "https://localhost/api/memberships/1",
        "https://co-up.cobot.me\\@evil.example/api/memberships/1",
        "https://co-up.cobot.me/api/memberships/1%2F..%2F..%2Fadmin",
        "https://co-up.cobot.me/api/memberships/../subscriptions",
        "https://co-up.cobоt.me/api/memberships/1",  # noqa: RUF001 (Cyrillic look-alike)
        "https://co-up.cobot.me/api/memberships/1?x=1",
        "https://co-up.cobot.me/api/memberships/1#frag",
        "https://co-up.cobot.me/api/subscriptions/1",
        "https://co-up.cobot.me/api/memberships/",
        "https://api.cobot.me/api/memberships/1",
        "https://co-up.cobot.me/drop_in_passes/1",
        "ftp://co-up.cobot.me/api/memberships/1",
        "//co-up.cobot.me/api/memberships/1",
        "/api/memberships/1",
        "https://co-up.cobot.me:99999/api/memberships/1",
        "https://co-up.cobot.me/api/memberships/1 ",
        "",
        "x" * 3000,
    ],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(InvalidResourceURL):
        parse_resource_url(url, HTTPS)


@pytest.mark.parametrize(
    "url",
    [
        "http://co-up.cobot.me/api/invoices/7",
        "HTTP://Co-Up.Cobot.ME/api/invoices/7",
        "https://co-up.cobot.me:443/api/invoices/7",
    ],
)
def test_either_scheme_on_the_configured_host_is_fetched_from_the_configured_origin(
    url: str,
) -> None:
    assert parse_resource_url(url, HTTPS).url == "https://co-up.cobot.me/api/invoices/7"


@pytest.mark.parametrize("value", [None, 42, ["https://co-up.cobot.me/api/memberships/1"], {}])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidResourceURL):
        parse_resource_url(value, HTTPS)


def test_local_base_url_serves_every_kind() -> None:
    ref = parse_resource_url("http://127.0.0.1:9001/drop_in_passes/p1", LOCAL)
    assert ref.url == "http://127.0.0.1:9001/drop_in_passes/p1"
    with pytest.raises(InvalidResourceURL):
        parse_resource_url("http://127.0.0.1:9002/api/memberships/1", LOCAL)


def test_resource_url_round_trips() -> None:
    for kind in ("membership", "invoice", "booking", "check_in", "space_subscription"):
        url = resource_url(kind, "abc", HTTPS)
        assert parse_resource_url(url, HTTPS).kind == kind
