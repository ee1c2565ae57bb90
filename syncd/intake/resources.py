"""Which Cobot resource a webhook's URL names, and whether we may fetch it at all.

A webhook body is attacker-controlled input: anyone who learns a callback URL can POST any
``url``. The daemon therefore never fetches the string it was given. It parses it strictly,
accepts only a configured Cobot origin and a known resource path, and fetches a URL rebuilt
from the configured base, so the bearer token can only ever go to Cobot.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from syncd.config.settings import CobotSettings
from syncd.core.events import API2_KINDS, RESOURCE_PATHS, resource_kind_of_path
from syncd.mapping.keys import origin_key

MAX_URL_LENGTH = 2048
#: Whitespace, control characters, backslash and percent (in an ASCII string).
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\\%]")


class InvalidResourceURL(ValueError):
    """The URL is not one the daemon will fetch; the message says why (safe to log)."""


@dataclass(frozen=True)
class ResourceRef:
    kind: str
    id: str
    #: Canonical URL: the configured base plus the resource path. It is the sheet's row key.
    url: str

    @property
    def is_api2(self) -> bool:
        return self.kind in API2_KINDS


def parse_resource_url(raw: object, cobot: CobotSettings) -> ResourceRef:
    """Validate a resource URL against the configured Cobot origins; raise InvalidResourceURL."""
    if not isinstance(raw, str) or not raw:
        raise InvalidResourceURL("url must be a non-empty string")
    if len(raw) > MAX_URL_LENGTH:
        raise InvalidResourceURL("url is too long")
    if not raw.isascii() or _FORBIDDEN_CHARS.search(raw):
        raise InvalidResourceURL("url contains characters a Cobot URL never has")
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. an unclosed IPv6 bracket: "https://[x"
        raise InvalidResourceURL("url is not a valid URL") from None
    if parts.query or parts.fragment or raw.endswith(("?", "#")):
        raise InvalidResourceURL("url must not carry a query or fragment")
    if "@" in parts.netloc:
        raise InvalidResourceURL("url must not carry user information")
    try:
        port = parts.port
    except ValueError:
        raise InvalidResourceURL("url has an invalid port") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidResourceURL("url scheme must be http or https")
    found = resource_kind_of_path(parts.path)
    if found is None:
        raise InvalidResourceURL("url path names no Cobot resource this daemon knows")
    kind, resource_id = found
    base = cobot.api2_url if kind in API2_KINDS else cobot.base_url
    # Either scheme names the configured host: Cobot itself sends http:// URLs in some
    # bodies. The fetch, and so the token, still goes only to the configured origin.
    if origin_key(parts.scheme, parts.hostname or "", port) != _origin_of(base):
        raise InvalidResourceURL("url is not on the configured Cobot host")
    return ResourceRef(kind=kind, id=resource_id, url=f"{base}{parts.path}")


def ref_of_url(kind: str, url: str) -> ResourceRef:
    """The reference of a URL already checked (stored, or rebuilt from an id); the id is not
    always the last segment (``/spaces/<id>/subscription``)."""
    _, resource_id = resource_kind_of_path(urlsplit(url).path) or ("", "")
    return ResourceRef(kind=kind, id=resource_id, url=url)


def listed_url(kind: str, ident: object, cobot: CobotSettings) -> str | None:
    """The canonical URL of a listed item by its id, or None when the id is not one a URL can
    carry (so a listing never makes up a key the webhook path would not)."""
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        return None
    url = resource_url(kind, str(ident), cobot)
    return url if resource_kind_of_path(urlsplit(url).path) == (kind, str(ident)) else None


def resource_url(kind: str, resource_id: str, cobot: CobotSettings) -> str:
    """The canonical URL of a resource known by kind and id (list endpoints, backfill)."""
    pattern = RESOURCE_PATHS[kind].pattern
    path = pattern.replace("(?P<id>[A-Za-z0-9_-]{1,128})", resource_id)
    base = cobot.api2_url if kind in API2_KINDS else cobot.base_url
    return f"{base}{path}"


@functools.cache
def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return origin_key(parts.scheme, parts.hostname or "", parts.port)


def is_loopback_host(host: str) -> bool:
    """Whether only this machine can reach ``host`` (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
