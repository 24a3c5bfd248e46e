"""The client's address behind a reverse proxy (nginx in front, `gongkai site nginx-conf`).

A request whose peer lies in `server.trusted_proxies` came through a proxy, which appended the
address it was called from to `X-Forwarded-For`: the client is the last address there that is
not itself a trusted proxy (what a client wrote into the header itself comes before, and is not
believed). Any other request's client is its peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(request: web.Request, trusted: Sequence[str]) -> Address | None:
    """The client's address (None: unknown or not an address)."""
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return None
    networks = [ipaddress.ip_network(n) for n in trusted]
    if not any(peer in n for n in networks):
        return peer
    hops = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return None  # a proxy we trust wrote something that is not an address
        if not any(address in n for n in networks):
            return address
    return peer  # only proxies: the nearest one is all we know
