"""Rules a key's value must meet beyond its type. Each returns what is wrong, or None.

A value that breaks a rule is reported but kept, so that ``syncd check-config`` goes on
checking with what the file says (a local simulator's URL stays that URL).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def cobot_subdomain(text: str) -> str | None:
    if re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", text):
        return None
    return f"expected a Cobot subdomain like 'co-up', got {text!r}"


def origin(url: str) -> str | None:
    """Cobot's resource paths are appended to the URL, so it must not have a path itself."""
    if not urlsplit(url).path.strip("/"):
        return None
    return f"expected an origin without a path, like http://127.0.0.1:9001, got {url!r}"


def url_path_secret(text: str) -> str | None:
    """The secret becomes part of every callback URL's path."""
    if re.fullmatch(r"[A-Za-z0-9._~-]{16,256}", text):
        return None
    return (
        "expected at least 16 characters of letters, digits "
        "and . _ ~ - (it becomes part of a URL path); "
        "e.g. generate one with: openssl rand -hex 32"
    )
