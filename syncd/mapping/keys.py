"""When two URLs name the same Cobot resource: the one comparison of row keys.

A key typed or imported by a person, or sent by Cobot itself (its documentation shows a
``deleted_invoice`` body with an ``http://`` URL), may differ from the canonical URL the daemon
writes in scheme, in the case of the host, or by a trailing slash. Compared as text these would
make a second row for one resource; compared here they are the same row.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_key(scheme: str, host: str, port: int | None) -> str:
    """A host and port as Cobot serves them whatever the scheme: ``host`` or ``host:port``.

    A port is kept only when it is not the default of the URL's own scheme, so
    ``http://x.cobot.me`` and ``https://x.cobot.me`` are one origin.
    """
    host = host.lower()
    if port is None or port == _DEFAULT_PORTS.get(scheme.lower()):
        return host
    return f"{host}:{port}"


def resource_key(url: str) -> str:
    """The comparable form of a resource URL: origin (see :func:`origin_key`) and path without
    a trailing slash. Text that is no URL is returned stripped, so it matches only itself."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return text
    origin = origin_key(parts.scheme, parts.hostname, port)
    return f"{origin}{parts.path.rstrip('/')}"
