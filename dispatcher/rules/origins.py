"""Where a URL points, as the settings name places: `site.image_hosts` and the site's own."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "": None}


def image_origin(url: str) -> str:
    """Where an image comes from, as `site.image_hosts` names it: the host, lower-case, with
    `:port` unless it is the scheme's own; "" for what cannot be told (a bad port)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if port is None or port == DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"
